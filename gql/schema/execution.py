"""Each operation, and each event of a subscription, within the deadline its context gives."""

from __future__ import annotations

import asyncio
from typing import Any

from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from gql.schema.top_level_errors import ClientProblem

TIMEOUT = "TIMEOUT"


class RequestTimeout(ClientProblem):
    """The work of a request or a subscription event outlasted its deadline."""

    code = TIMEOUT


def timeout_message(timeout_s: float) -> str:
    return (
        f"The server stopped this operation after {timeout_s:g} s. A mutation it stopped "
        "may still have been committed: send it again with the same idempotencyKey to "
        "get its result."
    )


class BoundedExecution(StrawberryGraphQLCoreExecutionContext):
    """Executes each operation, and each event of a subscription, within the deadline its
    context gives; over the deadline it fails with a TIMEOUT error, which ends a
    subscription's stream. An HTTP request's own deadline, set earlier, comes first."""

    def execute_operation(self, serially: bool | None = None) -> Any:
        result = super().execute_operation(serially)
        timeout_s = getattr(self.context_value, "operation_timeout_s", None)
        if timeout_s is None or not self.is_awaitable(result):
            return result

        async def bounded() -> Any:
            try:
                async with asyncio.timeout(timeout_s):
                    return await result
            except TimeoutError:
                raise RequestTimeout(timeout_message(timeout_s)) from None

        return bounded()
