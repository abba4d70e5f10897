"""Subscription resolvers: the same translation as queries, as a stream of results."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable
from datetime import UTC, datetime
from typing import Annotated

import strawberry

from domain import errors
from domain.ledger import EntryId
from domain.model import AccountId
from gql.schema.execution import RequestTimeout, timeout_message
from gql.schema.ids import argument_key
from gql.schema.permissions import SIGNED_IN
from gql.schema.top_level_errors import NotFound, SlowConsumer, TooManyStreams, Unauthenticated
from gql.schema.types import Info, LedgerEntry


async def _first_of(news: Awaitable[object], ended: Awaitable[bool]) -> bool:
    """Wait for news or for the session's end, whichever comes first; True for the end."""
    waiting = asyncio.ensure_future(news)
    ending = asyncio.ensure_future(ended)
    try:
        done, _ = await asyncio.wait({waiting, ending}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (waiting, ending):
            task.cancel()
        await asyncio.gather(waiting, ending, return_exceptions=True)
    return ending in done


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description=(
            "Each new line on an account the viewer may see, as soon as it is committed, "
            "from any server process."
        ),
        permission_classes=SIGNED_IN,
    )
    async def account_entries(
        self,
        info: Info,
        account_id: strawberry.ID,
        after_entry_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(
                description=(
                    "Resume: first every line committed after this line of the account, "
                    "oldest first, then new ones; none skipped or repeated."
                )
            ),
        ] = None,
    ) -> AsyncGenerator[LedgerEntry, None]:
        """Lines committed after the subscription started, or after `afterEntryId`, oldest
        first, none skipped or repeated."""
        context = info.context
        # Parsed, validated and signed in: what is left of the start waits on the database,
        # so the next starting stream may have this one's turn on the processor.
        context.stream_started()
        key = AccountId(argument_key(account_id, "Account", "accountId"))
        after = (
            EntryId(argument_key(after_entry_id, "LedgerEntry", "afterEntryId"))
            if after_entry_id is not None
            else None
        )
        actor = await context.actor()
        signed_in = context.signed_in
        if signed_in is None:  # never: actor() found a viewer, so there is a sign-in
            raise Unauthenticated("Sign in to do this: send Authorization: Bearer <token>.")
        expires_at = signed_in.expires_at
        timeout_s = context.operation_timeout_s
        bound: asyncio.Timeout | None = None
        async with context.session_watch.watching(signed_in.session_id) as session_ended:

            async def waiting(news: Awaitable[object]) -> None:
                # Waiting for news takes as long as it takes; reading it has a deadline.
                if bound is not None:
                    bound.reschedule(None)
                # A connection outlives its token: the stream ends when the sign-in does,
                # or as soon as its session ends (signed out, or the password changed).
                left_s = (expires_at - datetime.now(UTC)).total_seconds()
                try:
                    async with asyncio.timeout(max(left_s, 0)):
                        ended = await _first_of(news, session_ended.wait())
                except TimeoutError:
                    raise Unauthenticated("Your sign-in has expired: sign in again.") from None
                if ended:
                    raise Unauthenticated("Your session has ended: sign in again.")
                if bound is not None and timeout_s is not None:
                    bound.reschedule(asyncio.get_running_loop().time() + timeout_s)

            entries = context.entry_watch.lines(
                actor=actor, account_id=key, after=after, waiting=waiting
            )
            try:
                while True:
                    try:
                        async with asyncio.timeout(timeout_s) as bound:
                            entry = await anext(entries)
                    except TimeoutError:
                        raise RequestTimeout(timeout_message(timeout_s or 0)) from None
                    # A connection lives long: each line's fields are loaded afresh.
                    context.forget_loaded()
                    yield LedgerEntry.from_domain(entry)
            except errors.AccountNotFound:
                raise NotFound("No such account.") from None
            except errors.EntryNotFound:
                raise NotFound("No such line on this account: `afterEntryId`.") from None
            except errors.StreamFellBehind as behind:
                raise SlowConsumer(behind.message) from None
            except errors.StreamLimitReached as limit:
                raise TooManyStreams(limit.message) from None
            finally:
                await entries.aclose()
