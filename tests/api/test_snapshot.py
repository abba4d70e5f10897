"""One request reads one snapshot: a balance and its statement never disagree."""

import asyncio

BALANCE_AND_NEWEST_LINE = """query($id: ID!) { account(id: $id) { balance { amount }
  entries(first: 1) { edges { node { balanceAfter { amount } } } } } }"""


async def test_a_balance_and_its_newest_line_agree_while_money_moves(gql):
    account = (await gql.open_account(initial_deposit="1"))["id"]
    stop = asyncio.Event()

    async def keep_depositing():
        while not stop.is_set():
            await gql.deposit(account, "1")

    async def read(times: int) -> list[tuple[str, str]]:
        seen = []
        for _ in range(times):
            shown = (await gql.data(BALANCE_AND_NEWEST_LINE, id=account))["account"]
            newest = shown["entries"]["edges"][0]["node"]["balanceAfter"]["amount"]
            seen.append((shown["balance"]["amount"], newest))
        return seen

    depositing = [asyncio.create_task(keep_depositing()) for _ in range(2)]
    try:
        readings = [
            pair for batch in await asyncio.gather(*(read(40) for _ in range(4))) for pair in batch
        ]
    finally:
        stop.set()
        await asyncio.gather(*depositing)
    assert len({balance for balance, _ in readings}) > 5, "money should move during the reads"
    disagreements = [pair for pair in readings if pair[0] != pair[1]]
    assert disagreements == []
