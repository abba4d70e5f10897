"""Every round trip an engine makes to its database, as the statements it sends.

One count serves the tests that pin how many statements each operation costs and the
statements-per-request figure of /metrics, so the two never disagree on what a round trip is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

# count(kind, times): kind is the statement's first word in capitals (SELECT, INSERT...), or
# BEGIN, COMMIT or ROLLBACK for a transaction's start and end.
Count = Callable[[str, int], None]


def count_round_trips(engine: AsyncEngine, count: Count) -> Callable[[], None]:
    """Call `count` for each statement the engine sends and each transaction it begins and
    ends; the function returned stops counting."""
    sync = engine.sync_engine

    def statement(
        _connection: Any,
        _cursor: Any,
        text: str,
        parameters: Any,
        _context: Any,
        many: bool,
    ) -> None:
        # SQLite's own BEGIN IMMEDIATE is sent as a statement; it is counted as the BEGIN.
        if not text.startswith("BEGIN"):
            # A batch runs its statement once for each set of parameters.
            count(text.split(None, 1)[0].upper(), len(parameters) if many else 1)

    def begin(_connection: Any) -> None:
        count("BEGIN", 1)

    def commit(_connection: Any) -> None:
        count("COMMIT", 1)

    def rollback(_connection: Any) -> None:
        count("ROLLBACK", 1)

    listeners: list[tuple[str, Callable[..., None]]] = [
        ("before_cursor_execute", statement),
        ("begin", begin),
        ("commit", commit),
        ("rollback", rollback),
    ]
    for name, listener in listeners:
        event.listen(sync, name, listener)

    def stop() -> None:
        for name, listener in listeners:
            event.remove(sync, name, listener)

    return stop
