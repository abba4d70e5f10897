"""Documents parsed and validated once, and remembered within a budget of memory.

A frontend sends the same few documents again and again; each is parsed and validated once
(validating costs more than running it), and what the server needs to know of a document
before it runs (is it a mutation sent by GET, is it a subscription) comes from the same
parse. Every parse stops at the token limit: a document of a megabyte of tokens is refused
after `max_tokens` of them, not after seconds of parsing.

What is remembered is bounded in bytes, not in entries. A document of 2,000 tokens takes
about 1.2 MB once parsed, and its validation errors up to 0.5 MB more: with 512 entries, one
client sending 512 such documents once each made a process hold about 700 MB. Each entry is
weighed when it is kept, and the least recently used go first once a budget is full; an
entry larger than a whole budget is used once and not kept.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from contextvars import ContextVar
from typing import Any, Generic, TypeVar

import graphql
from cachetools import LRUCache
from graphql import DocumentNode, GraphQLError, OperationType, Token, get_operation_ast

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MIB = 1024 * 1024
# Each of the two budgets (parsed documents, validation results), per process.
BUDGET_BYTES = 32 * MIB
# Measured with tracemalloc (graphql-core 3.3): a parsed document takes about 600 bytes a
# token besides its text, and a validation error about 5.4 KB.
BYTES_PER_TOKEN = 600
BYTES_PER_ERROR = 5600
# Parsing a new document costs about 10 ms per 1,000 tokens, and validating it as much
# again: the request that brings one is told each cost, a unit per hundred tokens, through
# `parse_charge`.
TOKENS_PER_UNIT = 100
# Reading text costs too: a megabyte of one string literal took 200 ms to parse.
BYTES_PER_UNIT = 4096
# A document that fails to parse has no token count: about a hundred tokens of text.
FAILED_BYTES_PER_UNIT = 600
# Set for each request by the server: who pays for the documents it brings.
parse_charge: ContextVar[Callable[[int], None] | None] = ContextVar("parse_charge", default=None)


class Budgeted(Generic[K, V]):
    """The most recently used values, each weighed in bytes, within a budget."""

    def __init__(self, budget_bytes: int) -> None:
        self._entries: LRUCache[K, tuple[V, int]] = LRUCache(
            budget_bytes, getsizeof=lambda entry: entry[1]
        )

    @property
    def weight(self) -> int:
        """The bytes the kept entries weigh."""
        return int(self._entries.currsize)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K, compute: Callable[[], V], weigh: Callable[[V], int]) -> V:
        """The value kept for `key`, or `compute()`'s, kept if it fits the budget. What
        `compute` raises is raised, and nothing is kept."""
        found = self._entries.get(key)
        if found is not None:
            return found[0]
        value = compute()
        weight = max(1, weigh(value))
        if weight <= self._entries.maxsize:
            self._entries[key] = (value, weight)
        return value


def tokens_in(document: DocumentNode) -> int:
    """The tokens of a parsed document, comments included."""
    location = document.loc
    tokens = 0
    token: Token | None = location.start_token if location is not None else None
    while token is not None:
        tokens += 1
        token = token.next
    return tokens


def document_weight(document: DocumentNode) -> int:
    """About the bytes a parsed document holds: its text, and a node and token per token."""
    if document.loc is None:
        return 0
    return 2 * len(document.loc.source.body) + tokens_in(document) * BYTES_PER_TOKEN


def cost_units(document: DocumentNode) -> int:
    """What parsing, or validating, a document costs a process, in rate-limit units: one per
    hundred tokens, or per 4 KiB of text (long strings, comments, whitespace) if more."""
    length = len(document.loc.source.body) if document.loc is not None else 0
    return max(tokens_in(document) // TOKENS_PER_UNIT, length // BYTES_PER_UNIT)


def charge(units: int) -> None:
    """Tell the request being served what its document cost, when a request is."""
    told = parse_charge.get()
    if told is not None and units > 0:
        told(units)


def charged_parse(query: str, max_tokens: int, **options: Any) -> DocumentNode:
    """graphql-core's parse, its cost told to the request's `parse_charge`. One that fails
    is parsed twice (Strawberry's own parse gives the client its error) and never
    remembered, and its tokens are not known: it is charged by its length, as text of
    about a hundred tokens a unit, and at the token limit's worth when it stopped there.
    A typo in a small document costs nothing more."""
    try:
        document = graphql.parse(query, max_tokens=max_tokens, **options)
    except GraphQLError as error:
        stopped = "tokens. Parsing aborted" in error.message
        limit = max_tokens // TOKENS_PER_UNIT if stopped else 0
        charge(max(limit, len(query) // FAILED_BYTES_PER_UNIT))
        raise
    charge(cost_units(document))
    return document


class Documents:
    """One schema's parses, within its token limit; remembered unless `budget_bytes` is 0."""

    def __init__(self, max_tokens: int, budget_bytes: int = BUDGET_BYTES) -> None:
        self.max_tokens = max_tokens
        self.parsed: Budgeted[tuple[str, tuple[tuple[str, Any], ...]], DocumentNode] = Budgeted(
            budget_bytes
        )

    def parse(self, query: str, **options: Any) -> DocumentNode:
        """The document, parsed with `options` and never past the token limit; raises
        GraphQLError as graphql-core's parse does."""
        options["max_tokens"] = self.max_tokens
        key = (query, tuple(sorted(options.items())))
        return self.parsed.get(key, lambda: charged_parse(query, **options), document_weight)

    def operation_type(self, query: str | None, operation_name: str | None) -> OperationType | None:
        """What a document's operation does, or None when it names none that parses; the
        usual parse or validation error answers it then."""
        if not query:
            return None
        try:
            operation = get_operation_ast(self.parse(query), operation_name)
        except GraphQLError:
            return None
        return operation.operation if operation is not None else None


def validation_weight(document: DocumentNode, errors: list[GraphQLError]) -> int:
    """A validation result keeps its document (as its key) and its errors."""
    return document_weight(document) + len(errors) * BYTES_PER_ERROR
