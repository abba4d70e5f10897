"""SQLModel implementations of the domain's repository ports."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Executable,
    Result,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    union_all,
    update,
)
from sqlalchemy import select as sa_select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.holds import Hold, HoldId, HoldStatus, NewHold
from domain.ledger import (
    Entry,
    EntryId,
    NewTransaction,
    Transaction,
    TransactionId,
    TransactionKind,
)
from domain.model import (
    Account,
    AccountId,
    AccountKind,
    AccountStatus,
    Actor,
    FundingAccount,
    Role,
    Session,
    SessionId,
    User,
    UserId,
)
from domain.money import Currency
from domain.ports import (
    AuditReport,
    Credentials,
    ExportLine,
    NewSession,
    PageRequest,
    PeriodTotals,
    RecordedHold,
    RecordedRequest,
)
from domain.throttle import SignInFailures
from persistence.audit import audit_ledger
from persistence.mapping import (
    to_account,
    to_entry,
    to_hold,
    to_session,
    to_transaction,
    to_user,
    utc,
)
from persistence.notifications import CHANNEL, payload
from persistence.tables import (
    AccountRow,
    EntryRow,
    HoldRow,
    RetiredRefreshTokenRow,
    SessionRow,
    SignInFailureRow,
    TransactionRow,
    UserRow,
)

CUSTOMER = AccountKind.CUSTOMER.value
# The hot paths read and write through these tables with SQLAlchemy Core: a row comes back as
# a plain tuple and goes straight into a domain object, without the ORM's bookkeeping, and a
# changed account is written with one UPDATE instead of being loaded into the session first.
USERS: Table = UserRow.__table__  # type: ignore[attr-defined]
ACCOUNTS: Table = AccountRow.__table__  # type: ignore[attr-defined]
TRANSACTIONS: Table = TransactionRow.__table__  # type: ignore[attr-defined]
ENTRIES: Table = EntryRow.__table__  # type: ignore[attr-defined]


def _now() -> datetime:
    return datetime.now(UTC)


# Built once: SQLAlchemy then finds each compiled in its cache at once, and only the
# parameters change from one call to the next.
_USER_BY_ID = sa_select(USERS).where(USERS.c.id == bindparam("key"))
_CUSTOMER_ACCOUNT = sa_select(ACCOUNTS).where(
    ACCOUNTS.c.id == bindparam("key"), ACCOUNTS.c.kind == CUSTOMER
)
_LOCK_ONE = _CUSTOMER_ACCOUNT.with_for_update()
_LOCK_MANY = (
    sa_select(ACCOUNTS)
    .where(ACCOUNTS.c.id.in_(bindparam("keys", expanding=True)), ACCOUNTS.c.kind == CUSTOMER)
    .order_by(ACCOUNTS.c.id)
    .with_for_update()
)
_SAVE_ACCOUNT = (
    update(ACCOUNTS)
    .where(ACCOUNTS.c.id == bindparam("key"))
    .values(
        name=bindparam("new_name"),
        status=bindparam("new_status"),
        balance=bindparam("new_balance"),
    )
)
_FUNDING_ID = sa_select(ACCOUNTS.c.id).where(ACCOUNTS.c.funding_currency == bindparam("currency"))
_REQUEST_BY_KEY = sa_select(TRANSACTIONS).where(
    TRANSACTIONS.c.actor_id == bindparam("actor"),
    TRANSACTIONS.c.idempotency_key == bindparam("key"),
)
_RECORD_TRANSACTION = insert(TRANSACTIONS).returning(TRANSACTIONS.c.id)


_ENTRY_COLUMNS = ("transaction_id", "account_id", "amount", "balance_after", "created_at")


@functools.lru_cache(maxsize=16)
def _entry_rows(count: int, announced: bool) -> Executable:
    """One INSERT of `count` entries (a transaction has two): one statement, not a batch of
    them, built once for each count. `announced` (PostgreSQL) has the same statement NOTIFY
    the listeners of the lines' accounts, which PostgreSQL delivers once, on commit: the
    announcement costs no round trip of its own."""
    rows: list[dict[str, Any]] = [
        {name: bindparam(f"{name}_{n}") for name in _ENTRY_COLUMNS} for n in range(count)
    ]
    statement = insert(ENTRIES).values(rows)
    if announced:
        # Evaluated for each row; identical notifications of one transaction arrive once.
        notify = func.pg_notify(bindparam("channel"), bindparam("payload"))
        return statement.returning(notify)
    return statement


@functools.lru_cache(maxsize=256)
def _entry_pages(accounts: int, after: bool) -> Executable:
    """The statement of entries() for so many accounts, built once for each count: the
    account keys, the page size and the cursor are its parameters."""
    pages = []
    for n in range(accounts):
        one = sa_select(ENTRIES.c.id).where(ENTRIES.c.account_id == bindparam(f"account_{n}"))
        if after:
            one = one.where(ENTRIES.c.id < bindparam("after"))
        limited = one.order_by(ENTRIES.c.id.desc()).limit(bindparam("limit")).subquery()
        pages.append(sa_select(limited))
    wanted = union_all(*pages).subquery()
    return (
        sa_select(ENTRIES, ACCOUNTS.c.currency)
        .join(wanted, wanted.c.id == ENTRIES.c.id)
        .join(ACCOUNTS, ACCOUNTS.c.id == ENTRIES.c.account_id)
        .where(ACCOUNTS.c.kind == CUSTOMER)
        .order_by(ENTRIES.c.id.desc())
    )


async def _core(
    session: AsyncSession,
    statement: Executable,
    params: dict[str, Any] | list[dict[str, Any]] | None = None,
) -> Result[Any]:
    """Run a Core statement on the session's transaction."""
    return await session.exec(statement, params=params)  # type: ignore[call-overload,no-any-return]


def _insert(session: AsyncSession) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT."""
    return postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


class SqlUserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, *, email: str, role: Role, password_hash: str) -> User:
        row = UserRow(email=email, role=role.value, password_hash=password_hash, created_at=_now())
        self._session.add(row)
        await self._session.flush()
        return to_user(row)

    async def get(self, user_id: UserId) -> User | None:
        row = (await _core(self._session, _USER_BY_ID, {"key": user_id})).first()
        return to_user(row) if row is not None else None

    async def get_many(self, user_ids: Sequence[UserId]) -> list[User]:
        query = select(UserRow).where(col(UserRow.id).in_(set(user_ids)))
        return [to_user(row) for row in (await self._session.exec(query)).all()]

    async def credentials(self, email: str) -> Credentials | None:
        row = (await self._session.exec(select(UserRow).where(UserRow.email == email))).first()
        return Credentials(to_user(row), row.password_hash) if row is not None else None

    async def set_password(self, user_id: UserId, password_hash: str) -> None:
        await self._session.exec(
            update(UserRow).where(col(UserRow.id) == user_id).values(password_hash=password_hash)
        )

    async def lock_password(self, user_id: UserId) -> str | None:
        # FOR UPDATE on PostgreSQL; SQLite's writers already take turns (BEGIN IMMEDIATE).
        query = select(UserRow.password_hash).where(col(UserRow.id) == user_id).with_for_update()
        found: str | None = (await self._session.exec(query)).first()
        return found


def _live(now: datetime) -> list[Any]:
    return [col(SessionRow.ended_at).is_(None), col(SessionRow.expires_at) > now]


# Each start of a live statement runs these (for many starts at once), so they are built
# once, in Core: the rows are a few numbers each, and the ORM would only add to their cost.
_NEWEST_ENTRY_IDS = (
    sa_select(ENTRIES.c.account_id, func.max(ENTRIES.c.id).label("newest"))
    .where(ENTRIES.c.account_id.in_(bindparam("keys", expanding=True)))
    .group_by(ENTRIES.c.account_id)
)
_ENTRY_ACCOUNTS = (
    sa_select(ENTRIES.c.id, ENTRIES.c.account_id)
    .join(ACCOUNTS, ACCOUNTS.c.id == ENTRIES.c.account_id)
    .where(ENTRIES.c.id.in_(bindparam("keys", expanding=True)), ACCOUNTS.c.kind == CUSTOMER)
)

# Every request runs this, so it is built once: only its parameters change.
_ACTOR = (
    select(UserRow.role)
    .join(SessionRow, col(SessionRow.user_id) == col(UserRow.id))
    .where(
        col(SessionRow.id) == bindparam("session_id"),
        col(UserRow.id) == bindparam("user_id"),
        col(SessionRow.ended_at).is_(None),
        col(SessionRow.expires_at) > bindparam("now"),
    )
)


class SqlSessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, new: NewSession) -> Session:
        row = SessionRow(
            user_id=new.user_id,
            refresh_token_hash=new.refresh_token_hash,
            created_at=new.created_at,
            expires_at=new.expires_at,
            user_agent=new.user_agent,
        )
        self._session.add(row)
        await self._session.flush()
        return to_session(row)

    async def rotate(
        self, old_hash: str, new_hash: str, *, now: datetime, expires_at: datetime
    ) -> Session | None:
        # One conditional UPDATE: a second rotation of the same token waits for the first's
        # row lock (PostgreSQL) or its write turn (SQLite), then no longer matches.
        statement = (
            update(SessionRow)
            .where(col(SessionRow.refresh_token_hash) == old_hash, *_live(now))
            .values(refresh_token_hash=new_hash, last_refreshed_at=now, expires_at=expires_at)
            .returning(*SessionRow.__table__.columns)  # type: ignore[attr-defined]
        )
        found = (await self._session.exec(statement)).first()
        if found is None:
            return None
        session = to_session(SessionRow(**dict(found._mapping)))
        self._session.add(
            RetiredRefreshTokenRow(token_hash=old_hash, session_id=session.id, retired_at=now)
        )
        await self._session.flush()
        return session

    async def retired(self, token_hash: str) -> SessionId | None:
        query = select(RetiredRefreshTokenRow.session_id).where(
            RetiredRefreshTokenRow.token_hash == token_hash
        )
        found = (await self._session.exec(query)).first()
        return SessionId(found) if found is not None else None

    async def forget_retired(self, session_id: SessionId, before: datetime) -> None:
        await self._session.exec(
            delete(RetiredRefreshTokenRow).where(
                col(RetiredRefreshTokenRow.session_id) == session_id,
                col(RetiredRefreshTokenRow.retired_at) < before,
            )
        )

    async def end(self, user_id: UserId, session_id: SessionId | None, *, now: datetime) -> int:
        conditions = [col(SessionRow.user_id) == user_id, *_live(now)]
        if session_id is not None:
            conditions.append(col(SessionRow.id) == session_id)
        result = await self._session.exec(
            update(SessionRow).where(*conditions).values(ended_at=now)
        )
        return int(result.rowcount)

    async def end_oldest(self, user_id: UserId, *, keep: int, now: datetime) -> None:
        live = [col(SessionRow.user_id) == user_id, *_live(now)]
        newest = select(col(SessionRow.id)).where(*live).order_by(col(SessionRow.id).desc())
        await self._session.exec(
            update(SessionRow)
            .where(*live, col(SessionRow.id).not_in(newest.limit(keep).scalar_subquery()))
            .values(ended_at=now)
        )

    async def end_by_id(self, session_id: SessionId, *, now: datetime) -> None:
        await self._session.exec(
            update(SessionRow)
            .where(col(SessionRow.id) == session_id, col(SessionRow.ended_at).is_(None))
            .values(ended_at=now)
        )

    async def actor(self, user_id: UserId, session_id: SessionId, now: datetime) -> Actor | None:
        values = {"session_id": session_id, "user_id": user_id, "now": now}
        role = (await self._session.exec(_ACTOR, params=values)).first()
        return Actor(user_id, Role(role)) if role is not None else None

    async def get_live(
        self, user_id: UserId, session_id: SessionId, now: datetime
    ) -> Session | None:
        query = select(SessionRow).where(
            col(SessionRow.id) == session_id, col(SessionRow.user_id) == user_id, *_live(now)
        )
        row = (await self._session.exec(query)).first()
        return to_session(row) if row is not None else None

    async def list_live(self, user_id: UserId, now: datetime, page: PageRequest) -> list[Session]:
        query = select(SessionRow).where(col(SessionRow.user_id) == user_id, *_live(now))
        if page.after is not None:
            query = query.where(col(SessionRow.id) < page.after)
        query = query.order_by(col(SessionRow.id).desc()).limit(page.first + 1)
        return [to_session(row) for row in (await self._session.exec(query)).all()]

    async def live_ids(self, session_ids: Sequence[SessionId], now: datetime) -> set[SessionId]:
        query = select(col(SessionRow.id)).where(
            col(SessionRow.id).in_(set(session_ids)), *_live(now)
        )
        return {SessionId(key) for key in (await self._session.exec(query)).all() if key}

    async def prune(self, before: datetime, *, limit: int) -> int:
        # One look, which usually finds nothing and ends there; the deletes name the sessions
        # it found, so both see the same ones.
        over = (
            select(col(SessionRow.id))
            .where(
                or_(
                    and_(col(SessionRow.ended_at).is_not(None), col(SessionRow.ended_at) < before),
                    col(SessionRow.expires_at) < before,
                )
            )
            .order_by(col(SessionRow.id))
            .limit(limit)
        )
        doomed = [key for key in (await self._session.exec(over)).all() if key is not None]
        if not doomed:
            return 0
        await self._session.exec(
            delete(RetiredRefreshTokenRow).where(col(RetiredRefreshTokenRow.session_id).in_(doomed))
        )
        result = await self._session.exec(delete(SessionRow).where(col(SessionRow.id).in_(doomed)))
        return int(result.rowcount)


class SqlSignInFailureRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def lock(self, email: str) -> SignInFailures:
        # An upsert that changes nothing: it creates the row when there is none and, either
        # way, holds its lock and returns it, in one statement on both databases.
        failures = col(SignInFailureRow.failures)
        insert = _insert(self._session)(SignInFailureRow).values(
            email=email, failures=0, last_failed_at=_now()
        )
        statement = insert.on_conflict_do_update(
            index_elements=[col(SignInFailureRow.email)], set_={"failures": failures}
        ).returning(failures, col(SignInFailureRow.last_failed_at))
        count, last_failed_at = (await self._session.exec(statement)).one()
        return SignInFailures(email, count, utc(last_failed_at) if count else None)

    async def count_failure(self, email: str, at: datetime) -> None:
        await self._session.exec(
            update(SignInFailureRow)
            .where(col(SignInFailureRow.email) == email)
            .values(failures=col(SignInFailureRow.failures) + 1, last_failed_at=at)
        )

    async def clear(self, email: str) -> None:
        await self._session.exec(
            delete(SignInFailureRow).where(col(SignInFailureRow.email) == email)
        )

    async def prune(self, last_failed_before: datetime) -> None:
        await self._session.exec(
            delete(SignInFailureRow).where(
                col(SignInFailureRow.last_failed_at) < last_failed_before
            )
        )


def _customer(owner_id: UserId | None, status: AccountStatus | None) -> list[Any]:
    """The conditions that pick customer accounts, of one owner and in one status if given."""
    conditions: list[Any] = [AccountRow.kind == CUSTOMER]
    if owner_id is not None:
        conditions.append(AccountRow.owner_id == owner_id)
    if status is not None:
        conditions.append(AccountRow.status == status.value)
    return conditions


class SqlAccountRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, *, owner_id: UserId, name: str, currency: Currency) -> Account:
        row = AccountRow(
            owner_id=owner_id,
            kind=CUSTOMER,
            name=name,
            currency=currency.code,
            balance=0,
            status=AccountStatus.OPEN.value,
            created_at=_now(),
        )
        self._session.add(row)
        await self._session.flush()
        return to_account(row)

    async def get(self, account_id: AccountId) -> Account | None:
        row = (await _core(self._session, _CUSTOMER_ACCOUNT, {"key": account_id})).first()
        return to_account(row) if row is not None else None

    async def get_many(self, account_ids: Sequence[AccountId]) -> list[Account]:
        if not account_ids:
            return []
        query = sa_select(ACCOUNTS).where(
            ACCOUNTS.c.id.in_(set(account_ids)), ACCOUNTS.c.kind == CUSTOMER
        )
        return [to_account(row) for row in (await _core(self._session, query)).all()]

    async def lock(self, account_ids: Sequence[AccountId]) -> dict[AccountId, Account]:
        keys = sorted(set(account_ids))
        if not keys:
            return {}
        # One key is the usual case (a deposit, a rename): an equality, not a one-item list.
        if len(keys) == 1:
            rows = (await _core(self._session, _LOCK_ONE, {"key": keys[0]})).all()
        else:
            rows = (await _core(self._session, _LOCK_MANY, {"keys": keys})).all()
        return {account.id: account for account in map(to_account, rows)}

    async def funding(self, currency: Currency) -> FundingAccount:
        # No FOR UPDATE: the row is never written after it is made, so deposits and
        # withdrawals in one currency do not queue on it.
        params = {"currency": currency.code}
        key = (await _core(self._session, _FUNDING_ID, params)).scalar()
        if key is None:
            # The first movement in a currency creates its funding account; if another one
            # does so at the same moment, the unique currency makes this insert a no-op.
            await self._create_funding(currency)
            key = (await _core(self._session, _FUNDING_ID, params)).scalar_one()
        if key is None:  # never, for a primary key; said for the type checker
            raise LookupError(f"no funding account for {currency}")
        return FundingAccount(AccountId(key), currency)

    async def _create_funding(self, currency: Currency) -> None:
        values: dict[str, Any] = {
            "kind": AccountKind.FUNDING.value,
            "name": f"Funding {currency.code}",
            "currency": currency.code,
            "balance": 0,
            "status": AccountStatus.OPEN.value,
            "funding_currency": currency.code,
            "created_at": _now(),
        }
        insert = _insert(self._session)
        await self._session.exec(insert(AccountRow).values(**values).on_conflict_do_nothing())

    async def save(self, account: Account) -> None:
        # The session may hold a row of this account from add(): flush it first, so that
        # this UPDATE comes after its INSERT.
        await self._session.flush()
        values = {
            "key": account.id,
            "new_name": account.name,
            "new_status": account.status.value,
            "new_balance": account.balance.minor_units,
        }
        result = await self._session.exec(_SAVE_ACCOUNT, params=values)
        if result.rowcount != 1:
            raise LookupError(f"account {account.id} is not stored")

    def _customer_accounts(self, owner_id: UserId | None, status: AccountStatus | None) -> Any:
        return sa_select(ACCOUNTS).where(*_customer(owner_id, status))

    async def list_by_owners(
        self, owner_ids: Sequence[UserId], *, status: AccountStatus | None, page: PageRequest
    ) -> dict[UserId, list[Account]]:
        """Each owner's page in one statement: a keyset LIMIT query per owner, UNION ALL."""
        if not owner_ids:
            return {}
        pages = []
        for owner_id in sorted(set(owner_ids)):
            one = select(col(AccountRow.id)).where(*_customer(owner_id, status))
            if page.after is not None:
                one = one.where(col(AccountRow.id) > page.after)
            limited = one.order_by(col(AccountRow.id)).limit(page.first + 1).subquery()
            pages.append(sa_select(limited))
        wanted = union_all(*pages).subquery()
        query = (
            sa_select(ACCOUNTS).join(wanted, wanted.c.id == ACCOUNTS.c.id).order_by(ACCOUNTS.c.id)
        )
        found: dict[UserId, list[Account]] = {owner_id: [] for owner_id in owner_ids}
        for account in map(to_account, (await _core(self._session, query)).all()):
            found[account.owner_id].append(account)
        return found

    async def count_by_owners(
        self, owner_ids: Sequence[UserId], *, status: AccountStatus | None
    ) -> dict[UserId, int]:
        query = (
            select(col(AccountRow.owner_id), func.count())
            .where(*_customer(None, status), col(AccountRow.owner_id).in_(set(owner_ids)))
            .group_by(col(AccountRow.owner_id))
        )
        rows = (await self._session.exec(query)).all()
        return {UserId(owner): int(total) for owner, total in rows if owner is not None}

    async def list(
        self, *, owner_id: UserId | None, status: AccountStatus | None, page: PageRequest
    ) -> list[Account]:
        query = self._customer_accounts(owner_id, status)
        if page.after is not None:
            query = query.where(ACCOUNTS.c.id > page.after)
        query = query.order_by(ACCOUNTS.c.id).limit(page.first + 1)
        return [to_account(row) for row in (await _core(self._session, query)).all()]

    async def count(self, *, owner_id: UserId | None, status: AccountStatus | None) -> int:
        query = self._customer_accounts(owner_id, status).subquery()
        total = await self._session.exec(select(func.count()).select_from(query))
        return int(total.one())


class SqlTransactionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def record(self, new: NewTransaction) -> Transaction:
        """Two statements: the transaction, which returns its id, then all its entries."""
        now = _now()
        values = {
            "kind": new.kind.value,
            "amount": new.amount.minor_units,
            "currency": new.amount.currency.code,
            "source_account_id": new.source_account_id,
            "destination_account_id": new.destination_account_id,
            "description": new.description,
            "actor_id": new.actor_id,
            "idempotency_key": new.idempotency.key if new.idempotency else None,
            "request_hash": new.idempotency.request_hash if new.idempotency else None,
            "created_at": now,
            "hold_id": new.hold_id,
            "reverses_id": new.reverses_id,
        }
        key = (await _core(self._session, _RECORD_TRANSACTION, values)).scalar_one()
        transaction = Transaction(
            id=TransactionId(key),
            kind=new.kind,
            amount=new.amount,
            source_account_id=new.source_account_id,
            destination_account_id=new.destination_account_id,
            description=new.description,
            actor_id=new.actor_id,
            created_at=now,
            hold_id=new.hold_id,
            reverses_id=new.reverses_id,
        )
        params: dict[str, Any] = {}
        for n, entry in enumerate(new.entries):
            after = entry.balance_after
            params |= {
                f"transaction_id_{n}": transaction.id,
                f"account_id_{n}": entry.account_id,
                f"amount_{n}": entry.amount.minor_units,
                f"balance_after_{n}": after.minor_units if after is not None else None,
                f"created_at_{n}": now,
            }
        announced = self._session.get_bind().dialect.name == "postgresql"
        if announced:
            params |= {"channel": CHANNEL, "payload": payload([e.account_id for e in new.entries])}
        await _core(self._session, _entry_rows(len(new.entries), announced), params)
        return transaction

    async def get(self, transaction_id: TransactionId) -> Transaction | None:
        row = await self._session.get(TransactionRow, transaction_id)
        return to_transaction(row) if row is not None else None

    async def find_request(self, actor_id: UserId, key: str) -> RecordedRequest | None:
        params = {"actor": actor_id, "key": key}
        row = (await _core(self._session, _REQUEST_BY_KEY, params)).first()
        if row is None or row.request_hash is None:
            return None
        return RecordedRequest(to_transaction(row), row.request_hash)

    async def entries(
        self, account_ids: Sequence[AccountId], page: PageRequest
    ) -> dict[AccountId, list[Entry]]:
        """Each account's page in one statement: a keyset LIMIT query per account, UNION ALL."""
        if not account_ids:
            return {}
        keys = sorted(set(account_ids))
        query = _entry_pages(len(keys), page.after is not None)
        params: dict[str, Any] = {f"account_{n}": key for n, key in enumerate(keys)}
        params["limit"] = page.first + 1
        if page.after is not None:
            params["after"] = page.after
        found: dict[AccountId, list[Entry]] = {account_id: [] for account_id in account_ids}
        for row in (await _core(self._session, query, params)).all():
            found[AccountId(row.account_id)].append(to_entry(row, row.currency))
        return found

    async def newest_entry_ids(self, account_ids: Sequence[AccountId]) -> dict[AccountId, EntryId]:
        if not account_ids:
            return {}
        rows = (
            await _core(self._session, _NEWEST_ENTRY_IDS, {"keys": list(set(account_ids))})
        ).all()
        return {AccountId(row.account_id): EntryId(row.newest) for row in rows}

    async def entries_after(
        self, account_id: AccountId, after: EntryId | None, limit: int
    ) -> list[Entry]:
        # Entry ids come from one sequence and a customer account's entries are written
        # under its row lock, so within one such account id order is commit order.
        query = (
            select(EntryRow, AccountRow.currency)
            .join(AccountRow, col(AccountRow.id) == col(EntryRow.account_id))
            .where(
                EntryRow.account_id == account_id,
                col(EntryRow.id) > (after or 0),
                AccountRow.kind == CUSTOMER,
            )
            .order_by(col(EntryRow.id))
            .limit(limit)
        )
        return [to_entry(row, code) for row, code in (await self._session.exec(query)).all()]

    async def get_many(self, transaction_ids: Sequence[TransactionId]) -> list[Transaction]:
        query = select(TransactionRow).where(col(TransactionRow.id).in_(set(transaction_ids)))
        return [to_transaction(row) for row in (await self._session.exec(query)).all()]

    async def get_entry(self, entry_id: EntryId) -> Entry | None:
        query = (
            select(EntryRow, AccountRow.currency)
            .join(AccountRow, col(AccountRow.id) == col(EntryRow.account_id))
            .where(EntryRow.id == entry_id, AccountRow.kind == CUSTOMER)
        )
        found = (await self._session.exec(query)).first()
        return to_entry(*found) if found is not None else None

    async def reversals(
        self, transaction_ids: Sequence[TransactionId]
    ) -> dict[TransactionId, Transaction]:
        query = select(TransactionRow).where(
            col(TransactionRow.reverses_id).in_(set(transaction_ids))
        )
        found = map(to_transaction, (await self._session.exec(query)).all())
        return {t.reverses_id: t for t in found if t.reverses_id is not None}

    async def balance_at(self, account_id: AccountId, at: datetime) -> int | None:
        # One row through ix_entries_account_id_created_at_id, however long the history.
        query = (
            select(col(EntryRow.balance_after))
            .where(EntryRow.account_id == account_id, col(EntryRow.created_at) < at)
            .order_by(col(EntryRow.created_at).desc(), col(EntryRow.id).desc())
            .limit(1)
        )
        return (await self._session.exec(query)).first()

    def _period(self, account_id: AccountId, start: datetime, end: datetime) -> list[Any]:
        return [
            EntryRow.account_id == account_id,
            col(EntryRow.created_at) >= start,
            col(EntryRow.created_at) < end,
        ]

    async def period_totals(
        self, account_id: AccountId, start: datetime, end: datetime
    ) -> PeriodTotals:
        amount = col(EntryRow.amount)
        query = select(
            func.sum(case((amount > 0, amount), else_=0)),
            func.sum(case((amount < 0, -amount), else_=0)),
        ).where(*self._period(account_id, start, end))
        money_in, money_out = (await self._session.exec(query)).one()
        return PeriodTotals(int(money_in or 0), int(money_out or 0))

    async def period_entries(
        self,
        account_id: AccountId,
        start: datetime,
        end: datetime,
        page: PageRequest,
        *,
        oldest_first: bool = False,
    ) -> list[Entry]:
        query = (
            select(EntryRow, AccountRow.currency)
            .join(AccountRow, col(AccountRow.id) == col(EntryRow.account_id))
            .where(*self._period(account_id, start, end), AccountRow.kind == CUSTOMER)
        )
        key = col(EntryRow.id)
        if page.after is not None:
            query = query.where(key > page.after if oldest_first else key < page.after)
        query = query.order_by(key if oldest_first else key.desc()).limit(page.first + 1)
        return [to_entry(row, code) for row, code in (await self._session.exec(query)).all()]

    async def export_lines(
        self,
        account_id: AccountId,
        start: datetime,
        end: datetime,
        after: tuple[datetime, EntryId] | None,
        limit: int,
    ) -> list[ExportLine]:
        # Plain columns, no ORM objects: an export reads many lines, and this is its loop.
        # Keyset on (created_at, id), the index's order, so that each batch starts where the
        # last one stopped instead of sorting the whole period again.
        created_at, key = col(EntryRow.created_at), col(EntryRow.id)
        conditions: list[Any] = self._period(account_id, start, end)
        if after is not None:
            moment, last = after
            conditions.append(or_(created_at > moment, and_(created_at == moment, key > last)))
        # The batch of lines first, through the index; only then their transactions, so that
        # the join never reads more of them than the batch names.
        lines = (
            sa_select(
                key.label("id"),
                col(EntryRow.transaction_id).label("transaction_id"),
                col(EntryRow.amount).label("amount"),
                col(EntryRow.balance_after).label("balance_after"),
                created_at.label("created_at"),
            )
            .where(*conditions)
            .order_by(created_at, key)
            .limit(limit)
            .subquery()
        )
        query = (
            sa_select(
                lines.c.id,
                lines.c.transaction_id,
                col(TransactionRow.kind),
                col(TransactionRow.description),
                lines.c.amount,
                lines.c.balance_after,
                lines.c.created_at,
            )
            .join(TransactionRow, col(TransactionRow.id) == lines.c.transaction_id)
            .order_by(lines.c.created_at, lines.c.id)
        )
        # sqlmodel types exec() for its own select(), which takes fewer columns than this.
        rows = (await self._session.exec(query)).all()  # type: ignore[call-overload]
        return [
            ExportLine(
                EntryId(key),
                TransactionId(transaction),
                kind,
                description,
                amount,
                after_it if after_it is not None else 0,
                utc(when),
            )
            for key, transaction, kind, description, amount, after_it, when in rows
        ]

    async def entry_accounts(self, entry_ids: Sequence[EntryId]) -> dict[EntryId, AccountId]:
        if not entry_ids:
            return {}
        rows = (await _core(self._session, _ENTRY_ACCOUNTS, {"keys": list(set(entry_ids))})).all()
        return {EntryId(row.id): AccountId(row.account_id) for row in rows}

    async def audit(self) -> AuditReport:
        return await audit_ledger(self._session)


def _capture() -> Any:
    """The id of a hold's capture, found through ix_transactions_hold_id for each hold read."""
    return (
        sa_select(func.min(TransactionRow.id))
        .where(
            col(TransactionRow.hold_id) == col(HoldRow.id),
            col(TransactionRow.kind) != TransactionKind.REVERSAL.value,
        )
        .scalar_subquery()
    )


class SqlHoldRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, new: NewHold) -> Hold:
        row = HoldRow(
            account_id=new.account_id,
            placed_by=new.placed_by,
            amount=new.amount.minor_units,
            currency=new.amount.currency.code,
            captured=0,
            status=HoldStatus.PENDING.value,
            destination_account_id=new.destination_account_id,
            description=new.description,
            expires_at=new.expires_at,
            created_at=_now(),
            idempotency_key=new.idempotency.key if new.idempotency else None,
            request_hash=new.idempotency.request_hash if new.idempotency else None,
        )
        self._session.add(row)
        await self._session.flush()
        return to_hold(row, None)

    async def _read(self, *conditions: Any) -> list[Hold]:
        query = (
            select(HoldRow, _capture())
            .where(*conditions)
            .order_by(col(HoldRow.id).desc())
            .execution_options(populate_existing=True)
        )
        return [to_hold(row, key) for row, key in (await self._session.exec(query)).all()]

    async def get(self, hold_id: HoldId) -> Hold | None:
        found = await self._read(col(HoldRow.id) == hold_id)
        return found[0] if found else None

    async def get_many(self, hold_ids: Sequence[HoldId]) -> list[Hold]:
        return await self._read(col(HoldRow.id).in_(set(hold_ids)))

    async def save(self, hold: Hold) -> None:
        await self._session.exec(
            update(HoldRow)
            .where(col(HoldRow.id) == hold.id)
            .values(
                status=hold.recorded_status.value,
                captured=hold.captured.minor_units,
                resolved_at=hold.resolved_at,
            )
        )

    async def find_request(self, actor_id: UserId, key: str) -> RecordedHold | None:
        query = select(HoldRow).where(HoldRow.placed_by == actor_id, HoldRow.idempotency_key == key)
        row = (await self._session.exec(query)).first()
        if row is None or row.request_hash is None or row.id is None:
            return None
        hold = await self.get(HoldId(row.id))
        return RecordedHold(hold, row.request_hash) if hold is not None else None

    async def reserved(
        self, account_ids: Sequence[AccountId], now: datetime
    ) -> dict[AccountId, int]:
        if not account_ids:
            return {}
        query = (
            select(col(HoldRow.account_id), func.sum(HoldRow.amount))
            .where(
                col(HoldRow.account_id).in_(set(account_ids)),
                HoldRow.status == HoldStatus.PENDING.value,
                col(HoldRow.expires_at) > now,
            )
            .group_by(col(HoldRow.account_id))
        )
        rows = (await self._session.exec(query)).all()
        return {AccountId(key): int(total or 0) for key, total in rows}

    async def list(
        self,
        account_id: AccountId,
        *,
        status: HoldStatus | None,
        page: PageRequest,
        now: datetime,
    ) -> list[Hold]:
        conditions: list[Any] = [HoldRow.account_id == account_id]
        recorded, expires_at = col(HoldRow.status), col(HoldRow.expires_at)
        if status is HoldStatus.PENDING:
            conditions += [recorded == HoldStatus.PENDING.value, expires_at > now]
        elif status is HoldStatus.EXPIRED:
            conditions.append(
                or_(
                    recorded == HoldStatus.EXPIRED.value,
                    and_(recorded == HoldStatus.PENDING.value, expires_at <= now),
                )
            )
        elif status is not None:
            conditions.append(recorded == status.value)
        if page.after is not None:
            conditions.append(col(HoldRow.id) < page.after)
        query = (
            select(HoldRow, _capture())
            .where(*conditions)
            .order_by(col(HoldRow.id).desc())
            .limit(page.first + 1)
        )
        return [to_hold(row, key) for row, key in (await self._session.exec(query)).all()]
