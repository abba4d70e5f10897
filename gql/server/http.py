"""GraphQL over HTTP as its specification has it: media types, status codes, GET for reads.

Strawberry answers every request as application/json with status 200. A client that accepts
application/graphql-response+json gets that media type back, and a request that never
reached execution (it did not parse, did not validate, or its variables did not coerce)
gets status 400 with no data entry, as the specification asks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from graphql import OperationType
from starlette.responses import JSONResponse, Response
from strawberry.types import ExecutionResult

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


def _accepted(header: str) -> Iterable[tuple[str, float]]:
    for part in header.split(","):
        media, *parameters = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        yield media.lower(), quality


def negotiate(accept: str | None) -> str | None:
    """The media type to answer with, or None when the client accepts neither JSON type."""
    if not accept:
        return JSON
    best: tuple[float, int, str] | None = None
    for media, quality in _accepted(accept):
        if quality <= 0:
            continue
        # On equal quality the GraphQL media type wins; wildcards mean plain JSON.
        for candidate, preference, offered in (
            (GRAPHQL_RESPONSE, 2, GRAPHQL_RESPONSE),
            (JSON, 1, JSON),
            ("application/*", 0, JSON),
            ("*/*", 0, JSON),
        ):
            if media == candidate and (best is None or (quality, preference) > best[:2]):
                best = (quality, preference, offered)
    return best[2] if best else None


def is_request_error(result: ExecutionResult) -> bool:
    """Errors from before execution carry no path; a field's error always has one."""
    return (
        result.data is None
        and bool(result.errors)
        and all(error.path is None for error in result.errors or ())
    )


def read_json(data: str | bytes) -> object:
    """A request body or WebSocket message as JSON. Whatever the parser refuses is a
    JSONDecodeError, which the view answers with 400 and a socket closes on with 4400: text
    that is not UTF-8, nesting too deep for the parser's stack, an integer of more digits
    than Python converts."""
    try:
        return json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    except json.JSONDecodeError:
        raise
    except UnicodeDecodeError:
        raise json.JSONDecodeError("the text is not UTF-8", "", 0) from None
    except RecursionError:
        raise json.JSONDecodeError("it is nested too deeply", "", 0) from None
    except ValueError:
        raise json.JSONDecodeError("a number has too many digits", "", 0) from None


def unsupported_media_type(content_type: str | None) -> Response | None:
    """A POST body that is not JSON: 415, as the specification recommends."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media == JSON:
        return None
    message = f"Send the request as {JSON}."
    return JSONResponse({"errors": [{"message": message}]}, status_code=415)


def mutation_over_get(kind: OperationType | None) -> Response | None:
    """GET may only read: a mutation sent by GET is refused with 405 before it runs."""
    if kind is not OperationType.MUTATION:
        return None
    message = "Mutations are sent with POST, never with GET."
    return JSONResponse(
        {"errors": [{"message": message}]}, status_code=405, headers={"Allow": "POST"}
    )


def not_acceptable() -> Response:
    message = f"This endpoint answers {GRAPHQL_RESPONSE} or {JSON}."
    return JSONResponse({"errors": [{"message": message}]}, status_code=406)


# A WebSocket close frame carries at most 125 bytes: a 2-byte code and 123 of reason.
MAX_CLOSE_REASON_BYTES = 123


def encodable(text: str) -> str:
    """`text` as UTF-8 can carry it: a lone surrogate a client sent (JSON may escape one)
    is written out as its escape, not raised on while the answer is encoded."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def close_reason(text: str) -> str:
    """A WebSocket close reason that fits its frame: encodable, and cut to 123 bytes at a
    character's boundary, ending in an ellipsis when cut. A reason quoting what a client sent
    (an operation name, an id) may be of any length, and one too long for the frame made the
    close fail: the client saw the connection drop (1006) instead of the code and its reason."""
    text = encodable(text)
    if len(text.encode("utf-8")) <= MAX_CLOSE_REASON_BYTES:
        return text
    ellipsis = "..."
    room = MAX_CLOSE_REASON_BYTES - len(ellipsis)
    return text.encode("utf-8")[:room].decode("utf-8", "ignore") + ellipsis
