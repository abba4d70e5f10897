"""The ledger audit as a few aggregate queries, so that it costs no memory per row."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Numeric, and_, cast, func, or_
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.holds import HoldId, HoldStatus
from domain.ledger import TransactionId, TransactionKind
from domain.model import AccountId, AccountKind
from domain.ports import AuditReport
from persistence.tables import AccountRow, EntryRow, HoldRow, TransactionRow

CUSTOMER = AccountKind.CUSTOMER.value
# SQLite's SUM() fails past 64 bits. It sums each value's high and low halves apart instead:
# each half is below 2**32, so neither sum overflows before some 2**31 rows.
_HALF = 2**32


def _wide_sum(dialect: str, column: Any) -> list[Any]:
    """Columns whose values, joined by _joined(), are the exact sum of `column`."""
    if dialect == "postgresql":
        return [func.sum(cast(column, Numeric))]
    # SQLite's integer "/" and "%" both round towards zero, so value == high * 2**32 + low.
    return [func.sum(column.op("/")(_HALF)), func.sum(column.op("%")(_HALF))]


def _joined(parts: Sequence[int | Decimal | None]) -> int:
    if len(parts) == 1:
        return int(parts[0] or 0)
    high, low = parts
    return int(high or 0) * _HALF + int(low or 0)


async def _mismatched_accounts(session: AsyncSession) -> list[AccountId]:
    """Customer balances that differ from the sum of their entries or the last balance after
    one, or are below zero; and funding accounts that store a balance, which they keep none of."""
    totals = (
        select(
            col(EntryRow.account_id).label("account_id"),
            func.sum(EntryRow.amount).label("total"),
            func.max(EntryRow.id).label("last_id"),
        )
        .join(AccountRow, col(AccountRow.id) == col(EntryRow.account_id))
        .where(AccountRow.kind == CUSTOMER)
        .group_by(col(EntryRow.account_id))
        .subquery()
    )
    last = aliased(EntryRow)
    customer = col(AccountRow.kind) == CUSTOMER
    query = (
        select(col(AccountRow.id))
        .outerjoin(totals, totals.c.account_id == col(AccountRow.id))
        .outerjoin(last, col(last.id) == totals.c.last_id)
        .where(
            or_(
                and_(
                    customer,
                    or_(
                        col(AccountRow.balance) != func.coalesce(totals.c.total, 0),
                        and_(
                            totals.c.last_id.is_not(None),
                            col(last.balance_after).is_distinct_from(AccountRow.balance),
                        ),
                        col(AccountRow.balance) < 0,
                    ),
                ),
                and_(~customer, col(AccountRow.balance) != 0),
            )
        )
        .order_by(col(AccountRow.id))
    )
    return [AccountId(key) for key in (await session.exec(query)).all() if key is not None]


async def _unbalanced_transactions(session: AsyncSession) -> list[TransactionId]:
    """Transactions whose entries do not sum to zero, or that have fewer than two."""
    query = (
        select(col(TransactionRow.id))
        .outerjoin(EntryRow, col(EntryRow.transaction_id) == col(TransactionRow.id))
        .group_by(col(TransactionRow.id))
        .having(
            or_(func.coalesce(func.sum(EntryRow.amount), 0) != 0, func.count(col(EntryRow.id)) < 2)
        )
        .order_by(col(TransactionRow.id))
    )
    return [TransactionId(key) for key in (await session.exec(query)).all() if key is not None]


async def _unbalanced_currencies(session: AsyncSession) -> list[str]:
    """Currencies whose funding entries do not offset what the customers hold: the funding
    account's balance, the sum of its entries, must be minus the customers' balances. Both
    sums may pass 64 bits, so they are summed exactly."""
    dialect = session.get_bind().dialect.name
    held = (
        select(col(AccountRow.currency), *_wide_sum(dialect, col(AccountRow.balance)))
        .where(AccountRow.kind == CUSTOMER)
        .group_by(col(AccountRow.currency))
    )
    funded = (
        select(col(AccountRow.currency), *_wide_sum(dialect, col(EntryRow.amount)))
        .join(EntryRow, col(EntryRow.account_id) == col(AccountRow.id))
        .where(AccountRow.kind != CUSTOMER)
        .group_by(col(AccountRow.currency))
    )
    totals: dict[str, int] = {}
    for query in (held, funded):
        for code, *parts in (await session.exec(query)).all():
            totals[code] = totals.get(code, 0) + _joined(parts)
    return sorted(code for code, total in totals.items() if total != 0)


async def _overheld_accounts(session: AsyncSession, now: datetime) -> list[AccountId]:
    """Accounts whose pending, unexpired holds reserve more than their balance."""
    query = (
        select(col(AccountRow.id))
        .join(HoldRow, col(HoldRow.account_id) == col(AccountRow.id))
        .where(HoldRow.status == HoldStatus.PENDING.value, col(HoldRow.expires_at) > now)
        .group_by(col(AccountRow.id), col(AccountRow.balance))
        .having(func.sum(HoldRow.amount) > AccountRow.balance)
    )
    return [AccountId(key) for key in (await session.exec(query)).all() if key is not None]


async def _faulty_holds(session: AsyncSession) -> list[HoldId]:
    """Holds captured more than once, captured without a capture or for another amount than
    it moved, or with a capture while not captured."""
    captures = (
        select(
            col(TransactionRow.hold_id).label("hold_id"),
            func.count(col(TransactionRow.id)).label("count"),
            func.sum(TransactionRow.amount).label("total"),
        )
        .where(
            col(TransactionRow.hold_id).is_not(None),
            TransactionRow.kind != TransactionKind.REVERSAL.value,
        )
        .group_by(col(TransactionRow.hold_id))
        .subquery()
    )
    count = func.coalesce(captures.c.count, 0)
    captured = col(HoldRow.status) == HoldStatus.CAPTURED.value
    query = (
        select(col(HoldRow.id))
        .outerjoin(captures, captures.c.hold_id == col(HoldRow.id))
        .where(
            or_(
                count > 1,
                and_(captured, or_(count != 1, captures.c.total != HoldRow.captured)),
                and_(~captured, or_(count != 0, col(HoldRow.captured) != 0)),
            )
        )
        .order_by(col(HoldRow.id))
    )
    return [HoldId(key) for key in (await session.exec(query)).all() if key is not None]


async def audit_ledger(session: AsyncSession) -> AuditReport:
    accounts = await session.exec(select(func.count()).select_from(AccountRow))
    transactions = await session.exec(select(func.count()).select_from(TransactionRow))
    return AuditReport(
        accounts_checked=int(accounts.one()),
        transactions_checked=int(transactions.one()),
        mismatched_account_ids=sorted(
            set(await _mismatched_accounts(session))
            | set(await _overheld_accounts(session, datetime.now(UTC)))
        ),
        unbalanced_transaction_ids=await _unbalanced_transactions(session),
        unbalanced_currencies=await _unbalanced_currencies(session),
        faulty_hold_ids=await _faulty_holds(session),
    )
