"""Sessions: one per sign-in, renewed by trading its refresh token, ended at will.

A refresh token is 256 random bits, handed to the client once and stored only as its
SHA-256 digest (a fast digest is enough for a secret that cannot be guessed). Trading it
(`refresh`) retires it for good: sent again, it is taken for stolen and its whole session
ends, so that whichever of the thief and the owner comes second signs both out.

Two trades of one token at once: the database lets exactly one of them rotate the session
(one conditional UPDATE), and the other finds the token retired, so it ends the session
too. Never do two pairs live on from one token; a client must send one refresh at a time.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from domain.errors import InvalidRefreshToken, SessionNotFound
from domain.model import Actor, Session, SessionId, User, UserId
from domain.ports import NewSession, Page, PageRequest, UnitOfWork, UnitOfWorkFactory
from domain.services.retry import retrying

logger = logging.getLogger("bankql.sessions")

DEFAULT_REFRESH_TTL = timedelta(days=30)
# How long an ended or lapsed session is kept (its retired tokens still recognised as
# reused) before it is deleted.
RETENTION = timedelta(days=7)
USER_AGENT_MAX = 200
# The most live sessions a user has: a new one ends the oldest beyond it, so that signing in
# over and over cannot pile up sessions that a password change or a sign-out everywhere
# must then end at once.
MAX_LIVE_SESSIONS = 100
# The most dead sessions one sign-in deletes on its way: the clean-up it does is bounded,
# however long nobody signed in.
PRUNE_BATCH = 100
REFRESH_TOKEN_BYTES = 32
# No token this server issues is longer, or other than ASCII (URL-safe base64); anything
# else is refused unread (JSON may even carry half of a surrogate pair, which UTF-8 cannot
# encode for the digest).
REFRESH_TOKEN_MAX = 100


def _now() -> datetime:
    return datetime.now(UTC)


def new_refresh_token() -> str:
    return secrets.token_urlsafe(REFRESH_TOKEN_BYTES)


def digest(refresh_token: str) -> str:
    """What is stored of a refresh token: its SHA-256, in hex."""
    return hashlib.sha256(refresh_token.encode()).hexdigest()


def user_agent_of(header: str | None) -> str | None:
    return header[:USER_AGENT_MAX] if header else None


@dataclass(frozen=True, slots=True)
class StartedSession:
    """A session and its new refresh token, the only time the token is known in clear."""

    session: Session
    user: User
    refresh_token: str


async def open_session(
    uow: UnitOfWork, user: User, *, user_agent: str | None, now: datetime, ttl: timedelta
) -> StartedSession:
    """A new session for the user, in the caller's unit of work; their oldest live one ends
    if they would have more than MAX_LIVE_SESSIONS, and a batch of long-dead sessions goes."""
    await uow.sessions.prune(now - RETENTION, limit=PRUNE_BATCH)
    token = new_refresh_token()
    await uow.sessions.end_oldest(user.id, keep=MAX_LIVE_SESSIONS - 1, now=now)
    session = await uow.sessions.add(
        NewSession(
            user_id=user.id,
            refresh_token_hash=digest(token),
            created_at=now,
            expires_at=now + ttl,
            user_agent=user_agent_of(user_agent),
        )
    )
    return StartedSession(session, user, token)


class SessionService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        refresh_ttl: timedelta = DEFAULT_REFRESH_TTL,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._uow = uow
        self.refresh_ttl = refresh_ttl
        self._clock = clock

    async def start(self, user: User, *, user_agent: str | None) -> StartedSession:
        """A session for a user who just proved who they are; old dead sessions go first."""
        return await retrying(lambda: self._start(user, user_agent))

    async def _start(self, user: User, user_agent: str | None) -> StartedSession:
        now = self._clock()
        async with self._uow() as uow:
            started = await open_session(
                uow, user, user_agent=user_agent, now=now, ttl=self.refresh_ttl
            )
            await uow.commit()
        return started

    async def refresh(self, refresh_token: str) -> StartedSession:
        """The session renewed with a new refresh token, the old one retired.

        InvalidRefreshToken for a token that is unknown, lapsed, of an ended session, or
        already traded; the last also ends its session.
        """
        if (
            not refresh_token
            or len(refresh_token) > REFRESH_TOKEN_MAX
            or not refresh_token.isascii()
        ):
            raise InvalidRefreshToken()
        return await retrying(lambda: self._refresh(digest(refresh_token)))

    async def _refresh(self, old_hash: str) -> StartedSession:
        now = self._clock()
        token = new_refresh_token()
        async with self._uow() as uow:
            session = await uow.sessions.rotate(
                old_hash, digest(token), now=now, expires_at=now + self.refresh_ttl
            )
            if session is None:
                reused = await uow.sessions.retired(old_hash)
                if reused is not None:
                    await uow.sessions.end_by_id(reused, now=now)
                    await uow.commit()
                    logger.warning("a used refresh token came again: session %s ended", reused)
                raise InvalidRefreshToken()
            user = await uow.users.get(session.user_id)
            if user is None:  # never: a session's user is never deleted
                raise InvalidRefreshToken()
            # A token retired a TTL ago had lapsed by then anyway (it was issued before it was
            # retired): its digest goes, so that a session refreshed for months keeps only a
            # TTL's worth, while every token that could still be live is known as reuse.
            await uow.sessions.forget_retired(session.id, now - self.refresh_ttl)
            await uow.commit()
        return StartedSession(session, user, token)

    async def sign_out(self, *, actor: Actor, session_id: SessionId, everywhere: bool) -> int:
        """End the current session, or all of the actor's; how many ended."""
        return await retrying(lambda: self._end(actor, None if everywhere else session_id))

    async def end(self, *, actor: Actor, session_id: SessionId) -> int:
        """End one of the actor's own sessions; SessionNotFound for any other."""
        ended = await retrying(lambda: self._end(actor, session_id))
        if ended == 0:
            raise SessionNotFound(session_id)
        return ended

    async def _end(self, actor: Actor, session_id: SessionId | None) -> int:
        async with self._uow() as uow:
            ended = await uow.sessions.end(actor.user_id, session_id, now=self._clock())
            await uow.commit()
        return ended

    async def sessions(self, *, actor: Actor, user_id: UserId, page: PageRequest) -> Page[Session]:
        """A user's live sessions, newest first: only the user's own eyes see them."""
        if actor.user_id != user_id:
            return Page([], has_next=False, has_previous=False)
        async with self._uow(read_only=True) as uow:
            items = await uow.sessions.list_live(user_id, self._clock(), page)
        return Page(items[: page.first], len(items) > page.first, page.after is not None)

    async def session(self, *, actor: Actor, session_id: SessionId) -> Session | None:
        """One of the actor's own live sessions, or None."""
        async with self._uow(read_only=True) as uow:
            return await uow.sessions.get_live(actor.user_id, session_id, self._clock())

    async def live(self, session_ids: list[SessionId]) -> set[SessionId]:
        async with self._uow(read_only=True) as uow:
            return await uow.sessions.live_ids(session_ids, self._clock())

    async def prune(self) -> int:
        """Delete the sessions that ended or lapsed longer than RETENTION ago, a batch per
        transaction."""
        deleted = 0
        while True:
            async with self._uow() as uow:
                batch = await uow.sessions.prune(self._clock() - RETENTION, limit=PRUNE_BATCH)
                await uow.commit()
            deleted += batch
            if batch < PRUNE_BATCH:
                return deleted
