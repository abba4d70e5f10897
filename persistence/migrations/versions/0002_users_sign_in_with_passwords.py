"""users sign in with passwords

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

Users get an Argon2id password hash. The built-in local user that owned every account before
sign-in existed is removed when it owns nothing; a local user that already owns accounts or
made transactions is kept, since the ledger is append-only, but with no password it can never
sign in, and only administrators can read its accounts.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOCAL_USER_EMAIL = "local@bankql.invalid"


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("password_hash", sa.String(length=255), nullable=True))
    op.execute(
        sa.text(
            "DELETE FROM users WHERE email = :email"
            " AND NOT EXISTS (SELECT 1 FROM accounts WHERE accounts.owner_id = users.id)"
            " AND NOT EXISTS (SELECT 1 FROM transactions WHERE transactions.actor_id = users.id)"
        ).bindparams(email=LOCAL_USER_EMAIL)
    )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("password_hash")
