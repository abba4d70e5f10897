"""The primary + standby stack, started once per test run for the tests that ask for it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.databases import REQUIRE_POSTGRES_VARIABLE
from tests.stack.clusters import PostgresStack, StackUnavailable, running_stack


def _stack_or_skip() -> Iterator[PostgresStack]:
    try:
        with running_stack() as stack:
            yield stack
    except StackUnavailable as missing:
        if os.environ.get(REQUIRE_POSTGRES_VARIABLE) == "1":
            pytest.fail(f"{missing}, and {REQUIRE_POSTGRES_VARIABLE}=1 requires it")
        pytest.skip(str(missing))


@pytest.fixture(scope="session")
def postgres_stack() -> Iterator[PostgresStack]:
    """A primary with a migrated bankql database and a streaming standby, shared by every test
    of the run: a test that stops, pauses or promotes one must use `disposable_stack`, or put
    things back (`resume_replay`) before it ends."""
    yield from _stack_or_skip()


@pytest.fixture
def disposable_stack() -> Iterator[PostgresStack]:
    """A primary and standby of this test's own, for tests that stop or promote a server."""
    yield from _stack_or_skip()
