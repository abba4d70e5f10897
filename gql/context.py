"""The per-request context and the composition root that wires services to storage."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from domain.model import Actor
from domain.ports import UnitOfWork, UnitOfWorkFactory
from domain.services import AccountService, MovementService, UserService
from persistence.unit_of_work import SqlUnitOfWork


@dataclass
class Context:
    """What every resolver may use: the services, and who the request acts for."""

    accounts: AccountService
    movements: MovementService
    users: UserService
    _actor: Actor | None = field(default=None, repr=False)

    async def actor(self) -> Actor:
        """The acting user, looked up once per request."""
        if self._actor is None:
            self._actor = await self.users.local_actor()
        return self._actor


ContextGetter = Callable[[Request | WebSocket, Response | WebSocket], Awaitable[Context]]


def build_context(uow: UnitOfWorkFactory) -> Context:
    return Context(
        accounts=AccountService(uow), movements=MovementService(uow), users=UserService(uow)
    )


def make_context_getter(session_factory: async_sessionmaker[AsyncSession]) -> ContextGetter:
    """The context getter for the app: each request gets fresh services on this database."""

    def unit_of_work() -> UnitOfWork:
        return SqlUnitOfWork(session_factory)

    async def get_context(
        _request: Request | WebSocket, _response: Response | WebSocket
    ) -> Context:
        return build_context(unit_of_work)

    return get_context
