"""SQLModel implementations of the domain's repository ports."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, union_all, update
from sqlalchemy import select as sa_select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.ledger import Entry, EntryId, NewTransaction, Transaction, TransactionId
from domain.model import (
    Account,
    AccountId,
    AccountKind,
    AccountStatus,
    FundingAccount,
    Role,
    User,
    UserId,
)
from domain.money import Currency
from domain.ports import AuditReport, Credentials, PageRequest, RecordedRequest
from domain.throttle import SignInFailures
from persistence.audit import audit_ledger
from persistence.mapping import to_account, to_entry, to_transaction, to_user, utc
from persistence.notifications import announce
from persistence.tables import AccountRow, EntryRow, SignInFailureRow, TransactionRow, UserRow

CUSTOMER = AccountKind.CUSTOMER.value


def _now() -> datetime:
    return datetime.now(UTC)


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
        row = await self._session.get(UserRow, user_id)
        return to_user(row) if row is not None else None

    async def get_many(self, user_ids: Sequence[UserId]) -> list[User]:
        query = select(UserRow).where(col(UserRow.id).in_(set(user_ids)))
        return [to_user(row) for row in (await self._session.exec(query)).all()]

    async def credentials(self, email: str) -> Credentials | None:
        row = (await self._session.exec(select(UserRow).where(UserRow.email == email))).first()
        return Credentials(to_user(row), row.password_hash) if row is not None else None


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
        row = await self._session.get(AccountRow, account_id)
        return to_account(row) if row is not None and row.kind == CUSTOMER else None

    async def get_many(self, account_ids: Sequence[AccountId]) -> list[Account]:
        query = select(AccountRow).where(
            col(AccountRow.id).in_(set(account_ids)), AccountRow.kind == CUSTOMER
        )
        return [to_account(row) for row in (await self._session.exec(query)).all()]

    async def lock(self, account_ids: Sequence[AccountId]) -> dict[AccountId, Account]:
        query = (
            select(AccountRow)
            .where(col(AccountRow.id).in_(sorted(set(account_ids))), AccountRow.kind == CUSTOMER)
            .order_by(col(AccountRow.id))
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        rows = (await self._session.exec(query)).all()
        return {account.id: account for account in map(to_account, rows)}

    async def funding(self, currency: Currency) -> FundingAccount:
        # No FOR UPDATE: the row is never written after it is made, so deposits and
        # withdrawals in one currency do not queue on it.
        query = select(col(AccountRow.id)).where(AccountRow.funding_currency == currency.code)
        key = (await self._session.exec(query)).first()
        if key is None:
            # The first movement in a currency creates its funding account; if another one
            # does so at the same moment, the unique currency makes this insert a no-op.
            await self._create_funding(currency)
            key = (await self._session.exec(query)).one()
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
        row = await self._session.get(AccountRow, account.id)
        if row is None:
            raise LookupError(f"account {account.id} is not stored")
        row.name = account.name
        row.status = account.status.value
        row.balance = account.balance.minor_units
        await self._session.flush()

    def _customer_accounts(self, owner_id: UserId | None, status: AccountStatus | None) -> Any:
        return select(AccountRow).where(*_customer(owner_id, status))

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
            select(AccountRow)
            .join(wanted, wanted.c.id == col(AccountRow.id))
            .order_by(col(AccountRow.id))
        )
        found: dict[UserId, list[Account]] = {owner_id: [] for owner_id in owner_ids}
        for account in map(to_account, (await self._session.exec(query)).all()):
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
            query = query.where(col(AccountRow.id) > page.after)
        query = query.order_by(col(AccountRow.id)).limit(page.first + 1)
        return [to_account(row) for row in (await self._session.exec(query)).all()]

    async def count(self, *, owner_id: UserId | None, status: AccountStatus | None) -> int:
        query = self._customer_accounts(owner_id, status).subquery()
        total = await self._session.exec(select(func.count()).select_from(query))
        return int(total.one())


class SqlTransactionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def record(self, new: NewTransaction) -> Transaction:
        now = _now()
        row = TransactionRow(
            kind=new.kind.value,
            amount=new.amount.minor_units,
            currency=new.amount.currency.code,
            source_account_id=new.source_account_id,
            destination_account_id=new.destination_account_id,
            description=new.description,
            actor_id=new.actor_id,
            idempotency_key=new.idempotency.key if new.idempotency else None,
            request_hash=new.idempotency.request_hash if new.idempotency else None,
            created_at=now,
        )
        self._session.add(row)
        await self._session.flush()
        transaction = to_transaction(row)
        self._session.add_all(
            EntryRow(
                transaction_id=transaction.id,
                account_id=entry.account_id,
                amount=entry.amount.minor_units,
                balance_after=(
                    entry.balance_after.minor_units if entry.balance_after is not None else None
                ),
                created_at=now,
            )
            for entry in new.entries
        )
        await self._session.flush()
        await announce(self._session, [entry.account_id for entry in new.entries])
        return transaction

    async def get(self, transaction_id: TransactionId) -> Transaction | None:
        row = await self._session.get(TransactionRow, transaction_id)
        return to_transaction(row) if row is not None else None

    async def find_request(self, actor_id: UserId, key: str) -> RecordedRequest | None:
        query = select(TransactionRow).where(
            TransactionRow.actor_id == actor_id, TransactionRow.idempotency_key == key
        )
        row = (await self._session.exec(query)).first()
        if row is None or row.request_hash is None:
            return None
        return RecordedRequest(to_transaction(row), row.request_hash)

    async def entries(
        self, account_ids: Sequence[AccountId], page: PageRequest
    ) -> dict[AccountId, list[Entry]]:
        """Each account's page in one statement: a keyset LIMIT query per account, UNION ALL."""
        if not account_ids:
            return {}
        pages = []
        for account_id in sorted(set(account_ids)):
            one = select(col(EntryRow.id)).where(EntryRow.account_id == account_id)
            if page.after is not None:
                one = one.where(col(EntryRow.id) < page.after)
            limited = one.order_by(col(EntryRow.id).desc()).limit(page.first + 1).subquery()
            pages.append(sa_select(limited))
        wanted = union_all(*pages).subquery()
        query = (
            select(EntryRow, AccountRow.currency)
            .join(wanted, wanted.c.id == col(EntryRow.id))
            .join(AccountRow, col(AccountRow.id) == col(EntryRow.account_id))
            .where(AccountRow.kind == CUSTOMER)
            .order_by(col(EntryRow.id).desc())
        )
        found: dict[AccountId, list[Entry]] = {account_id: [] for account_id in account_ids}
        for row, code in (await self._session.exec(query)).all():
            found[AccountId(row.account_id)].append(to_entry(row, code))
        return found

    async def newest_entry_ids(self, account_ids: Sequence[AccountId]) -> dict[AccountId, EntryId]:
        query = (
            select(EntryRow.account_id, func.max(EntryRow.id))
            .where(col(EntryRow.account_id).in_(set(account_ids)))
            .group_by(col(EntryRow.account_id))
        )
        rows = (await self._session.exec(query)).all()
        return {
            AccountId(account_id): EntryId(newest)
            for account_id, newest in rows
            if newest is not None  # never, for a group of rows; said for the type checker
        }

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

    async def get_entries(self, entry_ids: Sequence[EntryId]) -> list[Entry]:
        if not entry_ids:
            return []
        query = (
            select(EntryRow, AccountRow.currency)
            .join(AccountRow, col(AccountRow.id) == col(EntryRow.account_id))
            .where(col(EntryRow.id).in_(set(entry_ids)), AccountRow.kind == CUSTOMER)
        )
        return [to_entry(row, code) for row, code in (await self._session.exec(query)).all()]

    async def audit(self) -> AuditReport:
        return await audit_ledger(self._session)
