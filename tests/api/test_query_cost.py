"""Nested reads cost a fixed number of SQL statements, however many objects they return."""

from contextlib import contextmanager

from sqlalchemy import event

ACCOUNTS_WITH_STATEMENTS = """{
  accounts(first: 100) {
    totalCount
    edges { node {
      id name owner { email }
      entries(first: 10) { edges { node { amount { amount } transaction { kind } } } }
    } }
  }
}"""
STATEMENT = """query($id: ID!) {
  account(id: $id) {
    owner { email }
    entries(first: 100) {
      edges { node {
        amount { amount } balanceAfter { amount } transaction { id kind amount { amount } }
      } }
    }
  }
}"""

OWNERS_WITH_THEIR_ACCOUNTS = """{
  accounts(first: 100) {
    edges { node {
      owner { email accounts(first: 2) {
        totalCount edges { node { id entries(first: 2) { edges { node { amount { amount } } } } } }
      } }
    } }
  }
}"""


@contextmanager
def counted(engine):
    statements = []

    def record(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def open_accounts(gql, count):
    for number in range(count):
        account = await gql.open_account(name=f"A{number}", initial_deposit="10")
        await gql.withdraw(account["id"], "1")


async def test_listing_accounts_with_owner_and_entries_costs_the_same_for_10_and_100(gql, app):
    await open_accounts(gql, 10)
    with counted(app.state.engine) as for_ten:
        ten = (await gql.data(ACCOUNTS_WITH_STATEMENTS))["accounts"]
    await open_accounts(gql, 90)
    with counted(app.state.engine) as for_hundred:
        hundred = (await gql.data(ACCOUNTS_WITH_STATEMENTS))["accounts"]
    assert len(ten["edges"]) == 10 and len(hundred["edges"]) == 100
    assert all(len(edge["node"]["entries"]["edges"]) == 2 for edge in hundred["edges"])
    assert len(for_ten) == len(for_hundred), (for_ten, for_hundred)


async def test_a_statement_page_with_its_transactions_costs_the_same_for_10_and_100(gql, app):
    account = await gql.open_account(initial_deposit="1000")
    for _ in range(9):
        await gql.withdraw(account["id"], "1")
    with counted(app.state.engine) as for_ten:
        ten = (await gql.data(STATEMENT, id=account["id"]))["account"]["entries"]["edges"]
    for _ in range(90):
        await gql.withdraw(account["id"], "1")
    with counted(app.state.engine) as for_hundred:
        hundred = (await gql.data(STATEMENT, id=account["id"]))["account"]["entries"]["edges"]
    assert (len(ten), len(hundred)) == (10, 100)
    assert len(for_ten) == len(for_hundred), (for_ten, for_hundred)


async def open_customers(anonymous, numbers):
    for number in numbers:
        customer = await anonymous.signed_up(f"customer{number}@example.com")
        await customer.open_account(initial_deposit="10")


async def test_owners_with_their_accounts_cost_the_same_for_10_and_100_users(admin, anonymous, app):
    await open_customers(anonymous, range(10))
    with counted(app.state.engine) as for_ten:
        ten = (await admin.data(OWNERS_WITH_THEIR_ACCOUNTS))["accounts"]["edges"]
    await open_customers(anonymous, range(10, 100))
    with counted(app.state.engine) as for_hundred:
        hundred = (await admin.data(OWNERS_WITH_THEIR_ACCOUNTS))["accounts"]["edges"]
    assert (len(ten), len(hundred)) == (10, 100)
    owned = [edge["node"]["owner"]["accounts"] for edge in hundred]
    assert all(accounts["totalCount"] == 1 for accounts in owned)
    assert all(len(accounts["edges"][0]["node"]["entries"]["edges"]) == 1 for accounts in owned)
    assert len({edge["node"]["owner"]["email"] for edge in hundred}) == 100
    assert len(for_ten) == len(for_hundred), (for_ten, for_hundred)
