"""Users: registration, sign-in, administrators, and who a request acts for."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from domain import values
from domain.errors import (
    DuplicateRequest,
    EmailAlreadyRegistered,
    InvalidCredentials,
    InvalidInput,
    SignInThrottled,
)
from domain.model import Actor, Role, SessionId, User, UserId
from domain.ports import Credentials, PasswordHasher, UnitOfWorkFactory
from domain.services.retry import retrying
from domain.services.sessions import (
    DEFAULT_REFRESH_TTL,
    StartedSession,
    open_session,
)
from domain.throttle import SignInThrottle


def _now() -> datetime:
    return datetime.now(UTC)


class UserService:
    """Passwords are hashed and checked between units of work, never inside one: a hash
    takes far longer than any query, and no database connection should wait on it."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        passwords: PasswordHasher,
        throttle: SignInThrottle | None = None,
        clock: Callable[[], datetime] = _now,
        refresh_ttl: timedelta = DEFAULT_REFRESH_TTL,
    ) -> None:
        self._uow = uow
        self._passwords = passwords
        self._throttle = throttle or SignInThrottle()
        self._clock = clock
        self._refresh_ttl = refresh_ttl

    async def register(self, *, email: str, password: str, role: Role = Role.CUSTOMER) -> User:
        """Create a user; the email is unique whatever its case, also under a race."""
        address = values.at("email", values.email, email)
        secret = values.at("password", values.password, password)
        async with self._passwords.turn():
            password_hash = await self._passwords.hash(secret)
        try:
            async with self._uow() as uow:
                user = await uow.users.add(email=address, role=role, password_hash=password_hash)
                await uow.commit()
        except DuplicateRequest:
            raise EmailAlreadyRegistered() from None
        return user

    async def sign_in(
        self, *, email: str, password: str, user_agent: str | None = None
    ) -> StartedSession:
        """A new session for the user whose password this is; the same refusal whether or
        not the email exists.

        Each attempt counts as a failure until its password proves right, so that attempts
        arriving together on one address cannot all slip past the delay. The attempt takes
        its hashing turn first: one refused for a busy server costs the database nothing,
        and sign-ins never use more connections at once than there are turns.
        """
        address = values.at("email", values.email, email)
        if not password:
            raise InvalidInput("password", "Enter your password.")
        values.at("password", values.typed_password, password)
        checked = await self._check_password(address, password)
        return await retrying(lambda: self._open(checked, user_agent))

    async def _open(self, checked: Credentials, user_agent: str | None) -> StartedSession:
        """A session opened only if the password checked is still the user's: a change that
        came during the check ends every session, and this one must not start after it."""
        now = self._clock()
        async with self._uow() as uow:
            if await uow.users.lock_password(checked.user.id) != checked.password_hash:
                raise InvalidCredentials()
            started = await open_session(
                uow, checked.user, user_agent=user_agent, now=now, ttl=self._refresh_ttl
            )
            await uow.commit()
        return started

    async def _check_password(self, address: str, password: str) -> Credentials:
        """The credentials the password matched, as they were read for the check."""
        async with self._passwords.turn():
            credentials = await retrying(lambda: self._begin_attempt(address))
            matches = await self._passwords.verify(
                credentials.password_hash if credentials else None, password
            )
        if not matches or credentials is None:
            raise InvalidCredentials()
        await retrying(lambda: self._forget_failures(address))
        return credentials

    async def _begin_attempt(self, address: str) -> Credentials | None:
        """Refuse an attempt that comes too soon, else count it and read the stored hash."""
        now = self._clock()
        async with self._uow() as uow:
            await uow.sign_in_failures.prune(now - self._throttle.forget_after)
            failures = await uow.sign_in_failures.lock(address)
            wait = self._throttle.wait(failures, now)
            if wait.total_seconds() > 0:
                raise SignInThrottled(wait.total_seconds())
            await uow.sign_in_failures.count_failure(address, now)
            credentials = await uow.users.credentials(address)
            await uow.commit()
        return credentials

    async def _forget_failures(self, address: str) -> None:
        async with self._uow() as uow:
            await uow.sign_in_failures.clear(address)
            await uow.commit()

    async def change_password(
        self,
        *,
        actor: Actor,
        current_password: str,
        new_password: str,
        user_agent: str | None,
    ) -> StartedSession:
        """Set a new password once the current one proves right (throttled as sign-ins are).

        Every session of the user ends, the current one too, and a new one starts for the
        device that asked: whoever held another session's tokens is signed out at once. Of
        two changes checked against the same password, only the first takes effect.
        """
        secret = values.at("newPassword", values.password, new_password)
        if not current_password:
            raise InvalidInput("currentPassword", "Enter your current password.")
        values.at("currentPassword", values.typed_password, current_password)
        async with self._uow(read_only=True) as uow:
            user = await uow.users.get(actor.user_id)
        if user is None:
            raise InvalidCredentials()
        checked = await self._check_password(user.email, current_password)
        async with self._passwords.turn():
            password_hash = await self._passwords.hash(secret)
        return await retrying(lambda: self._replace_password(checked, password_hash, user_agent))

    async def _replace_password(
        self, checked: Credentials, password_hash: str, user_agent: str | None
    ) -> StartedSession:
        now = self._clock()
        user = checked.user
        async with self._uow() as uow:
            if await uow.users.lock_password(user.id) != checked.password_hash:
                raise InvalidCredentials()  # changed meanwhile: the password checked is gone
            await uow.users.set_password(user.id, password_hash)
            await uow.sessions.end(user.id, None, now=now)
            started = await open_session(
                uow, user, user_agent=user_agent, now=now, ttl=self._refresh_ttl
            )
            await uow.commit()
        return started

    async def actor(self, user_id: UserId, session_id: SessionId) -> Actor | None:
        """Who a signed-in request acts for, or None once its session ended or lapsed (or
        its user no longer exists): one query."""
        async with self._uow(read_only=True) as uow:
            return await uow.sessions.actor(user_id, session_id, self._clock())

    async def user(self, *, actor: Actor, user_id: UserId) -> User | None:
        """A user the actor may see: themselves, or anyone for an administrator."""
        if not actor.can_read_user(user_id):
            return None
        async with self._uow(read_only=True) as uow:
            return await uow.users.get(user_id)

    async def users(self, *, actor: Actor, user_ids: Sequence[UserId]) -> dict[UserId, User]:
        """The users among these that the actor may see, in one query."""
        visible = [user_id for user_id in user_ids if actor.can_read_user(user_id)]
        if not visible:
            return {}
        async with self._uow(read_only=True) as uow:
            return {user.id: user for user in await uow.users.get_many(visible)}
