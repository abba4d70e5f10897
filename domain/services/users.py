"""Who acts: users and the actor a request speaks for."""

from __future__ import annotations

from domain.errors import DuplicateRequest
from domain.model import Actor, Role, User, UserId
from domain.ports import UnitOfWorkFactory

# Until sign-in exists every request acts as this one user, who owns every account.
LOCAL_USER_EMAIL = "local@bankql.invalid"


class UserService:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def local_actor(self) -> Actor:
        """The built-in local user, created on first use."""
        for _ in range(2):
            async with self._uow() as uow:
                user = await uow.users.get_by_email(LOCAL_USER_EMAIL)
                if user is None:
                    user = await uow.users.add(email=LOCAL_USER_EMAIL, role=Role.CUSTOMER)
                    try:
                        await uow.commit()
                    except DuplicateRequest:
                        continue  # another request created it first; read theirs
                return Actor(user.id, user.role)
        raise RuntimeError("the local user could not be created")  # pragma: no cover

    async def user(self, *, actor: Actor, user_id: UserId) -> User | None:
        """A user the actor may see: themselves, or anyone for an administrator."""
        if not actor.can_read_user(user_id):
            return None
        async with self._uow() as uow:
            return await uow.users.get(user_id)
