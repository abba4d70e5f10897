"""graphql-transport-ws as the HTTP endpoint behaves: a malformed message is the client's
error (close 4400)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import Message

from gql.context import Context


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


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """Checks each client message before Strawberry reads it."""

    async def handle_message(self, message: Message) -> None:
        try:
            CLIENT_MESSAGE.validate_python(message, strict=True)
        except ValidationError:
            await self.handle_invalid_message(INVALID_MESSAGE)
            return
        await super().handle_message(message)
