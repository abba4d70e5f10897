"""The database schema as SQLModel tables; Alembic migrations are generated from this metadata."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

# Every constraint gets a predictable name, so that migrations can refer to it on both databases.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only numbers rows by itself for a column declared exactly INTEGER PRIMARY KEY.
ID = BigInteger().with_variant(Integer(), "sqlite")


def _id() -> Column[int]:
    return Column(ID, primary_key=True, autoincrement=True)


def _when() -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=False)


def _reference(target: str, *, nullable: bool = False) -> Column[int]:
    return Column(ID, ForeignKey(target, ondelete="RESTRICT"), nullable=nullable)


class UserRow(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, sa_column=_id())
    email: str = Field(sa_column=Column(String(320), nullable=False, unique=True))
    role: str = Field(sa_column=Column(String(16), nullable=False))
    # Argon2id, in its self-describing string form; NULL for a user who cannot sign in.
    password_hash: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
    created_at: datetime = Field(sa_column=_when())


class AccountRow(SQLModel, table=True):
    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("kind <> 'CUSTOMER' OR balance >= 0", name="customer_balance"),
        CheckConstraint("kind <> 'CUSTOMER' OR owner_id IS NOT NULL", name="owner"),
        Index("ix_accounts_owner_id_id", "owner_id", "id"),
    )

    id: int | None = Field(default=None, sa_column=_id())
    owner_id: int | None = Field(default=None, sa_column=_reference("users.id", nullable=True))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    name: str = Field(sa_column=Column(String(100), nullable=False))
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    # A customer's balance. A funding account keeps none and holds 0 here: its balance is
    # the sum of its entries, unbounded, and a movement never writes (or locks) its row.
    balance: int = Field(sa_column=Column(BigInteger, nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    # Set only on the bank's funding accounts, so that each currency has exactly one.
    funding_currency: str | None = Field(
        default=None, sa_column=Column(String(3), nullable=True, unique=True)
    )
    created_at: datetime = Field(sa_column=_when())


class TransactionRow(SQLModel, table=True):
    __tablename__ = "transactions"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        UniqueConstraint(
            "actor_id", "idempotency_key", name="uq_transactions_actor_id_idempotency_key"
        ),
        # A transaction is reversed at most once, whatever races.
        Index("uq_transactions_reverses_id", "reverses_id", unique=True),
        Index("ix_transactions_hold_id", "hold_id"),
    )

    id: int | None = Field(default=None, sa_column=_id())
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    source_account_id: int | None = Field(
        default=None, sa_column=_reference("accounts.id", nullable=True)
    )
    destination_account_id: int | None = Field(
        default=None, sa_column=_reference("accounts.id", nullable=True)
    )
    description: str | None = Field(default=None, sa_column=Column(String(500), nullable=True))
    actor_id: int = Field(sa_column=_reference("users.id"))
    idempotency_key: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
    request_hash: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    created_at: datetime = Field(sa_column=_when())
    # The hold this transaction captures; the transaction a REVERSAL undoes. Plain columns,
    # not foreign keys: SQLite could add those only by copying this table from under the
    # entries that reference it. Nothing is ever deleted from the ledger they point into.
    hold_id: int | None = Field(default=None, sa_column=Column(ID, nullable=True))
    reverses_id: int | None = Field(default=None, sa_column=Column(ID, nullable=True))


class EntryRow(SQLModel, table=True):
    __tablename__ = "entries"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_nonzero"),
        Index("ix_entries_account_id_id", "account_id", "id"),
        Index("ix_entries_transaction_id", "transaction_id"),
        # An account's balance at a moment is one line found through this index.
        Index("ix_entries_account_id_created_at_id", "account_id", "created_at", "id"),
    )

    id: int | None = Field(default=None, sa_column=_id())
    transaction_id: int = Field(sa_column=_reference("transactions.id"))
    account_id: int = Field(sa_column=_reference("accounts.id"))
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    # The account's balance right after this line; NULL on a funding account's lines.
    balance_after: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    created_at: datetime = Field(sa_column=_when())


class HoldRow(SQLModel, table=True):
    """Money reserved on an account. Its status is PENDING until a capture or a void
    records another; a PENDING row past expires_at is EXPIRED to every reader."""

    __tablename__ = "holds"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("captured >= 0 AND captured <= amount", name="captured_within_amount"),
        UniqueConstraint("placed_by", "idempotency_key", name="uq_holds_placed_by_idempotency_key"),
        Index("ix_holds_account_id_id", "account_id", "id"),
        Index("ix_holds_account_id_status_expires_at", "account_id", "status", "expires_at"),
    )

    id: int | None = Field(default=None, sa_column=_id())
    account_id: int = Field(sa_column=_reference("accounts.id"))
    placed_by: int = Field(sa_column=_reference("users.id"))
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    captured: int = Field(sa_column=Column(BigInteger, nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    destination_account_id: int | None = Field(
        default=None, sa_column=_reference("accounts.id", nullable=True)
    )
    description: str | None = Field(default=None, sa_column=Column(String(500), nullable=True))
    expires_at: datetime = Field(sa_column=_when())
    created_at: datetime = Field(sa_column=_when())
    resolved_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    idempotency_key: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
    request_hash: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))


class SignInFailureRow(SQLModel, table=True):
    """Failed sign-ins to one email address, kept here so that every server process sees
    them; a row goes on a successful sign-in, or once its last failure is old."""

    __tablename__ = "sign_in_failures"
    __table_args__ = (
        CheckConstraint("failures >= 0", name="failures_not_negative"),
        Index("ix_sign_in_failures_last_failed_at", "last_failed_at"),
    )

    email: str = Field(sa_column=Column(String(320), primary_key=True))
    failures: int = Field(sa_column=Column(Integer, nullable=False))
    last_failed_at: datetime = Field(sa_column=_when())


class SessionRow(SQLModel, table=True):
    """A signed-in device or client. Its refresh token is kept only as a SHA-256 digest; a
    row goes some time after the session ended or lapsed (see SessionService.prune)."""

    __tablename__ = "sessions"
    __table_args__ = (
        Index("ix_sessions_user_id_id", "user_id", "id"),
        Index("ix_sessions_expires_at", "expires_at"),
        Index("ix_sessions_ended_at", "ended_at"),
    )

    id: int | None = Field(default=None, sa_column=_id())
    user_id: int = Field(sa_column=_reference("users.id"))
    refresh_token_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    created_at: datetime = Field(sa_column=_when())
    last_refreshed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    expires_at: datetime = Field(sa_column=_when())
    ended_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    user_agent: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))


class RetiredRefreshTokenRow(SQLModel, table=True):
    """The digest of a refresh token already traded: sent again, it ends its session."""

    __tablename__ = "retired_refresh_tokens"
    __table_args__ = (Index("ix_retired_refresh_tokens_session_id", "session_id"),)

    token_hash: str = Field(sa_column=Column(String(64), primary_key=True))
    session_id: int = Field(sa_column=_reference("sessions.id"))
    retired_at: datetime = Field(sa_column=_when())
