"""Users: registration, sign-in, administrators, and who a request acts for."""

from __future__ import annotations

from collections.abc import Sequence

from domain import values
from domain.errors import DuplicateRequest, EmailAlreadyRegistered, InvalidCredentials, InvalidInput
from domain.model import Actor, Role, User, UserId
from domain.ports import UnitOfWorkFactory


class UserService:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def register(self, *, email: str, password: str, role: Role = Role.CUSTOMER) -> User:
        """Create a user; the email is unique whatever its case, also under a race."""
        address = values.at("email", values.email, email)
        secret = values.at("password", values.password, password)
        try:
            async with self._uow() as uow:
                user = await uow.users.add(email=address, role=role, password=secret)
                await uow.commit()
        except DuplicateRequest:
            raise EmailAlreadyRegistered() from None
        return user

    async def sign_in(self, *, email: str, password: str) -> User:
        """The user whose password this is; the same refusal whether or not the email exists."""
        address = values.at("email", values.email, email)
        if not password:
            raise InvalidInput("password", "Enter your password.")
        values.at("password", values.typed_password, password)
        async with self._uow(read_only=True) as uow:
            user = await uow.users.authenticate(address, password)
        if user is None:
            raise InvalidCredentials()
        return user

    async def actor(self, user_id: UserId) -> Actor | None:
        """Who a signed-in request acts for, or None when that user no longer exists."""
        async with self._uow(read_only=True) as uow:
            user = await uow.users.get(user_id)
        return Actor(user.id, user.role) if user is not None else None

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
