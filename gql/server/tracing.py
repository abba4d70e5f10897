"""Traces over OTLP/HTTP, when BANKQL_TRACING is on: a span for each HTTP request or
WebSocket connection, one for its GraphQL operation with one per resolver, and one per SQL
statement, each carrying the request id that the logs carry.

What a client sent is never recorded: not the document (whose literals may be a password),
not the variables nor any argument, not the query string (variables travel there on GET),
not the client's address, no header but the caller's trace context, not the path (an account
id is in some) but its route, and the operation's name only when it has the shape code gives
one (the client may send any text as its name). SQL statements are recorded as written, with
placeholders, never their parameters; a failed statement's span says only the error's type,
as the driver's message may quote a row.

This module is imported only when tracing is on: with it off, no tracing code runs.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from contextlib import suppress
from inspect import isawaitable
from typing import Any

from graphql import GraphQLResolveInfo
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer, _handle_error
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.extensions import LifecycleStep
from strawberry.extensions.tracing import OpenTelemetryExtension
from strawberry.extensions.tracing.utils import should_skip_tracing
from strawberry.extensions.utils import get_path_from_info

from gql.schema.schema import outcome_of
from gql.server.logs import request_id
from gql.server.metrics import SAFE_NAME, route_of
from gql.server.settings import Settings

SERVICE_NAME = "bankql"
REQUEST_ID = "bankql.request_id"
OUTCOME = "bankql.outcome"
_HIDDEN = "bankql.hidden"
# The only headers the request span is shown: the caller's trace, which it joins.
_TRACE_HEADERS = frozenset({b"traceparent", b"tracestate"})


def _shown_name(name: str | None) -> str | None:
    """The operation name the client sent, if it has a safe shape; an email address, a
    token or a sentence does not."""
    return name if name and SAFE_NAME.fullmatch(name) else None


def tracer_provider(settings: Settings) -> TracerProvider:
    """Spans batched to the collector at BANKQL_OTEL_ENDPOINT; a request that arrives in a
    trace follows its parent's sampling, any other is sampled at BANKQL_TRACING_SAMPLE_RATIO."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": SERVICE_NAME}),
        sampler=ParentBased(TraceIdRatioBased(settings.tracing_sample_ratio)),
    )
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otel_endpoint))
    )
    return provider


class OperationSpans(OpenTelemetryExtension):
    """Strawberry's spans for an operation and its resolvers, without the document and
    without argument values, with the request id and the operation's outcome."""

    def on_operation(self) -> Generator[None, None, None]:
        context = self.execution_context
        name = _shown_name(context.operation_name)
        span = self._tracer.start_span(
            f"GraphQL Operation: {name}" if name else "GraphQL Operation", kind=SpanKind.INTERNAL
        )
        span.set_attribute("component", "graphql")
        rid = request_id.get()
        if rid is not None:
            span.set_attribute(REQUEST_ID, rid)
        self._span_holder[LifecycleStep.OPERATION] = span
        try:
            yield
        finally:
            # Also when the operation is cut short: a subscription whose client left.
            self._end(span)

    def _end(self, span: Span) -> None:
        context = self.execution_context
        name = _shown_name(context.operation_name)
        if name:
            span.update_name(f"GraphQL Operation: {name}")
            span.set_attribute("graphql.operation.name", name)
        with suppress(RuntimeError):  # raised when there is no document to say
            span.set_attribute("graphql.operation.type", context.operation_type.value)
        found = context.pre_execution_errors or []
        outcome = outcome_of([*found, *(getattr(context.result, "errors", None) or [])])
        span.set_attribute(OUTCOME, outcome)
        if outcome != "ok":
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    def add_tags(self, span: Span, info: GraphQLResolveInfo[Any], kwargs: Any) -> None:
        span.set_attribute("component", "graphql")
        span.set_attribute("graphql.parentType", info.parent_type.name)
        span.set_attribute("graphql.path", ".".join(map(str, get_path_from_info(info))))

    async def resolve(
        self,
        _next: Callable[..., Any],
        root: Any,
        info: GraphQLResolveInfo[Any],
        *args: str,
        **kwargs: Any,
    ) -> Any:
        if should_skip_tracing(_next, info):
            result = _next(root, info, *args, **kwargs)
            return await result if isawaitable(result) else result
        # An exception's message may quote what the client sent: only its type is kept.
        with self._tracer.start_as_current_span(
            f"GraphQL Resolving: {info.field_name}",
            context=trace.set_span_in_context(self._span_holder[LifecycleStep.OPERATION]),
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            self.add_tags(span, info, kwargs)
            try:
                result = _next(root, info, *args, **kwargs)
                return await result if isawaitable(result) else result
            except Exception as error:
                span.set_status(Status(StatusCode.ERROR))
                span.set_attribute("error.type", type(error).__name__)
                raise


def operation_spans(provider: TracerProvider) -> Callable[[], OperationSpans]:
    return lambda: OperationSpans(tracer_provider=provider)


def trace_sql(engine: AsyncEngine, provider: TracerProvider) -> None:
    """A span per statement the engine sends, under the span that sent it."""
    sync = engine.sync_engine
    tracer = trace.get_tracer("bankql.sql", tracer_provider=provider)
    meter = NoOpMeterProvider().get_meter("bankql.sql")
    usage = meter.create_up_down_counter("db.client.connections.usage")
    EngineTracer(tracer, sync, usage)  # type: ignore[no-untyped-call]
    # Its error handler puts the driver's message in the span, and that may quote a row.
    event.remove(sync, "handle_error", _handle_error)
    event.listen(sync, "handle_error", _failed_statement)


def _failed_statement(context: Any) -> None:
    span = getattr(context.execution_context, "_otel_span", None)
    if span is None:
        return
    if span.is_recording():
        span.set_status(Status(StatusCode.ERROR))
        span.set_attribute("error.type", type(context.original_exception).__name__)
    span.end()


class RequestSpans:
    """The ASGI instrumentation's span for each request or WebSocket connection, shown the
    request without its query string, client address or headers (but the trace context),
    and with its route for its path; the app still gets all of them. Inside the
    request middleware, so that its request id is known."""

    def __init__(self, app: ASGIApp, *, provider: TracerProvider) -> None:
        self.app = app
        self.traced = OpenTelemetryMiddleware(
            self._restored,
            tracer_provider=provider,
            meter_provider=NoOpMeterProvider(),
            server_request_hook=_name_request,
            exclude_spans=["receive", "send"],
            # No header is captured, whatever the environment asks; if one were, its value
            # would be hidden.
            http_capture_headers_server_request=[],
            http_capture_headers_server_response=[],
            http_capture_headers_sanitize_fields=[".*"],
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        shown = dict(scope)
        shown["query_string"] = b""
        shown["client"] = None
        shown["headers"] = [
            (name, value) for name, value in scope["headers"] if name.lower() in _TRACE_HEADERS
        ]
        shown["path"] = route_of(scope["path"])
        shown["raw_path"] = shown["path"].encode()
        shown[_HIDDEN] = scope
        await self.traced(shown, receive, send)

    async def _restored(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope[_HIDDEN], receive, send)


def _name_request(span: Span, _scope: dict[str, Any]) -> None:
    rid = request_id.get()
    if rid is not None and span.is_recording():
        span.set_attribute(REQUEST_ID, rid)
