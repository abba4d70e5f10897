"""holds, reversals and balances at a moment

Revision ID: 0006_holds
Revises: 0005_sessions
Create Date: 2026-11-30

Holds reserve money on an account until they are captured, voided or expire. A capture's
transaction names its hold, a reversal names the transaction it undoes (each at most once),
and an index on (account_id, created_at, id) finds an account's balance at any moment by
reading one line.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_holds"
down_revision: str | None = "0005_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "holds",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("placed_by", ID, nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("captured", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("destination_account_id", ID, nullable=True),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.CheckConstraint("amount > 0", name=op.f("ck_holds_amount_positive")),
        sa.CheckConstraint(
            "captured >= 0 AND captured <= amount", name=op.f("ck_holds_captured_within_amount")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_holds_account_id_accounts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["destination_account_id"],
            ["accounts.id"],
            name=op.f("fk_holds_destination_account_id_accounts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["placed_by"], ["users.id"], name=op.f("fk_holds_placed_by_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holds")),
        sa.UniqueConstraint(
            "placed_by", "idempotency_key", name="uq_holds_placed_by_idempotency_key"
        ),
    )
    op.create_index("ix_holds_account_id_id", "holds", ["account_id", "id"])
    op.create_index(
        "ix_holds_account_id_status_expires_at", "holds", ["account_id", "status", "expires_at"]
    )
    _add_transaction_links()
    op.create_index("ix_transactions_hold_id", "transactions", ["hold_id"])
    op.create_index("uq_transactions_reverses_id", "transactions", ["reverses_id"], unique=True)
    op.create_index(
        "ix_entries_account_id_created_at_id", "entries", ["account_id", "created_at", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_entries_account_id_created_at_id", table_name="entries")
    op.drop_index("uq_transactions_reverses_id", table_name="transactions")
    op.drop_index("ix_transactions_hold_id", table_name="transactions")
    _drop_transaction_links()
    op.drop_index("ix_holds_account_id_status_expires_at", table_name="holds")
    op.drop_index("ix_holds_account_id_id", table_name="holds")
    op.drop_table("holds")


_LINKS = ("hold_id", "reverses_id")


def _add_transaction_links() -> None:
    for column in _LINKS:
        op.add_column("transactions", sa.Column(column, ID, nullable=True))


def _drop_transaction_links() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for column in _LINKS:
            op.drop_column("transactions", column)
        return
    # SQLite drops a column in place when nothing indexes or constrains it.
    for column in _LINKS:
        op.execute(f"ALTER TABLE transactions DROP COLUMN {column}")
