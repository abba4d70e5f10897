"""What an operation does is read from its document once, not once per operation sent."""

from __future__ import annotations

from graphql import DocumentNode, OperationType

from gql.server import http

SUBSCRIBE = "subscription Lines($id: ID!) { accountEntries(accountId: $id) { id } }"


def test_a_document_sent_again_and_again_is_parsed_once(monkeypatch):
    parsed: list[str] = []
    real_parse = http.parse

    def counting_parse(source: str) -> DocumentNode:
        parsed.append(source)
        return real_parse(source)

    monkeypatch.setattr(http, "parse", counting_parse)
    http.operation_type.cache_clear()
    try:
        kinds = {http.operation_type(SUBSCRIBE, None) for _ in range(20)}
        assert kinds == {OperationType.SUBSCRIPTION}
        assert parsed == [SUBSCRIBE]
        assert http.operation_type("mutation M { signOut }", "M") is OperationType.MUTATION
        assert http.operation_type("query Q { viewer { id } }", "Other") is None
        assert http.operation_type("{ not closed", None) is None
        assert len(parsed) == 4
    finally:
        http.operation_type.cache_clear()
