"""GraphQL object types, each built from a domain object."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Self

import strawberry

from domain import holds as hold_model
from domain import ledger, model
from domain.errors import InvalidInput
from domain.holds import HoldId
from domain.money import Money as DomainMoney
from domain.ports import AuditReport, Page
from domain.services import StartedSession
from gql.context import Context
from gql.schema.ids import page_request, to_cursor, to_global_id
from gql.schema.scalars import DecimalText
from gql.schema.top_level_errors import BadUserInput
from gql.server.auth import TokenCodec

# The domain's enums are the GraphQL enums: one list of values, registered here at the edge.
Role = strawberry.enum(model.Role, name="Role")
AccountStatus = strawberry.enum(model.AccountStatus, name="AccountStatus")
TransactionKind = strawberry.enum(ledger.TransactionKind, name="TransactionKind")
HoldStatus = strawberry.enum(hold_model.HoldStatus, name="HoldStatus")
Info = strawberry.Info[Context, None]


@strawberry.interface
class Node:
    id: strawberry.ID = strawberry.field(description="A globally unique, opaque ID.")


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None

    @classmethod
    def of(cls, keys: Sequence[int], *, has_next: bool, has_previous: bool) -> Self:
        return cls(
            has_next_page=has_next,
            has_previous_page=has_previous,
            start_cursor=to_cursor(keys[0]) if keys else None,
            end_cursor=to_cursor(keys[-1]) if keys else None,
        )

    @classmethod
    def of_page(cls, found: Page[Any]) -> Self:
        """Where a page of items with ids starts and ends, and whether more lie around it."""
        return cls.of(
            [item.id for item in found.items],
            has_next=found.has_next,
            has_previous=found.has_previous,
        )


@strawberry.type(description="An exact amount of one currency.")
class Money:
    amount: DecimalText = strawberry.field(
        description='In the major unit, with exactly the currency\'s minor digits: "12.50".'
    )
    currency: str = strawberry.field(description="ISO 4217 alphabetic code, upper case.")

    @classmethod
    def from_domain(cls, money: DomainMoney) -> Self:
        return cls(amount=DecimalText(money.to_decimal_string()), currency=money.currency.code)


@strawberry.type
class User(Node):
    email: str
    role: model.Role
    created_at: datetime
    key: strawberry.Private[model.UserId]

    @classmethod
    def from_domain(cls, user: model.User) -> Self:
        return cls(
            id=strawberry.ID(to_global_id("User", user.id)),
            email=user.email,
            role=user.role,
            created_at=user.created_at,
            key=user.id,
        )

    @strawberry.field(description="This user's accounts, oldest first.")
    async def accounts(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        status: model.AccountStatus | None = None,
    ) -> AccountConnection:
        loader = info.context.loaders.owned_accounts(page_request(first, after), status)
        return AccountConnection.of(await loader.load(self.key))

    @strawberry.field(
        description=(
            "The user's sessions that have not ended, newest first; only the user may see them."
        )
    )
    async def sessions(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> SessionConnection:
        page = page_request(first, after)
        viewer = await info.context.viewer()
        if viewer is None or viewer.user_id != self.key:
            # Nobody else's, administrators included: an empty list, as for no sessions.
            return SessionConnection.of(Page([], has_next=False, has_previous=False), None)
        found = await info.context.sessions.sessions(actor=viewer, user_id=self.key, page=page)
        signed_in = info.context.signed_in
        return SessionConnection.of(found, signed_in.session_id if signed_in else None)


@strawberry.type(
    description="One signed-in device or client: created by register or login, renewed by "
    "refreshSession."
)
class Session(Node):
    created_at: datetime
    last_refreshed_at: datetime | None = strawberry.field(
        description="The last time its refresh token was traded."
    )
    expires_at: datetime = strawberry.field(
        description="When its refresh token lapses unless refreshed."
    )
    current: bool = strawberry.field(description="True for the session of the request's own token.")
    user_agent: str | None = strawberry.field(
        description=(
            "The User-Agent header seen at sign-in, cut to 200 characters; null when none was sent."
        )
    )

    @classmethod
    def from_domain(cls, session: model.Session, *, current: bool) -> Self:
        return cls(
            id=strawberry.ID(to_global_id("Session", session.id)),
            created_at=session.created_at,
            last_refreshed_at=session.last_refreshed_at,
            expires_at=session.expires_at,
            current=current,
            user_agent=session.user_agent,
        )


@strawberry.type
class SessionEdge:
    cursor: str
    node: Session


@strawberry.type
class SessionConnection:
    edges: list[SessionEdge]
    page_info: PageInfo

    @classmethod
    def of(cls, found: Page[model.Session], current: model.SessionId | None) -> Self:
        sessions = found.items
        return cls(
            edges=[
                SessionEdge(
                    cursor=to_cursor(s.id), node=Session.from_domain(s, current=s.id == current)
                )
                for s in sessions
            ],
            page_info=PageInfo.of_page(found),
        )


@strawberry.type
class Account(Node):
    name: str
    currency: str = strawberry.field(description="ISO 4217 code; an account holds one currency.")
    balance: Money
    status: model.AccountStatus
    created_at: datetime
    key: strawberry.Private[model.AccountId]
    owner_key: strawberry.Private[model.UserId | None]
    domain: strawberry.Private[model.Account]

    @classmethod
    def from_domain(cls, account: model.Account) -> Self:
        return cls(
            id=strawberry.ID(to_global_id("Account", account.id)),
            name=account.name,
            currency=account.currency.code,
            balance=Money.from_domain(account.balance),
            status=account.status,
            created_at=account.created_at,
            key=account.id,
            owner_key=account.owner_id,
            domain=account,
        )

    @strawberry.field
    async def owner(self, info: Info) -> User:
        user = (
            await info.context.loaders.users.load(self.owner_key)
            if self.owner_key is not None
            else None
        )
        if user is None:
            raise LookupError(f"the owner of account {self.key} cannot be read")
        return User.from_domain(user)

    @strawberry.field(description="Statement lines, newest first.")
    async def entries(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> LedgerEntryConnection:
        found = await info.context.loaders.statements(page_request(first, after)).load(self.key)
        return LedgerEntryConnection.of(found)

    @strawberry.field(
        description=(
            "The balance less every pending hold: what withdrawals, transfers and new holds "
            "may use."
        )
    )
    async def available_balance(self, info: Info) -> Money:
        reserved = await info.context.loaders.reserved.load(self.key)
        return Money.from_domain(self.domain.balance - DomainMoney(reserved, self.domain.currency))

    @strawberry.field(
        description="Holds on this account, newest first; all of them when status is left out."
    )
    async def holds(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        status: hold_model.HoldStatus | None = None,
    ) -> HoldConnection:
        page = page_request(first, after)
        service = info.context.holds
        found = await service.holds(
            actor=await info.context.actor(), account_id=self.key, status=status, page=page
        )
        return HoldConnection.of(found, service.now())

    @strawberry.field(
        description=(
            "The balance right after the last line committed before `at` (zero before the first)."
        )
    )
    async def balance_at(self, info: Info, at: datetime) -> Money:
        found = await info.context.accounts.balances_at(
            actor=await info.context.actor(), account_ids=[self.key], at=at
        )
        if self.key not in found:
            raise LookupError(f"account {self.key} was shown but cannot be read")
        return Money.from_domain(found[self.key])

    @strawberry.field(
        description="The lines of the half-open period [from, to), with the balances around it."
    )
    async def statement(
        self,
        info: Info,
        from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime,
    ) -> Statement:
        try:
            summary = await info.context.accounts.statement_summary(
                actor=await info.context.actor(), account_id=self.key, start=from_, end=to
            )
        except InvalidInput as error:
            raise BadUserInput(f"`{error.field}`: {error.message}") from None
        if summary is None:
            raise LookupError(f"account {self.key} was shown but cannot be read")
        return Statement(
            account=self,
            from_=summary.start,
            to=summary.end,
            opening_balance=Money.from_domain(summary.opening),
            closing_balance=Money.from_domain(summary.closing),
            money_in=Money.from_domain(summary.money_in),
            money_out=Money.from_domain(summary.money_out),
            account_key=self.key,
        )


@strawberry.type(description="An account's movements over the half-open period [from, to).")
class Statement:
    account: Account
    from_: datetime = strawberry.field(name="from")
    to: datetime
    opening_balance: Money = strawberry.field(description="The balance at `from`.")
    closing_balance: Money = strawberry.field(
        description="The balance at `to`: openingBalance + moneyIn - moneyOut."
    )
    money_in: Money = strawberry.field(description="The sum of the period's positive lines.")
    money_out: Money = strawberry.field(
        description="The sum of the period's negative lines, as a positive amount."
    )
    account_key: strawberry.Private[model.AccountId]

    @strawberry.field(description="The period's lines, newest first.")
    async def entries(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> LedgerEntryConnection:
        found = await info.context.accounts.period_entries(
            actor=await info.context.actor(),
            account_id=self.account_key,
            start=self.from_,
            end=self.to,
            page=page_request(first, after),
        )
        return LedgerEntryConnection.of(found)


@strawberry.type(
    description=(
        "Money reserved on an account: it lowers availableBalance, not balance, until it is "
        "resolved."
    )
)
class Hold(Node):
    amount: Money = strawberry.field(description="What was reserved when the hold was placed.")
    pending_amount: Money = strawberry.field(
        description="What is still reserved: the whole amount while PENDING, zero once resolved."
    )
    captured_amount: Money = strawberry.field(
        description="What the capture moved; zero unless CAPTURED."
    )
    status: hold_model.HoldStatus
    description: str | None
    destination_account_id: strawberry.ID | None = strawberry.field(
        description=(
            "Where a capture moves the money: this account, or out of the bank (a withdrawal) "
            "when null."
        )
    )
    expires_at: datetime = strawberry.field(
        description="After this moment a PENDING hold is EXPIRED and its money available again."
    )
    created_at: datetime
    resolved_at: datetime | None = strawberry.field(
        description="When it was captured, voided or expired."
    )
    account_key: strawberry.Private[model.AccountId]
    transaction_key: strawberry.Private[ledger.TransactionId | None]

    @classmethod
    def from_domain(cls, hold: hold_model.Hold, now: datetime) -> Self:
        return cls(
            id=strawberry.ID(to_global_id("Hold", hold.id)),
            amount=Money.from_domain(hold.amount),
            pending_amount=Money.from_domain(hold.pending_at(now)),
            captured_amount=Money.from_domain(hold.captured),
            status=hold.status_at(now),
            description=hold.description,
            destination_account_id=_optional_account_id(hold.destination_account_id),
            expires_at=hold.expires_at,
            created_at=hold.created_at,
            resolved_at=hold.resolved_at_as_of(now),
            account_key=hold.account_id,
            transaction_key=hold.transaction_id,
        )

    @strawberry.field
    async def account(self, info: Info) -> Account:
        found = await info.context.accounts.account(
            actor=await info.context.actor(), account_id=self.account_key
        )
        if found is None:
            raise LookupError(f"the account of a visible hold {self.id} cannot be read")
        return Account.from_domain(found)

    @strawberry.field(description="The capture's transaction; null unless CAPTURED.")
    async def transaction(self, info: Info) -> Transaction | None:
        if self.transaction_key is None:
            return None
        found = await info.context.loaders.transactions.load(self.transaction_key)
        return Transaction.from_domain(found) if found is not None else None


@strawberry.type
class HoldEdge:
    cursor: str
    node: Hold


@strawberry.type
class HoldConnection:
    edges: list[HoldEdge]
    page_info: PageInfo

    @classmethod
    def of(cls, found: Page[hold_model.Hold], now: datetime) -> Self:
        return cls(
            edges=[
                HoldEdge(cursor=to_cursor(h.id), node=Hold.from_domain(h, now)) for h in found.items
            ],
            page_info=PageInfo.of_page(found),
        )


@strawberry.type
class AccountEdge:
    cursor: str
    node: Account


@strawberry.type
class AccountConnection:
    edges: list[AccountEdge]
    page_info: PageInfo
    total_count: int

    @classmethod
    async def listed(
        cls,
        info: Info,
        first: int | None,
        after: str | None,
        status: model.AccountStatus | None,
    ) -> Self:
        """A page of the accounts the viewer may list."""
        page = page_request(first, after)
        actor = await info.context.actor()
        return cls.of(await info.context.accounts.accounts(actor=actor, status=status, page=page))

    @classmethod
    def of(cls, found: Page[model.Account]) -> Self:
        accounts = found.items
        return cls(
            edges=[
                AccountEdge(cursor=to_cursor(a.id), node=Account.from_domain(a)) for a in accounts
            ],
            page_info=PageInfo.of_page(found),
            total_count=found.total or 0,
        )


def _optional_account_id(key: model.AccountId | None) -> strawberry.ID | None:
    return strawberry.ID(to_global_id("Account", key)) if key is not None else None


@strawberry.type(description="One movement of money, immutable once committed.")
class Transaction(Node):
    kind: ledger.TransactionKind
    amount: Money = strawberry.field(description="Always positive.")
    source_account_id: strawberry.ID | None = strawberry.field(
        description="The debited account's ID; null for a deposit."
    )
    destination_account_id: strawberry.ID | None = strawberry.field(
        description="The credited account's ID; null for a withdrawal."
    )
    description: str | None
    created_at: datetime
    hold_key: strawberry.Private[int | None]
    reverses_key: strawberry.Private[ledger.TransactionId | None]
    key: strawberry.Private[ledger.TransactionId]

    @classmethod
    def from_domain(cls, transaction: ledger.Transaction) -> Self:
        return cls(
            id=strawberry.ID(to_global_id("Transaction", transaction.id)),
            kind=transaction.kind,
            amount=Money.from_domain(transaction.amount),
            source_account_id=_optional_account_id(transaction.source_account_id),
            destination_account_id=_optional_account_id(transaction.destination_account_id),
            description=transaction.description,
            created_at=transaction.created_at,
            hold_key=transaction.hold_id,
            reverses_key=transaction.reverses_id,
            key=transaction.id,
        )

    @strawberry.field(description="The transaction this one undoes; null unless kind is REVERSAL.")
    async def reverses(self, info: Info) -> Transaction | None:
        if self.reverses_key is None:
            return None
        found = await info.context.loaders.transactions.load(self.reverses_key)
        return Transaction.from_domain(found) if found is not None else None

    @strawberry.field(description="The reversal that undid this transaction, if any.")
    async def reversed_by(self, info: Info) -> Transaction | None:
        found = await info.context.loaders.reversals.load(self.key)
        return Transaction.from_domain(found) if found is not None else None

    @strawberry.field(description="The hold whose capture this transaction is; null otherwise.")
    async def hold(self, info: Info) -> Hold | None:
        if self.hold_key is None:
            return None
        found = await info.context.loaders.holds.load(HoldId(self.hold_key))
        return Hold.from_domain(found, info.context.holds.now()) if found is not None else None


@strawberry.type(description="One line on an account's statement.")
class LedgerEntry(Node):
    amount: Money = strawberry.field(description="Signed: positive when money came in.")
    balance_after: Money = strawberry.field(description="The balance right after this line.")
    created_at: datetime
    transaction_key: strawberry.Private[ledger.TransactionId]

    @classmethod
    def from_domain(cls, entry: ledger.Entry) -> Self:
        return cls(
            id=strawberry.ID(to_global_id("LedgerEntry", entry.id)),
            amount=Money.from_domain(entry.amount),
            balance_after=Money.from_domain(entry.balance_after),
            created_at=entry.created_at,
            transaction_key=entry.transaction_id,
        )

    @strawberry.field
    async def transaction(self, info: Info) -> Transaction:
        found = await info.context.loaders.transactions.load(self.transaction_key)
        if found is None:
            raise LookupError(f"transaction {self.transaction_key} of a visible entry is missing")
        return Transaction.from_domain(found)


@strawberry.type
class LedgerEntryEdge:
    cursor: str
    node: LedgerEntry


@strawberry.type
class LedgerEntryConnection:
    edges: list[LedgerEntryEdge]
    page_info: PageInfo

    @classmethod
    def of(cls, found: Page[ledger.Entry]) -> Self:
        return cls(
            edges=[
                LedgerEntryEdge(cursor=to_cursor(e.id), node=LedgerEntry.from_domain(e))
                for e in found.items
            ],
            page_info=PageInfo.of_page(found),
        )


@strawberry.type
class AuthPayload:
    token: str = strawberry.field(description='Send as the header "Authorization: Bearer <token>".')
    expires_at: datetime
    user: User
    refresh_token: str = strawberry.field(
        description=(
            "Single use: refreshSession trades it for a new pair. Sending a used one again "
            "ends the session."
        )
    )
    refresh_expires_at: datetime
    session: Session = strawberry.field(description="The session these tokens belong to.")

    @classmethod
    def issue(cls, tokens: TokenCodec, started: StartedSession) -> Self:
        issued = tokens.issue(started.user.id, started.session.id)
        return cls(
            token=issued.token,
            expires_at=issued.expires_at,
            user=User.from_domain(started.user),
            refresh_token=started.refresh_token,
            refresh_expires_at=started.session.expires_at,
            session=Session.from_domain(started.session, current=True),
        )


@strawberry.type(description="What an administrator sees when the whole ledger is checked.")
class LedgerAudit:
    ok: bool = strawberry.field(description="True when every check below found nothing.")
    accounts_checked: int
    transactions_checked: int
    mismatched_account_ids: list[strawberry.ID] = strawberry.field(
        description=(
            "Accounts whose balance differs from their entries, or that are below zero; and "
            "funding accounts that store a balance, which they keep none of."
        )
    )
    unbalanced_transaction_ids: list[strawberry.ID] = strawberry.field(
        description="Transactions whose entries do not sum to zero."
    )
    unbalanced_currencies: list[str] = strawberry.field(
        description=(
            "Currencies in which the bank's funding entries do not offset what the customers "
            "hold: the funding balance plus every customer balance must be zero."
        )
    )

    faulty_hold_ids: list[strawberry.ID] = strawberry.field(
        description=(
            "Holds captured more than once, or whose record disagrees with their capture. "
            "(Accounts whose pending holds reserve more than their balance are among "
            "mismatchedAccountIds.)"
        )
    )

    @classmethod
    def from_domain(cls, report: AuditReport) -> Self:
        return cls(
            ok=report.ok,
            faulty_hold_ids=[
                strawberry.ID(to_global_id("Hold", key)) for key in report.faulty_hold_ids
            ],
            accounts_checked=report.accounts_checked,
            transactions_checked=report.transactions_checked,
            mismatched_account_ids=[
                strawberry.ID(to_global_id("Account", key)) for key in report.mismatched_account_ids
            ],
            unbalanced_transaction_ids=[
                strawberry.ID(to_global_id("Transaction", key))
                for key in report.unbalanced_transaction_ids
            ],
            unbalanced_currencies=report.unbalanced_currencies,
        )
