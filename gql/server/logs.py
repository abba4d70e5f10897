"""One JSON object per log line, each carrying the id of the request it belongs to."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
# Filled in by the GraphQL layer during a request, read by the request log line.
operation: ContextVar[dict[str, Any] | None] = ContextVar("operation", default=None)

# Attributes every record has, and uvicorn's terminal-coloured copy of its message.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # Set on the record by our own loggers; any other logger's line is formatted while
        # its request is still running, so the context still knows it.
        if (current := request_id.get()) is not None:
            line["request_id"] = current
        line |= {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


# Libraries that log SQL parameters or request details at DEBUG: never louder than WARNING,
# whatever BANKQL_LOG_LEVEL says, so that no password hash or name reaches the logs.
QUIET_LIBRARIES = ("aiosqlite", "sqlalchemy", "psycopg", "httpx", "httpcore", "asyncio")


def _not_migration_chatter(record: logging.LogRecord) -> bool:
    """Every look at the schema's revision (each /readyz) would log which dialect it uses."""
    return not str(record.msg).startswith(("Context impl", "Will assume"))


def _not_wire_dump(record: logging.LogRecord) -> bool:
    """At DEBUG the WebSocket library, logging as uvicorn, dumps each upgrade header ("<
    authorization: Bearer ...") and each frame, cut short but keeping both ends (a token or
    password sent in a message): none of that may reach the logs."""
    return not (record.levelno <= logging.DEBUG and str(record.msg).startswith(("< ", "> ")))


def quiet_libraries() -> None:
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
    migration = logging.getLogger("alembic.runtime.migration")
    if _not_migration_chatter not in migration.filters:
        migration.addFilter(_not_migration_chatter)
    server = logging.getLogger("uvicorn.error")
    if _not_wire_dump not in server.filters:
        server.addFilter(_not_wire_dump)


def configure_logging(level: str) -> None:
    """Send every logger, uvicorn's included, through one JSON handler on standard error."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quiet_libraries()
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
