"""graphql-transport-ws as the HTTP endpoint behaves: a malformed message is the client's
error (close 4400), and every operation reads afresh, in a context of its own."""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import Annotated, Literal, cast

from graphql import OperationType
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from starlette.websockets import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import Message

from gql.context import Context
from gql.schema.schema import BankSchema


class _Payload(BaseModel):
    query: str
    variables: dict[str, object] | None = None
    operationName: str | None = None
    extensions: dict[str, object] | None = None


class _Subscribe(BaseModel):
    type: Literal["subscribe"]
    id: str
    payload: _Payload


class _Complete(BaseModel):
    type: Literal["complete"]
    id: str


class _Control(BaseModel):
    type: Literal["connection_init", "ping", "pong"]
    payload: dict[str, object] | None = None


# What a client may send, field types included: Strawberry reads the fields as it finds them.
CLIENT_MESSAGE: TypeAdapter[_Subscribe | _Complete | _Control] = TypeAdapter(
    Annotated[_Subscribe | _Complete | _Control, Field(discriminator="type")]
)
INVALID_MESSAGE = "Invalid message: see the graphql-transport-ws protocol."

# The context of the operation whose task is running; each operation runs in a task of its own.
_operation_context: ContextVar[Context | None] = ContextVar("operation_context", default=None)


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """Checks each client message before Strawberry reads it, and runs each operation in a
    context of its own, so that a query sees what was committed before it, not what the
    connection's first query cached."""

    @property
    def context(self) -> Context:
        return _operation_context.get() or self._connection

    @context.setter
    def context(self, connection: Context) -> None:
        self._connection = connection

    async def handle_message(self, message: Message) -> None:
        try:
            CLIENT_MESSAGE.validate_python(message, strict=True)
        except ValidationError:
            await self.handle_invalid_message(INVALID_MESSAGE)
            return
        await super().handle_message(message)

    async def send_message(self, message: Message) -> None:
        """Send, unless this side has already closed the connection. An operation closes
        it (4400 for a document that does not parse, or names no operation it has) in a
        task of its own, while the connection goes on reading: a message read just before
        the close, a ping say, would otherwise be answered on a closed socket, and the
        connection end in an exception instead of its close code. Nothing can follow a
        close frame.

        An operation's first message ends its start, if its stream had not begun: a send
        waits as long as the client reads nothing, and it must not wait holding one of the
        process's few places for starting streams."""
        operation = _operation_context.get()
        if operation is not None:
            operation.stream_started()
        try:
            await super().send_message(message)
        except WebSocketDisconnected:
            return

    def start_slots(self) -> asyncio.Semaphore | None:
        """The process's places for streams that are starting; None: no bound."""
        return None

    async def turn(self) -> None:
        """Wait for this step's turn while HTTP requests go first; at once by default."""

    def subscriptions_changed(self, delta: int) -> None:
        """Told +1 as a subscription starts and -1 as it ends; for the view's metrics."""

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        documents = cast(BankSchema, self.schema).documents
        kind = documents.operation_type(operation.query, operation.operation_name)
        subscription = kind is OperationType.SUBSCRIPTION
        async with self._connection.operation(subscription=subscription) as context:
            _operation_context.set(context)
            if not subscription:
                await super().run_operation(operation)
                return
            self.subscriptions_changed(1)
            try:
                await self._run_subscription(operation, context)
            finally:
                self.subscriptions_changed(-1)

    async def _run_subscription(
        self, operation: Operation[Context, None], context: Context
    ) -> None:
        slots = self.start_slots()
        if slots is None:
            await super().run_operation(operation)
            return
        # Thousands of subscriptions sent at once would each take the event loop for
        # their start, one after another, and every other request of the process would
        # wait behind all of them. A few start at a time; the rest wait their turn,
        # costing nothing, and other requests are served in between.
        await slots.acquire()
        held = True

        def started() -> None:
            nonlocal held
            if held:
                held = False
                slots.release()

        context.stream_started = started
        try:
            # And, holding its place, it waits for no HTTP request to be in flight.
            await self.turn()
            await super().run_operation(operation)
        finally:
            started()
