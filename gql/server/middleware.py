"""Request ids, body size and time limits, a deadline for the work, one log line per request,
and a 500 that names the request."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gql.schema.execution import TIMEOUT, timeout_message
from gql.server.deadline import ClientWatch, Ending, within_deadline
from gql.server.foreground import Foreground
from gql.server.http import JSON, negotiate
from gql.server.logs import operation, request_id

logger = logging.getLogger("bankql.requests")
REQUEST_ID_HEADER = "x-request-id"
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Logged, never sent: the status of a request whose client left before its answer.
CLIENT_CLOSED_REQUEST = 499


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _request_id(headers: dict[str, str]) -> str:
    """The client's X-Request-ID when it is a sane one, or a new id."""
    sent = headers.get(REQUEST_ID_HEADER, "")
    return sent if _CLIENT_REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex


class BodyTooLarge(Exception):
    status = 413

    def __init__(self, max_body_bytes: int) -> None:
        super().__init__(f"The request body is larger than {max_body_bytes} bytes.")


class BodyTooSlow(Exception):
    """A client that takes too long to send its body; the connection is closed after the
    answer, so that it holds nothing any longer."""

    status = 408

    def __init__(self, receive_timeout_s: float) -> None:
        super().__init__(f"The request body did not arrive within {receive_timeout_s:g} s.")


def _json_response(status: int, body: dict[str, Any], rid: str, media: str = JSON) -> list[Message]:
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", media.encode()),
        (b"content-length", str(len(payload)).encode()),
        (REQUEST_ID_HEADER.encode(), rid.encode()),
    ]
    if status == BodyTooSlow.status:
        headers.append((b"connection", b"close"))
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": payload},
    ]


class RequestMiddleware:
    """Pure ASGI, so that it sees every request and streams nothing twice; while the app
    works, one task per request watches for its client leaving."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        request_timeout_s: float,
        receive_timeout_s: float,
        foreground: Foreground,
    ) -> None:
        self.app = app
        # The view's own: requests counted here hold back the view's WebSocket work.
        self.foreground = foreground
        self.max_body_bytes = max_body_bytes
        self.request_timeout_s = request_timeout_s
        self.receive_timeout_s = receive_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        rid = _request_id(headers)
        rid_token, operation_token = request_id.set(rid), operation.set({})
        started = time.perf_counter()
        status = 500
        try:
            try:
                body = await self._read_body(headers, receive)
            except (BodyTooLarge, BodyTooSlow) as refusal:
                status = refusal.status
                for part in _json_response(status, {"errors": [{"message": str(refusal)}]}, rid):
                    await send(part)
                return
            # In flight from here: WebSocket work waits while the process answers requests
            # (not while a client takes its time to send one).
            with self.foreground.request():
                status = await self._run(scope, body, receive, send, headers, rid)
        finally:
            self._log(scope, status, started)
            request_id.reset(rid_token)
            operation.reset(operation_token)

    async def _run(
        self,
        scope: Scope,
        body: bytes,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        rid: str,
    ) -> int:
        """The app's answer to a request whose body is in, within the request's deadline;
        the status it answered with."""
        watch = ClientWatch(receive)
        delivered = False
        status: int | None = None

        async def replay() -> Message:
            # The body once, as read; after that, the client's disconnect when it comes.
            nonlocal delivered
            if delivered:
                return await watch.after_body()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER.encode(), rid.encode()),
                ]
            elif not message.get("more_body", False):
                watch.answered = True
            await send(message)

        try:
            ending = await within_deadline(
                lambda: self.app(scope, replay, send_with_id), watch, self.request_timeout_s
            )
        except Exception:
            logger.exception("unhandled error", extra={"request_id": rid})
            message = "Internal server error"
            body_500 = {"errors": [{"message": message, "extensions": {"requestId": rid}}]}
            for part in _json_response(500, body_500, rid):
                await send(part)
            return 500
        details = operation.get()
        if ending is not Ending.DONE and details is not None:
            details["outcome"] = ending.value
        if ending is Ending.DISCONNECTED:
            return status or CLIENT_CLOSED_REQUEST
        if ending is Ending.TIMED_OUT and status is None:
            return await self._answer_timeout(send, headers, rid)
        return status or 500

    async def _answer_timeout(self, send: Send, headers: dict[str, str], rid: str) -> int:
        """A GraphQL response whose data is null, for an operation stopped while executing:
        status 200 in both media types, as GraphQL over HTTP has it."""
        error = {
            "message": timeout_message(self.request_timeout_s),
            "extensions": {"code": TIMEOUT, "requestId": rid},
        }
        media = negotiate(headers.get("accept")) or JSON
        for part in _json_response(200, {"data": None, "errors": [error]}, rid, media):
            await send(part)
        return 200

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A connection's one line when it ends; its operations share its request id."""
        rid = _request_id(_headers(scope))
        rid_token = request_id.set(rid)
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            logger.info(
                "websocket",
                extra={
                    "request_id": rid,
                    "path": scope.get("path"),
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            request_id.reset(rid_token)

    async def _read_body(self, headers: dict[str, str], receive: Receive) -> bytes:
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise BodyTooLarge(self.max_body_bytes)
        chunks: list[bytes] = []
        size, more = 0, True
        try:
            async with asyncio.timeout(self.receive_timeout_s):
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        break
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        raise BodyTooLarge(self.max_body_bytes)
                    chunks.append(chunk)
                    more = message.get("more_body", False)
        except TimeoutError:
            raise BodyTooSlow(self.receive_timeout_s) from None
        return b"".join(chunks)

    @staticmethod
    def _log(scope: Scope, status: int, started: float) -> None:
        """The request's one line; it names the operation, never its variables or headers."""
        details = operation.get() or {}
        outcome = details.get("outcome") or ("ok" if status < 400 else "rejected")
        if status >= 500 and outcome != "unavailable":
            outcome = "internal_error"
        logger.info(
            "request",
            extra={
                "request_id": request_id.get(),
                "method": scope.get("method"),
                "path": scope.get("path"),
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "operation_name": details.get("name"),
                "operation_type": details.get("type"),
                "outcome": outcome,
            },
        )
