"""The ledger audit as a few aggregate queries, so that it costs no memory per row."""

from __future__ import annotations

from sqlalchemy import and_, func, or_
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.ledger import TransactionId
from domain.model import AccountId, AccountKind
from domain.ports import AuditReport
from persistence.tables import AccountRow, EntryRow, TransactionRow


async def _mismatched_accounts(session: AsyncSession) -> list[AccountId]:
    """Balances that differ from the sum of their entries or the last balance after one."""
    totals = (
        select(
            col(EntryRow.account_id).label("account_id"),
            func.sum(EntryRow.amount).label("total"),
            func.max(EntryRow.id).label("last_id"),
        )
        .group_by(col(EntryRow.account_id))
        .subquery()
    )
    last = aliased(EntryRow)
    query = (
        select(col(AccountRow.id))
        .outerjoin(totals, totals.c.account_id == col(AccountRow.id))
        .outerjoin(last, col(last.id) == totals.c.last_id)
        .where(
            or_(
                col(AccountRow.balance) != func.coalesce(totals.c.total, 0),
                and_(totals.c.last_id.is_not(None), col(last.balance_after) != AccountRow.balance),
                and_(
                    col(AccountRow.kind) == AccountKind.CUSTOMER.value, col(AccountRow.balance) < 0
                ),
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


async def audit_ledger(session: AsyncSession) -> AuditReport:
    accounts = await session.exec(select(func.count()).select_from(AccountRow))
    transactions = await session.exec(select(func.count()).select_from(TransactionRow))
    return AuditReport(
        accounts_checked=int(accounts.one()),
        transactions_checked=int(transactions.one()),
        mismatched_account_ids=await _mismatched_accounts(session),
        unbalanced_transaction_ids=await _unbalanced_transactions(session),
    )
