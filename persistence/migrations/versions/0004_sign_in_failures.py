"""failed sign-ins per email address

Revision ID: 0004_sign_in_failures
Revises: 0003_funding_keeps_no_balance
Create Date: 2026-11-30

Failed sign-ins are counted per (normalised) email address in the database, so that every
server process applies the same growing delay to the next attempt on that address.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_sign_in_failures"
down_revision: str | None = "0003_funding_keeps_no_balance"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sign_in_failures",
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "failures >= 0", name=op.f("ck_sign_in_failures_failures_not_negative")
        ),
        sa.PrimaryKeyConstraint("email", name=op.f("pk_sign_in_failures")),
    )
    op.create_index(
        "ix_sign_in_failures_last_failed_at", "sign_in_failures", ["last_failed_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_sign_in_failures_last_failed_at", table_name="sign_in_failures")
    op.drop_table("sign_in_failures")
