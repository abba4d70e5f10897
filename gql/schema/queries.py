"""Query resolvers: translate arguments, call one service method, wrap the result."""

from __future__ import annotations

import strawberry

from domain import errors, model
from domain.holds import HoldId
from domain.ledger import EntryId, TransactionId
from domain.model import AccountId, SessionId, UserId
from gql.schema.ids import MalformedId, argument_key, from_global_id
from gql.schema.permissions import SIGNED_IN
from gql.schema.top_level_errors import BadUserInput, Forbidden
from gql.schema.types import (
    Account,
    AccountConnection,
    Hold,
    Info,
    LedgerAudit,
    LedgerEntry,
    Node,
    Session,
    Transaction,
    User,
)


async def _account(info: Info, key: int) -> Account | None:
    found = await info.context.accounts.account(
        actor=await info.context.actor(), account_id=AccountId(key)
    )
    return Account.from_domain(found) if found is not None else None


async def _transaction(info: Info, key: int) -> Transaction | None:
    found = await info.context.accounts.transaction(
        actor=await info.context.actor(), transaction_id=TransactionId(key)
    )
    return Transaction.from_domain(found) if found is not None else None


async def _entry(info: Info, key: int) -> LedgerEntry | None:
    found = await info.context.accounts.entry(
        actor=await info.context.actor(), entry_id=EntryId(key)
    )
    return LedgerEntry.from_domain(found) if found is not None else None


async def _user(info: Info, key: int) -> User | None:
    found = await info.context.users.user(actor=await info.context.actor(), user_id=UserId(key))
    return User.from_domain(found) if found is not None else None


async def _session(info: Info, key: int) -> Session | None:
    found = await info.context.sessions.session(
        actor=await info.context.actor(), session_id=SessionId(key)
    )
    if found is None:
        return None
    signed_in = info.context.signed_in
    current = signed_in is not None and signed_in.session_id == found.id
    return Session.from_domain(found, current=current)


async def _hold(info: Info, key: int) -> Hold | None:
    found = await info.context.holds.holds_by_ids(
        actor=await info.context.actor(), hold_ids=[HoldId(key)]
    )
    hold = found.get(HoldId(key))
    return Hold.from_domain(hold, info.context.holds.now()) if hold is not None else None


_NODE_LOADERS = {
    "Account": _account,
    "Hold": _hold,
    "Transaction": _transaction,
    "LedgerEntry": _entry,
    "User": _user,
    "Session": _session,
}


@strawberry.type
class Query:
    @strawberry.field(description="The signed-in user; null without a valid token.")
    async def viewer(self, info: Info) -> User | None:
        """Who the token in this request belongs to."""
        viewer = await info.context.viewer()
        return await _user(info, viewer.user_id) if viewer is not None else None

    @strawberry.field(description="Administrators only.", permission_classes=SIGNED_IN)
    async def ledger_audit(self, info: Info) -> LedgerAudit:
        """Check the whole ledger in the database and report every mismatch."""
        try:
            report = await info.context.audit.audit(actor=await info.context.actor())
        except errors.Forbidden as error:
            raise Forbidden(error.message) from None
        return LedgerAudit.from_domain(report)

    @strawberry.field(permission_classes=SIGNED_IN)
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        """Any object by its global ID; null when it does not exist or is not visible."""
        try:
            type_name, key = from_global_id(id)
        except MalformedId:
            raise BadUserInput("`id` is not an ID issued by this server.") from None
        load = _NODE_LOADERS.get(type_name)
        if load is None:
            raise BadUserInput("`id` is not an ID issued by this server.")
        return await load(info, key)

    @strawberry.field(
        description="Null when there is no such account or the viewer may not see it.",
        permission_classes=SIGNED_IN,
    )
    async def account(self, info: Info, id: strawberry.ID) -> Account | None:
        """One account by its ID."""
        return await _account(info, argument_key(id, "Account"))

    @strawberry.field(
        description="The viewer's accounts, oldest first; an administrator sees every account.",
        permission_classes=SIGNED_IN,
    )
    async def accounts(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        status: model.AccountStatus | None = None,
    ) -> AccountConnection:
        """The accounts the viewer may list, a page at a time."""
        return await AccountConnection.listed(info, first, after, status)

    @strawberry.field(
        description="Null when there is no such transaction or the viewer may not see it.",
        permission_classes=SIGNED_IN,
    )
    async def transaction(self, info: Info, id: strawberry.ID) -> Transaction | None:
        """One transaction by its ID."""
        return await _transaction(info, argument_key(id, "Transaction"))
