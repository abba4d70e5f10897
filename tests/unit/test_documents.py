"""Documents are parsed and validated once, never past the token limit, and what is
remembered of them stays within a budget of bytes however many distinct documents come."""

from __future__ import annotations

from typing import Any

import graphql
import pytest
from graphql import DocumentNode, GraphQLError, OperationType

from gql.schema import documents as documents_module
from gql.schema.documents import Budgeted, Documents, document_weight
from gql.schema.schema import build_schema
from gql.schema.validation import validator

SUBSCRIBE = "subscription Lines($id: ID!) { accountEntries(accountId: $id) { id } }"
MAX_TOKENS = 2000
RULES = tuple(graphql.specified_rules)


@pytest.fixture
def parses(monkeypatch) -> list[tuple[str, dict[str, Any]]]:
    """Every parse the documents module makes, with its options."""
    seen: list[tuple[str, dict[str, Any]]] = []
    real_parse = graphql.parse

    def counting_parse(source: str, **options: Any) -> DocumentNode:
        seen.append((source, options))
        return real_parse(source, **options)

    monkeypatch.setattr(documents_module.graphql, "parse", counting_parse)
    return seen


def test_a_document_sent_again_and_again_is_parsed_once(parses):
    documents = Documents(MAX_TOKENS)
    kinds = {documents.operation_type(SUBSCRIBE, None) for _ in range(20)}
    assert kinds == {OperationType.SUBSCRIPTION}
    # Running it parses it with the same options: the same parse serves both.
    documents.parse(SUBSCRIBE, max_tokens=MAX_TOKENS)
    assert [source for source, _ in parses] == [SUBSCRIBE]
    assert documents.operation_type("mutation M { signOut }", "M") is OperationType.MUTATION
    assert documents.operation_type("query Q { viewer { id } }", "Other") is None
    assert documents.operation_type("{ not closed", None) is None
    assert documents.operation_type(None, None) is None
    assert len(parses) == 4


def test_a_document_past_the_token_limit_stops_being_parsed(parses):
    documents = Documents(max_tokens=50)
    huge = "{ " + "viewer { id } " * 10_000 + "}"
    assert documents.operation_type(huge, None) is None
    [(_, options)] = parses
    assert options == {"max_tokens": 50}
    # Whatever the caller asks, the limit holds.
    with pytest.raises(GraphQLError, match="more than 50 tokens"):
        documents.parse(huge, max_tokens=10**9)
    # A document that fails is not kept: nothing weighs in the budget.
    assert len(documents.parsed) == 0


def test_without_a_budget_nothing_is_kept(parses):
    documents = Documents(MAX_TOKENS, budget_bytes=0)
    for _ in range(3):
        documents.parse(SUBSCRIBE)
    assert len(parses) == 3
    assert len(documents.parsed) == 0


def test_the_budget_keeps_the_most_recent_within_its_bytes():
    kept: Budgeted[str, str] = Budgeted(budget_bytes=100)
    computed: list[str] = []

    def value(key: str) -> str:
        return kept.get(key, lambda: computed.append(key) or key * 2, lambda v: 30)

    for key in "abcd":
        value(key)
    # Three of 30 bytes fit in 100; the least recently used went first.
    assert (len(kept), kept.weight) == (3, 90)
    value("b")
    value("e")  # drops c, the least recently used now that b was read again
    assert computed == ["a", "b", "c", "d", "e"]
    value("b")
    value("c")
    assert computed == ["a", "b", "c", "d", "e", "c"]
    assert kept.weight <= 100


def test_an_entry_larger_than_the_whole_budget_is_used_once_and_not_kept():
    kept: Budgeted[str, str] = Budgeted(budget_bytes=100)
    kept.get("small", lambda: "s", lambda v: 10)
    assert kept.get("big", lambda: "B", lambda v: 101) == "B"
    assert (len(kept), kept.weight) == (1, 10)


def test_what_compute_raises_is_raised_and_nothing_is_kept():
    kept: Budgeted[str, str] = Budgeted(budget_bytes=100)

    def fail() -> str:
        raise ValueError("no")

    with pytest.raises(ValueError):
        kept.get("key", fail, lambda v: 1)
    assert len(kept) == 0


def test_many_distinct_large_documents_stay_within_the_budget():
    budget = 2 * 1024 * 1024
    documents = Documents(MAX_TOKENS, budget_bytes=budget)
    weights = []
    for n in range(60):
        # About 1,900 tokens each: near the limit, and each one distinct.
        source = "{ " + " ".join(f"a{n}_{i}: viewer {{ id }}" for i in range(320)) + " }"
        weights.append(document_weight(documents.parse(source)))
    assert min(weights) > 1_000_000
    assert documents.parsed.weight <= budget
    assert 1 <= len(documents.parsed) < 60


def test_validation_runs_once_per_document_and_stays_within_its_budget(monkeypatch):
    from gql.schema import validation

    schema = build_schema(caches=False)._schema
    runs: list[DocumentNode] = []
    real = validation._validate

    def counting(schema_: Any, document: DocumentNode, rules: Any, **kw: Any) -> Any:
        runs.append(document)
        return real(schema_, document, rules, **kw)

    monkeypatch.setattr(validation, "_validate", counting)
    validate = validator(hide_suggestions=False, budget_bytes=1024 * 1024)
    document = graphql.parse("{ viewer { id } }")
    for _ in range(5):
        assert validate(schema, document, ()) == []
    assert len(runs) == 1
    # A result is weighed with its errors: 20 errors weigh over 100 KB, so a budget of
    # 1 MiB keeps the last few of 30 such documents, not all of them.
    bad = [graphql.parse("{ " + " ".join(f"f{n}_{i}" for i in range(20)) + " }") for n in range(30)]
    for document_ in bad:
        assert len(validate(schema, document_, RULES)) == 20
        assert len(validate(schema, document_, RULES)) == 20
    assert len(runs) == 1 + 30
    validate(schema, bad[-1], RULES)
    assert len(runs) == 1 + 30
    validate(schema, bad[0], RULES)
    assert len(runs) == 1 + 30 + 1
    # Without a budget, every call validates.
    unremembered = validator(hide_suggestions=False)
    unremembered(schema, document, ())
    unremembered(schema, document, ())
    assert len(runs) == 1 + 30 + 1 + 2


def test_same_place_pairs_count_what_validation_would_compare():
    from gql.schema.validation import same_place_pairs

    def pairs(source: str) -> int:
        return same_place_pairs(graphql.parse(source), limit=10**9)

    assert pairs("{ viewer { id email } accounts { totalCount } }") == 0
    # 3 viewers: 3 pairs of them, and 3 pairs of their ids below.
    assert pairs("{ viewer { id } viewer { id } viewer { id } }") == 6
    # Aliases name the place; inline fragments add to the place they are in.
    assert pairs("{ a: viewer { id } b: viewer { id } ... on Query { a: viewer { id } } }") == 2
    # A fragment spread twice at one place counts once; one within itself ends.
    assert pairs("{ ...F ...F } fragment F on Query { viewer { id } }") == 0
    assert pairs("{ ...F } fragment F on Query { viewer { id } ...F }") == 0
    assert pairs("{ viewer { id } ...F } fragment F on Query { viewer { id } }") == 2
    # Every pair of fragments spread at one place is compared, whatever their fields.
    spreads = " ".join(f"...F{n}" for n in range(5))
    fragments = " ".join(f"fragment F{n} on Query {{ f{n} }}" for n in range(5))
    assert pairs(f"{{ {spreads} }} {fragments}") == 10
    # Counting stops once past the limit: the viewers' 79,800 pairs, not their ids' as well.
    many = graphql.parse("{" + " viewer { id }" * 400 + " }")
    assert same_place_pairs(many, limit=10) == 79_800
    assert pairs("{" + " viewer { id }" * 400 + " }") == 2 * 79_800


def test_a_remembered_validation_is_found_by_the_documents_text_not_by_walking_it(monkeypatch):
    """A document's own hash walks every node: a millisecond near the token limit, paid at
    every look-up of the cache, and a fifth of the processor time of a flood of them."""
    hashed: list[DocumentNode] = []
    real_hash = DocumentNode.__hash__

    def counting_hash(self: DocumentNode) -> int:
        hashed.append(self)
        return real_hash(self)

    monkeypatch.setattr(DocumentNode, "__hash__", counting_hash)
    schema = build_schema(caches=False)._schema
    validate = validator(hide_suggestions=False, budget_bytes=1024 * 1024)
    document = graphql.parse("{" + " viewer { id }" * 40 + " }")
    for _ in range(3):
        assert validate(schema, document, RULES) == []
    assert hashed == []


def test_a_parse_tells_the_request_its_cost_once_per_new_document():
    from gql.schema.documents import parse_charge

    charged: list[int] = []
    documents = Documents(max_tokens=2000)
    token = parse_charge.set(charged.append)
    try:
        source = "{ " + " ".join(f"f{i}" for i in range(500)) + " }"
        documents.parse(source)
        documents.parse(source)  # remembered: nothing more
        with pytest.raises(GraphQLError):
            documents.parse("{ " + "a " * 5_000 + "}")  # stopped at the limit: its worth
        with pytest.raises(GraphQLError):
            documents.parse("{ (")  # a typo in a small document: nothing more
        with pytest.raises(GraphQLError):
            documents.parse("{ " + "__typename " * 1_800 + ")")  # failed late: its length
        documents.parse('{ viewer(a: "' + "x" * 100_000 + '") { id } }')  # few tokens, long
    finally:
        parse_charge.reset(token)
    assert charged == [5, 20, 33, 24]
    # Without a request to charge (the server's own parses), nothing is told.
    Documents(max_tokens=2000).parse("{ viewer { id } }")
    assert charged == [5, 20, 33, 24]


def test_each_validation_run_tells_the_request_its_cost():
    """A document still parsed but no longer validated is validated, at its cost, again."""
    from gql.schema.documents import parse_charge

    schema = build_schema(caches=False)._schema
    # Room for one such result at a time.
    validate = validator(hide_suggestions=False, budget_bytes=900_000)
    first, second = (
        graphql.parse("{ " + " ".join(f"f{n}_{i}" for i in range(300)) + " }") for n in range(2)
    )
    charged: list[int] = []
    token = parse_charge.set(charged.append)
    try:
        for document in (first, first, second, first):
            validate(schema, document, RULES)
    finally:
        parse_charge.reset(token)
    assert charged == [3, 3, 3]
