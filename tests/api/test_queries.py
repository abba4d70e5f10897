import pytest

from gql.schema.ids import from_global_id, to_cursor, to_global_id
from tests.api.graphql import ACCOUNTS, STATEMENT

NODE = """
query($id: ID!) {
  node(id: $id) {
    __typename id
    ... on Account { name }
    ... on Transaction { kind amount { amount } }
    ... on LedgerEntry { amount { amount } }
    ... on User { email }
  }
}
"""
TRANSACTION = "query($id: ID!) { transaction(id: $id) { id kind amount { amount currency } } }"


async def test_accounts_page_oldest_first_with_exact_total_and_opaque_cursors(gql):
    ids = [(await gql.open_account(name=f"A{i}"))["id"] for i in range(5)]
    first = (await gql.data(ACCOUNTS, first=2))["accounts"]
    assert [e["node"]["id"] for e in first["edges"]] == ids[:2]
    assert first["totalCount"] == 5
    assert first["pageInfo"]["hasNextPage"] is True
    assert first["pageInfo"]["hasPreviousPage"] is False
    assert first["pageInfo"]["endCursor"] == first["edges"][-1]["cursor"]
    rest = (await gql.data(ACCOUNTS, first=10, after=first["pageInfo"]["endCursor"]))["accounts"]
    assert [e["node"]["id"] for e in rest["edges"]] == ids[2:]
    assert rest["pageInfo"]["hasNextPage"] is False
    assert rest["pageInfo"]["hasPreviousPage"] is True
    assert rest["totalCount"] == 5


async def test_accounts_default_to_twenty_and_filter_by_status(gql):
    ids = [(await gql.open_account(name=f"A{i}"))["id"] for i in range(21)]
    page = (await gql.data(ACCOUNTS))["accounts"]
    assert len(page["edges"]) == 20 and page["pageInfo"]["hasNextPage"]
    await gql.data(
        "mutation($i: CloseAccountInput!) { closeAccount(input: $i) { __typename } }",
        i={"accountId": ids[3]},
    )
    closed = (await gql.data(ACCOUNTS, status="CLOSED"))["accounts"]
    assert [e["node"]["id"] for e in closed["edges"]] == [ids[3]]
    assert closed["totalCount"] == 1
    assert (await gql.data(ACCOUNTS, status="OPEN"))["accounts"]["totalCount"] == 20


async def test_an_empty_page_has_no_cursors(gql):
    page = (await gql.data(ACCOUNTS, first=0))["accounts"]
    assert page["edges"] == [] and page["pageInfo"]["startCursor"] is None


async def test_statement_pages_newest_first(gql):
    a = await gql.open_account()
    for amount in ("1", "2", "3"):
        await gql.deposit(a["id"], amount)
    first = (await gql.data(STATEMENT, id=a["id"], first=2))["account"]["entries"]
    assert [e["node"]["amount"]["amount"] for e in first["edges"]] == ["3.00", "2.00"]
    assert first["pageInfo"]["hasNextPage"] is True
    rest = await gql.data(STATEMENT, id=a["id"], first=2, after=first["pageInfo"]["endCursor"])
    edges = rest["account"]["entries"]["edges"]
    assert [e["node"]["amount"]["amount"] for e in edges] == ["1.00"]
    assert rest["account"]["entries"]["pageInfo"]["hasNextPage"] is False


@pytest.mark.parametrize("first", [-1, 101])
async def test_a_page_size_out_of_range_is_bad_user_input(gql, first):
    await gql.open_account()
    for document, variables in ((ACCOUNTS, {}), (STATEMENT, {"id": to_global_id("Account", 1)})):
        body = await gql.request(document, first=first, **variables)
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert "first" in body["errors"][0]["message"]


@pytest.mark.parametrize("after", ["junk", "", to_global_id("Account", 1), "Y3Vyc29yOjAx"])
async def test_a_cursor_the_server_did_not_issue_is_bad_user_input(gql, after):
    body = await gql.request(ACCOUNTS, after=after)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert body["data"] is None


async def test_a_huge_cursor_key_is_bad_user_input_not_a_database_error(gql):
    body = await gql.request(ACCOUNTS, after=to_cursor(2**63 - 1))
    assert "errors" not in body
    body = await gql.request(ACCOUNTS, after="Y3Vyc29yOjkyMjMzNzIwMzY4NTQ3NzU4MDg")  # 2**63
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_node_resolves_every_kind_of_object(gql):
    a = await gql.open_account(name="A", initial_deposit="7")
    statement = (await gql.data(STATEMENT, id=a["id"]))["account"]["entries"]["edges"]
    entry = statement[0]["node"]
    for global_id, typename in (
        (a["id"], "Account"),
        (entry["id"], "LedgerEntry"),
        (entry["transaction"]["id"], "Transaction"),
        (a["owner"]["id"], "User"),
    ):
        node = (await gql.data(NODE, id=global_id))["node"]
        assert (node["__typename"], node["id"]) == (typename, global_id)


async def test_objects_that_do_not_exist_are_null(gql):
    assert (await gql.data(NODE, id=to_global_id("Account", 99)))["node"] is None
    assert (await gql.data(NODE, id=to_global_id("LedgerEntry", 99)))["node"] is None
    assert (await gql.data(TRANSACTION, id=to_global_id("Transaction", 99)))["transaction"] is None
    body = await gql.data(
        "query($id: ID!) { account(id: $id) { id } }", id=to_global_id("Account", 9)
    )
    assert body["account"] is None


async def test_the_bank_funding_account_is_never_shown(gql, admin):
    a = await gql.open_account(initial_deposit="1")
    _, own_key = from_global_id(a["id"])
    # The deposit created the EUR funding account right after the customer's account, and
    # wrote the funding line just before the customer's.
    funding = to_global_id("Account", own_key + 1)
    [line] = (await gql.data(STATEMENT, id=a["id"]))["account"]["entries"]["edges"]
    _, line_key = from_global_id(line["node"]["id"])
    funding_line = to_global_id("LedgerEntry", line_key - 1)
    for viewer in (gql, admin):
        assert (await viewer.data(NODE, id=funding))["node"] is None
        assert (await viewer.data(NODE, id=funding_line))["node"] is None
    assert (await gql.data(ACCOUNTS))["accounts"]["totalCount"] == 1


async def test_a_transaction_by_id(gql):
    a = await gql.open_account(initial_deposit="7")
    deposit = await gql.deposit(a["id"], "1.25")
    found = (await gql.data(TRANSACTION, id=deposit["transaction"]["id"]))["transaction"]
    assert found == {
        "id": deposit["transaction"]["id"],
        "kind": "DEPOSIT",
        "amount": {"amount": "1.25", "currency": "EUR"},
    }


@pytest.mark.parametrize("bad", ["", "%%%", "QWNjb3VudA", to_global_id("Nothing", 1)])
async def test_malformed_ids_in_queries_are_bad_user_input(gql, bad):
    for document in (NODE, TRANSACTION, "query($id: ID!) { account(id: $id) { id } }"):
        body = await gql.request(document, id=bad)
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body


async def test_user_accounts_lists_the_owners_accounts(gql):
    a = await gql.open_account(name="A")
    query = """query($id: ID!) {
      node(id: $id) { ... on User { accounts { totalCount edges { node { id } } } } } }"""
    accounts = (await gql.data(query, id=a["owner"]["id"]))["node"]["accounts"]
    assert accounts["totalCount"] == 1 and accounts["edges"][0]["node"]["id"] == a["id"]
