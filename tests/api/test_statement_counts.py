"""How many round trips to the database each operation costs: counted, not timed.

Each is what the operation needs, and a change that adds one (a second look at a row
already locked, a connection check on every checkout, a separate read of what is in hand)
shows up here. BEGIN, COMMIT and ROLLBACK count as the statements they are.
"""

from collections import Counter

import pytest
from sqlalchemy import event

from domain.services import AccountService
from persistence.round_trips import count_round_trips

READ = "query($id: ID!) { account(id: $id) { id name balance { amount currency } } }"
STATEMENT_PAGE = """{ accounts(first: 20) { edges { node { id balance { amount }
  entries(first: 10) { edges { node { id amount { amount } balanceAfter { amount } } } } } } } }"""
TRANSFER = """mutation($input: TransferInput!) { transfer(input: $input) { __typename
  ... on MoneyMovement { transaction { id } sourceAccount { balance { amount } } } } }"""
DEPOSIT = """mutation($input: DepositInput!) { deposit(input: $input) { __typename
  ... on MoneyMovement { destinationAccount { balance { amount } } } } }"""


class RoundTrips:
    """Every statement the app's engine sends, and every transaction it begins and ends."""

    def __init__(self, engine) -> None:
        self.seen: Counter[str] = Counter()
        count_round_trips(engine, lambda kind, times: self.seen.update({kind: times}))
        pool = engine.sync_engine.pool
        event.listen(pool, "connect", lambda *_: self.seen.update(["new connection"]))

    async def of(self, operation) -> Counter[str]:
        self.seen.clear()
        await operation()
        return +self.seen


@pytest.fixture
async def trips(app):
    return RoundTrips(app.state.engine)


@pytest.fixture
async def two_accounts(gql):
    source = (await gql.open_account("Source", initial_deposit="100"))["id"]
    destination = (await gql.open_account("Destination"))["id"]
    await gql.transfer(source, destination, "1")  # every connection and statement warm
    return source, destination


async def test_a_signed_in_read_is_one_transaction_of_two_selects(gql, trips, two_accounts):
    source, _ = two_accounts
    await gql.data(READ, id=source)
    counted = await trips.of(lambda: gql.data(READ, id=source))
    # The viewer, the account; ended with COMMIT, which keeps the prepared statements.
    assert counted == Counter({"BEGIN": 1, "SELECT": 2, "COMMIT": 1})


async def test_a_read_that_looked_twice_would_be_counted(gql, trips, two_accounts, monkeypatch):
    source, _ = two_accounts
    account = AccountService.account

    async def read_twice(self, **arguments):
        await account(self, **arguments)
        return await account(self, **arguments)

    monkeypatch.setattr(AccountService, "account", read_twice)
    counted = await trips.of(lambda: gql.data(READ, id=source))
    assert counted["SELECT"] == 3


async def test_a_transfer_locks_writes_and_commits_without_reading_again(gql, trips, two_accounts):
    source, destination = two_accounts
    payload = {
        "sourceAccountId": source,
        "destinationAccountId": destination,
        "amount": {"amount": "1", "currency": "EUR"},
    }
    counted = await trips.of(lambda: gql.data(TRANSFER, input=payload))
    assert counted == Counter(
        {
            # The viewer's read.
            "BEGIN": 2,
            # The viewer; both accounts locked in one statement; then, in a statement of its
            # own so that it sees every hold committed before the lock was granted, what the
            # sender's pending holds reserve.
            "SELECT": 3,
            "INSERT": 2,  # the transaction, then its two entries in one statement
            "UPDATE": 2,  # each balance, once
            "COMMIT": 2,
        }
    )
    keyed = payload | {"idempotencyKey": "count-me"}
    counted = await trips.of(lambda: gql.data(TRANSFER, input=keyed))
    # And a look for an earlier request with the key: among movements, then among holds,
    # which share the key's namespace.
    assert counted["SELECT"] == 5
    replayed = await trips.of(lambda: gql.data(TRANSFER, input=keyed))
    assert "INSERT" not in replayed and "UPDATE" not in replayed


async def test_a_deposit_is_one_write_transaction(gql, trips, two_accounts):
    _, destination = two_accounts
    payload = {"accountId": destination, "amount": {"amount": "1", "currency": "EUR"}}
    counted = await trips.of(lambda: gql.data(DEPOSIT, input=payload))
    assert counted == Counter(
        # The viewer; the account locked; the funding account's id; the writes.
        {"BEGIN": 2, "SELECT": 3, "INSERT": 2, "UPDATE": 1, "COMMIT": 2}
    )


async def test_a_page_of_twenty_accounts_with_their_lines_costs_as_much_as_one(gql, trips):
    for number in range(20):
        account = (await gql.open_account(f"A{number}", initial_deposit="5"))["id"]
        await gql.deposit(account, "1")
    await gql.data(STATEMENT_PAGE)
    counted = await trips.of(lambda: gql.data(STATEMENT_PAGE))
    # The viewer, the page, its total, the accounts whose lines may be read, their lines.
    assert counted == Counter({"BEGIN": 1, "SELECT": 5, "COMMIT": 1})
    shown = (await gql.data(STATEMENT_PAGE))["accounts"]["edges"]
    assert len(shown) == 20 and all(len(e["node"]["entries"]["edges"]) == 2 for e in shown)


async def test_a_busy_pool_opens_no_new_connections(gql, trips, two_accounts):
    source, _ = two_accounts
    counted = Counter()
    for _ in range(20):
        counted += await trips.of(lambda: gql.data(READ, id=source))
    assert counted["new connection"] == 0
