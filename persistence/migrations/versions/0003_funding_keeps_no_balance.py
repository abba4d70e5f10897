"""funding accounts keep no balance

Revision ID: 0003_funding_keeps_no_balance
Revises: 0002
Create Date: 2026-11-30

The bank's funding account of a currency stops keeping a running balance: it was one 64-bit
number that one customer's deposits could push to its end, refusing everyone else's in that
currency, and one row every deposit and withdrawal had to lock. Its balance is now the sum of
its entries, which the audit sums exactly. Its stored balance becomes 0 and stays so; its new
entries carry no balance after them, so that column may be NULL. Lines already written keep
the balance they recorded: the ledger is append-only.

Downgrading puts the running balances back, and fails when a funding balance no longer fits
64 bits, which the old schema cannot hold.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision: str = "0003_funding_keeps_no_balance"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _entries(*, balance_after_nullable: bool) -> sa.Table:
    """The entries table as 0001 made it, for SQLite's copy of it (nothing left to reflection)."""
    return sa.Table(
        "entries",
        sa.MetaData(),
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("transaction_id", ID, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=balance_after_nullable),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount <> 0", name="ck_entries_amount_nonzero"),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name="fk_entries_account_id_accounts",
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["transactions.id"],
            name="fk_entries_transaction_id_transactions",
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_entries"),
        sa.Index("ix_entries_account_id_id", "account_id", "id"),
        sa.Index("ix_entries_transaction_id", "transaction_id"),
    )


def _set_balance_after_nullable(nullable: bool) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("entries", "balance_after", existing_type=sa.BigInteger(), nullable=nullable)
        return
    # SQLite copies the table to change a column; the copy has none of the old table's
    # triggers, so the append-only guards are made again on it.
    _drop_sqlite_guards()
    with op.batch_alter_table(
        "entries", copy_from=_entries(balance_after_nullable=not nullable), recreate="always"
    ) as batch_op:
        batch_op.alter_column("balance_after", existing_type=sa.BigInteger(), nullable=nullable)
    _create_sqlite_guards()


def _drop_sqlite_guards() -> None:
    for action in ("update", "delete"):
        op.execute(f"DROP TRIGGER entries_no_{action}")


def _create_sqlite_guards() -> None:
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER entries_no_{action.lower()} BEFORE {action} ON entries "
            "BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END"
        )


@contextmanager
def _entries_writable() -> Iterator[None]:
    """The append-only guard of entries switched off inside the block, for this migration."""
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.execute("ALTER TABLE entries DISABLE TRIGGER entries_append_only")
    else:
        _drop_sqlite_guards()
    yield
    if postgresql:
        op.execute("ALTER TABLE entries ENABLE TRIGGER entries_append_only")
    else:
        _create_sqlite_guards()


def upgrade() -> None:
    op.execute("UPDATE accounts SET balance = 0 WHERE kind <> 'CUSTOMER'")
    _set_balance_after_nullable(True)


def downgrade() -> None:
    # Each funding account gets its balance back, and each funding line its running balance;
    # a sum past 64 bits fails here (on PostgreSQL as the numeric sum is cast to bigint).
    op.execute(
        "UPDATE accounts SET balance = CAST(COALESCE((SELECT SUM(amount) FROM entries"
        " WHERE entries.account_id = accounts.id), 0) AS BIGINT) WHERE kind <> 'CUSTOMER'"
    )
    with _entries_writable():
        op.execute(
            "UPDATE entries SET balance_after = CAST((SELECT SUM(earlier.amount) FROM entries"
            " AS earlier WHERE earlier.account_id = entries.account_id"
            " AND earlier.id <= entries.id) AS BIGINT) WHERE balance_after IS NULL"
        )
    _set_balance_after_nullable(False)
