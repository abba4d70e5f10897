"""Who may see and move which money: someone else's things look like nothing at all."""

from sqlalchemy import text

from gql.schema.ids import from_global_id, to_global_id
from tests.api.graphql import ACCOUNT, ACCOUNTS, CLOSE, RENAME, STATEMENT

NODE = "query($id: ID!) { node(id: $id) { __typename id } }"
TRANSACTION = "query($id: ID!) { transaction(id: $id) { id } }"
USER_ACCOUNTS = """query($id: ID!) {
  node(id: $id) { ... on User { email accounts { totalCount edges { node { id } } } } } }"""


async def alices_things(gql):
    account = await gql.open_account(name="Alice's", initial_deposit="50")
    entry = (await gql.data(STATEMENT, id=account["id"]))["account"]["entries"]["edges"][0]["node"]
    return account, entry


async def test_someone_elses_things_read_as_if_they_did_not_exist(gql, bob):
    account, entry = await alices_things(gql)
    missing = to_global_id("Account", 987654)
    assert (await bob.data(ACCOUNT, id=account["id"]))["account"] is None
    assert (await bob.data(ACCOUNT, id=missing))["account"] is None
    for global_id in (
        account["id"],
        entry["id"],
        entry["transaction"]["id"],
        account["owner"]["id"],
    ):
        assert (await bob.data(NODE, id=global_id))["node"] is None, global_id
    assert (await bob.data(TRANSACTION, id=entry["transaction"]["id"]))["transaction"] is None
    assert (await bob.data(ACCOUNTS))["accounts"]["totalCount"] == 0


async def test_someone_elses_account_cannot_be_changed_and_answers_not_found(gql, bob):
    account, _ = await alices_things(gql)
    mine = await bob.open_account(name="Bob's", initial_deposit="5")
    missing = to_global_id("Account", 987654)
    for target in (account["id"], missing):
        renamed = (await bob.data(RENAME, input={"accountId": target, "name": "x"}))[
            "renameAccount"
        ]
        closed = (await bob.data(CLOSE, input={"accountId": target}))["closeAccount"]
        deposit = await bob.deposit(target, "1")
        withdrawal = await bob.withdraw(target, "1")
        transfer = await bob.transfer(target, mine["id"], "1")
        for result in (renamed, closed, deposit, withdrawal, transfer):
            assert result == {
                "__typename": "AccountNotFound",
                "message": "No such account.",
                "accountId": target,
            }
    after = (await gql.data(ACCOUNT, id=account["id"]))["account"]
    assert (after["name"], after["status"], after["balance"]["amount"]) == (
        "Alice's",
        "OPEN",
        "50.00",
    )
    assert await bob.balance(mine["id"]) == "5.00"


async def funding_keys(app) -> set[int]:
    async with app.state.engine.connect() as connection:
        rows = await connection.execute(text("SELECT id FROM accounts WHERE kind = 'FUNDING'"))
        return {row.id for row in rows}


async def test_transfers_to_accounts_the_sender_may_not_read_all_answer_as_a_missing_one(
    app, gql, bob
):
    mine = await gql.open_account(name="Mine", initial_deposit="100")
    closed = await bob.open_account(name="Closed")
    await bob.data(CLOSE, input={"accountId": closed["id"]})
    await bob.open_account(name="Dollars", currency="USD", initial_deposit="1")
    # 100.00 more than this is beyond 64 bits of cents (and the bank's EUR funding is at its floor).
    await bob.open_account(name="Full", initial_deposit="92233720368547658.08")
    # Walking every key, as someone mapping the bank would: Bob's accounts of every kind, the
    # bank's own funding accounts, and keys of no account at all.
    _, own_key = from_global_id(mine["id"])
    funding = await funding_keys(app)
    walked = [key for key in range(1, max(funding) + 4) if key != own_key]
    assert funding <= set(walked) and len(funding) == 2
    for amount, refusal in [("100", "AccountNotFound"), ("100.01", "InsufficientFunds")]:
        answers = []
        for key in walked:
            target = to_global_id("Account", key)
            answer = await gql.transfer(mine["id"], target, amount)
            if answer["__typename"] == "AccountNotFound":
                assert answer.pop("accountId") == target
            answers.append(answer)
            assert (await gql.data(ACCOUNT, id=target))["account"] is None
        assert {str(sorted(answer.items())) for answer in answers} == {
            str(sorted(answers[0].items()))
        }, answers
        assert answers[0]["__typename"] == refusal
    assert await gql.balance(mine["id"]) == "100.00"


async def test_a_transfer_may_credit_another_customer_who_then_sees_it(gql, bob):
    account, _ = await alices_things(gql)
    bobs = await bob.open_account(name="Bob's")
    sent = await gql.transfer(account["id"], bobs["id"], "20")
    assert sent["__typename"] == "MoneyMovement"
    assert sent["sourceAccount"]["balance"]["amount"] == "30.00"
    assert sent["destinationAccount"] is None
    statement = (await bob.data(STATEMENT, id=bobs["id"]))["account"]["entries"]["edges"]
    [line] = [edge["node"] for edge in statement]
    assert line["amount"]["amount"] == "20.00"
    assert line["transaction"]["id"] == sent["transaction"]["id"]
    found = await bob.data(TRANSACTION, id=sent["transaction"]["id"])
    assert found["transaction"] == {"id": sent["transaction"]["id"]}


async def test_a_customer_reads_only_their_own_user(gql, bob):
    account, _ = await alices_things(gql)
    alice_id = account["owner"]["id"]
    assert (await gql.data(USER_ACCOUNTS, id=alice_id))["node"]["accounts"]["totalCount"] == 1
    assert (await bob.data(USER_ACCOUNTS, id=alice_id))["node"] is None


async def test_an_administrator_reads_every_account_but_moves_none(gql, bob, admin):
    account, entry = await alices_things(gql)
    await bob.open_account(name="Bob's")
    listed = (await admin.data(ACCOUNTS))["accounts"]
    assert listed["totalCount"] == 2
    assert {e["node"]["name"] for e in listed["edges"]} == {"Alice's", "Bob's"}
    seen = (await admin.data(ACCOUNT, id=account["id"]))["account"]
    assert seen["owner"]["email"] == "alice@example.com"
    assert (await admin.data(NODE, id=entry["transaction"]["id"]))["node"]["__typename"] == (
        "Transaction"
    )
    users = (await admin.data(USER_ACCOUNTS, id=account["owner"]["id"]))["node"]
    assert users["accounts"]["totalCount"] == 1
    statement = (await admin.data(STATEMENT, id=account["id"]))["account"]["entries"]["edges"]
    assert len(statement) == 1
    withdrawal = await admin.withdraw(account["id"], "1")
    assert withdrawal["__typename"] == "AccountNotFound"
    assert await gql.balance(account["id"]) == "50.00"


async def test_the_viewer_lists_only_their_own_accounts(gql, bob):
    await alices_things(gql)
    await bob.open_account(name="Bob's")
    page = (await bob.data(ACCOUNTS))["accounts"]
    assert [e["node"]["name"] for e in page["edges"]] == ["Bob's"]
    assert page["totalCount"] == 1
