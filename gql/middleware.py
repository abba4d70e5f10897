"""Request ids, body size limits, one log line per request, and a 500 that names the request."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gql.logs import operation, request_id

logger = logging.getLogger("bankql.requests")
REQUEST_ID_HEADER = "x-request-id"
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _request_id(headers: dict[str, str]) -> str:
    """The client's X-Request-ID when it is a sane one, or a new id."""
    sent = headers.get(REQUEST_ID_HEADER, "")
    return sent if _CLIENT_REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex


class BodyTooLarge(Exception):
    pass


def _json_response(status: int, body: dict[str, Any], rid: str) -> list[Message]:
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (REQUEST_ID_HEADER.encode(), rid.encode()),
    ]
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": payload},
    ]


class RequestMiddleware:
    """Pure ASGI, so that it sees every request, streams nothing twice and adds no task."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

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
            except BodyTooLarge:
                status = 413
                message = f"The request body is larger than {self.max_body_bytes} bytes."
                for part in _json_response(413, {"errors": [{"message": message}]}, rid):
                    await send(part)
                return

            delivered = False

            async def replay() -> Message:
                # The body once, as read; after that, whatever the client does (a disconnect).
                nonlocal delivered
                if delivered:
                    return await receive()
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
                await send(message)

            try:
                await self.app(scope, replay, send_with_id)
            except Exception:
                logger.exception("unhandled error", extra={"request_id": rid})
                status = 500
                message = "Internal server error"
                body_500 = {"errors": [{"message": message, "extensions": {"requestId": rid}}]}
                for part in _json_response(500, body_500, rid):
                    await send(part)
        finally:
            self._log(scope, status, started)
            request_id.reset(rid_token)
            operation.reset(operation_token)

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
            raise BodyTooLarge()
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise BodyTooLarge()
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    @staticmethod
    def _log(scope: Scope, status: int, started: float) -> None:
        """The request's one line; it names the operation, never its variables or headers."""
        details = operation.get() or {}
        outcome = details.get("outcome") or ("ok" if status < 400 else "rejected")
        if status >= 500:
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
