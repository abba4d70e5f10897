"""GET /accounts/{id}/statement.csv?from=...&to=...: a statement as an RFC 4180 CSV file.

Streamed a batch of lines at a time, so the server's memory stays flat however many lines
the period holds. Every batch reads from the request's one snapshot, so the file agrees with
its own opening and closing balances. Cells a spreadsheet would run as a formula (starting
with =, +, -, @, tab or carriage return) are shown as text by a leading apostrophe; the
amounts, written by the server, stay numbers a spreadsheet can sum.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import datetime

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from domain.errors import InvalidInput
from domain.model import AccountId
from domain.money import Currency, Money
from domain.ports import ExportLine
from domain.services.accounts import StatementSummary
from gql.context import Context, ContextGetter
from gql.schema.ids import MalformedId, key_of, to_global_id

HEADER = ("date", "transaction id", "kind", "description", "amount", "balance after", "currency")
BATCH = 2000
# What a spreadsheet takes for the start of a formula (OWASP: CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def as_text(value: str | None) -> str:
    """A cell shown as the text it is, never run as a formula."""
    text = value or ""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _rows_to_text(rows: Iterable[Iterable[str]]) -> str:
    buffer = io.StringIO()
    # RFC 4180: CRLF after every record, fields quoted when they hold a comma, quote or break.
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


def _balance_row(label: str, moment: datetime, balance: Money) -> tuple[str, ...]:
    code = balance.currency.code
    return (moment.isoformat(), "", label, "", "", balance.to_decimal_string(), code)


async def _lines(context: Context, summary: StatementSummary) -> AsyncIterator[str]:
    yield _rows_to_text([HEADER, _balance_row("OPENING BALANCE", summary.start, summary.opening)])
    currency = summary.account.currency
    batches = context.accounts.export_lines(
        account_id=summary.account.id, start=summary.start, end=summary.end, batch=BATCH
    )
    async for batch in batches:
        yield _rows_to_text(_line_row(line, currency) for line in batch)
    yield _rows_to_text([_balance_row("CLOSING BALANCE", summary.end, summary.closing)])


async def _ending(chunks: AsyncIterator[str], cleanup: BackgroundTask | None) -> AsyncIterator[str]:
    """The chunks, then the snapshot ended however the stream stops: a client that leaves
    halfway must not keep a database connection. (Ending it twice is harmless.)"""
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        if cleanup is not None:
            await cleanup()


def _line_row(line: ExportLine, currency: Currency) -> tuple[str, ...]:
    return (
        line.created_at.isoformat(),
        as_text(to_global_id("Transaction", line.transaction_id)),
        as_text(line.kind),
        as_text(line.description),
        Money(line.amount, currency).to_decimal_string(),
        Money(line.balance_after, currency).to_decimal_string(),
        currency.code,
    )


def _moment(request: Request, name: str) -> datetime | None:
    text = request.query_params.get(name)
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def statement_csv(
    context_getter: ContextGetter, over_rate: Callable[[Request], Response | None]
) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint, with the same rate limits as GraphQL (the request middleware gives it the
    same size and time limits)."""

    async def endpoint(request: Request) -> Response:
        refusal = over_rate(request)
        if refusal is not None:
            return refusal
        try:
            account_id = AccountId(key_of(request.path_params["account_id"], "Account"))
        except MalformedId:
            return Response(status_code=404)
        start, end = _moment(request, "from"), _moment(request, "to")
        if start is None or end is None:
            return PlainTextResponse(
                "Give `from` and `to` as ISO 8601 moments with a UTC offset.", status_code=400
            )
        response = Response()
        context = await context_getter(request, response)
        snapshot = getattr(request.state, "read_snapshot", None)
        cleanup = BackgroundTask(snapshot.end) if snapshot is not None else None
        try:
            viewer = await context.viewer()
            if viewer is None:
                if cleanup is not None:
                    await cleanup()
                return PlainTextResponse(
                    "Sign in: send Authorization: Bearer <token>.",
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            summary = await context.accounts.statement_summary(
                actor=viewer, account_id=account_id, start=start, end=end
            )
        except InvalidInput as error:
            if cleanup is not None:
                await cleanup()
            return PlainTextResponse(f"`{error.field}`: {error.message}", status_code=400)
        except BaseException:
            if cleanup is not None:
                await cleanup()
            raise
        if summary is None:
            if cleanup is not None:
                await cleanup()
            return Response(status_code=404)
        filename = f"statement-{request.path_params['account_id']}.csv"
        return StreamingResponse(
            _ending(_lines(context, summary), cleanup),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
            background=cleanup,
        )

    return endpoint
