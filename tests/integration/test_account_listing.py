"""Several owners' accounts in one query: each owner's own page, cursor and status honoured."""

from domain.model import AccountStatus, Actor, Role, UserId
from domain.money import Currency
from domain.ports import PageRequest
from domain.services import AccountService, UserService
from tests.fakes import FakePasswordHasher

EUR = Currency.of("EUR")


async def owner_with_accounts(uow_factory, email, count):
    user = await UserService(uow_factory, FakePasswordHasher()).register(
        email=email, password="long enough password"
    )
    actor = Actor(user.id, user.role)
    service = AccountService(uow_factory)
    opened = [
        await service.open_account(actor=actor, name=f"A{n}", currency=EUR) for n in range(count)
    ]
    return user.id, opened


async def test_each_owner_gets_their_own_page_of_accounts_oldest_first(uow_factory):
    alice, alices = await owner_with_accounts(uow_factory, "alice@example.com", 3)
    bob, bobs = await owner_with_accounts(uow_factory, "bob@example.com", 1)
    nobody = UserId(alice + bob + 1000)
    async with uow_factory(read_only=True) as uow:
        pages = await uow.accounts.list_by_owners(
            [alice, bob, nobody], status=None, page=PageRequest(2)
        )
        after = await uow.accounts.list_by_owners(
            [alice], status=None, page=PageRequest(5, alices[0].id)
        )
        totals = await uow.accounts.count_by_owners([alice, bob, nobody], status=None)
    # One more than the page, so that the service can tell there is a next page.
    assert [a.id for a in pages[alice]] == [a.id for a in alices]
    assert [a.id for a in pages[bob]] == [bobs[0].id] and pages[nobody] == []
    assert [a.id for a in after[alice]] == [alices[1].id, alices[2].id]
    assert totals.get(alice) == 3 and totals.get(bob) == 1 and totals.get(nobody, 0) == 0


async def test_listing_by_owners_filters_by_status(uow_factory):
    alice, alices = await owner_with_accounts(uow_factory, "alice@example.com", 2)
    actor = Actor(alice, Role.CUSTOMER)
    await AccountService(uow_factory).close_account(actor=actor, account_id=alices[0].id)
    async with uow_factory(read_only=True) as uow:
        closed = await uow.accounts.list_by_owners(
            [alice], status=AccountStatus.CLOSED, page=PageRequest(10)
        )
        totals = await uow.accounts.count_by_owners([alice], status=AccountStatus.OPEN)
    assert [a.id for a in closed[alice]] == [alices[0].id] and totals == {alice: 1}
