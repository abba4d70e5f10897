"""EntryWatch: one read per account with news, handed to every stream of it; pushed news, a
safety look for lost news, resume after a line, and an end for a stream that falls behind."""

import asyncio
import logging

import pytest

from domain.errors import AccountNotFound, EntryNotFound, StreamFellBehind, StreamLimitReached
from domain.model import AccountId, Actor, Role, UserId
from domain.money import Currency, Money
from domain.services import (
    AccountService,
    EntryWatch,
    MovementService,
    SessionService,
    SessionWatch,
    UserService,
)
from domain.services import watch as watch_module
from tests.fakes import (
    FakeAccountRepository,
    FakePasswordHasher,
    FakeTransactionRepository,
    FakeUnitOfWorkFactory,
)

EUR = Currency.of("EUR")
ALICE = Actor(UserId(1), Role.CUSTOMER)
BOB = Actor(UserId(2), Role.CUSTOMER)


class Clock:
    """Stands in for asyncio.sleep: each tick lets the watch take exactly one look at all."""

    def __init__(self) -> None:
        self._ticks: asyncio.Queue[None] = asyncio.Queue()

    async def sleep(self, _seconds: float) -> None:
        await self._ticks.get()

    async def tick(self) -> None:
        await self._ticks.put(None)
        await settle()


async def settle() -> None:
    for _ in range(50):  # the fake storage answers without waiting on anything
        await asyncio.sleep(0)


class News:
    """Announcements as a test makes them: the watch listens, the test speaks."""

    def __init__(self) -> None:
        self.heard = None
        self.listening = asyncio.Event()

    async def listen(self, heard) -> None:
        self.heard = heard
        heard(None)
        self.listening.set()
        await asyncio.Event().wait()  # until cancelled


class Reader:
    """One stream, taking each line as soon as it comes."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.lines: list[int] = []
        self.error: BaseException | None = None
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for entry in self.stream:
                self.lines.append(entry.amount.minor_units)
        except Exception as error:
            self.error = error

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.stream.aclose()


def spy_on(monkeypatch, repository, name, asked) -> None:
    """Note in `asked` each call of that repository method, with what it reads."""
    method = getattr(repository, name)

    async def noted(self, *arguments):
        if any(arguments[0]):  # a question about nothing is not asked of storage
            asked.append(name)
        return await method(self, *arguments)

    monkeypatch.setattr(repository, name, noted)


@pytest.fixture
def uow():
    return FakeUnitOfWorkFactory()


def reads(uow) -> int:
    return sum(1 for made in uow.made if made.read_only)


async def account_of(uow, actor=ALICE, opening=1000):
    return await AccountService(uow).open_account(
        actor=actor, name="A", currency=EUR, initial_deposit=Money(opening, EUR)
    )


async def test_streams_of_one_account_share_one_read_of_each_news(uow):
    movements = MovementService(uow)
    a, b = await account_of(uow), await account_of(uow)
    clock = Clock()
    watch = EntryWatch(uow, 0.5, clock.sleep, batch=2)
    readers = [Reader(watch.lines(actor=ALICE, account_id=a.id)) for _ in range(3)]
    other = Reader(watch.lines(actor=ALICE, account_id=b.id))
    await settle()
    for amount in (1, 2, 3):  # more than one read's batch: the watch reads again at once
        await movements.deposit(actor=ALICE, account_id=a.id, amount=Money(amount, EUR))
    before = reads(uow)
    await clock.tick()
    # One look at both accounts, then two reads of a's three lines; none of b, which is quiet.
    assert reads(uow) - before == 3
    assert [r.lines for r in readers] == [[1, 2, 3]] * 3
    assert other.lines == []
    before = reads(uow)
    await clock.tick()
    assert reads(uow) - before == 1  # nothing new: the look alone
    for reader in [*readers, other]:
        await reader.close()
    await settle()
    before = reads(uow)
    await clock.tick()
    await clock.tick()
    assert reads(uow) == before  # with no stream left the watch stops looking


async def test_a_stream_starts_with_one_read_at_most(uow, monkeypatch):
    a = await account_of(uow)
    async with uow(read_only=True) as reading:
        [opening] = await reading.transactions.entries_after(a.id, None, 10)
    watch = EntryWatch(uow, 0.5, Clock().sleep)
    before = reads(uow)
    first = Reader(watch.lines(actor=ALICE, account_id=a.id))
    await settle()
    assert reads(uow) - before == 2  # its own start, and the watch's first look
    before = reads(uow)
    second = Reader(watch.lines(actor=ALICE, account_id=a.id))
    await settle()
    assert reads(uow) == before  # the second stream joins the first's reads
    asked: list[str] = []
    for name in ("get_many", "newest_entry_ids", "entry_accounts"):
        spy_on(
            monkeypatch,
            FakeAccountRepository if name == "get_many" else FakeTransactionRepository,
            name,
            asked,
        )
    resumed = Reader(watch.lines(actor=ALICE, account_id=a.id, after=opening.id))
    await settle()
    assert reads(uow) - before == 1  # it checks that the line is the account's
    assert asked == ["entry_accounts"]  # and only that: the account is known already
    assert first.lines == second.lines == resumed.lines == []  # the opening came first
    # Someone else may not join a watched account, nor resume on it.
    with pytest.raises(AccountNotFound):
        await anext(watch.lines(actor=BOB, account_id=a.id))
    with pytest.raises(AccountNotFound):
        await anext(watch.lines(actor=BOB, account_id=a.id, after=opening.id))
    for reader in (first, second, resumed):
        await reader.close()


async def test_streams_starting_together_share_one_start_up_read(uow):
    accounts = [await account_of(uow) for _ in range(10)]
    async with uow(read_only=True) as reading:
        openings = [(await reading.transactions.entries_after(a.id, None, 1))[0] for a in accounts]
    watch = EntryWatch(uow, 0.5, Clock().sleep)
    before = reads(uow)
    readers = [
        Reader(watch.lines(actor=ALICE, account_id=a.id, after=opening.id if n % 2 else None))
        for n, (a, opening) in enumerate(zip(accounts * 5, openings * 5, strict=True))
    ]
    await settle()
    assert reads(uow) - before == 2  # fifty streams' start, and the watch's first look
    assert all(reader.error is None and reader.lines == [] for reader in readers)
    for reader in readers:
        await reader.close()


async def test_streams_starting_within_a_moment_of_each_other_share_one_read(uow, monkeypatch):
    monkeypatch.setattr(watch_module, "START_GATHER_S", 0.2)
    a = await account_of(uow)
    b = await account_of(uow)
    watch = EntryWatch(uow, 60)
    before = reads(uow)
    first = asyncio.ensure_future(anext(watch.lines(actor=ALICE, account_id=a.id)))
    await asyncio.sleep(0.05)  # the first is waiting for company; the second comes
    second = asyncio.ensure_future(anext(watch.lines(actor=ALICE, account_id=b.id)))
    await asyncio.sleep(0.4)
    assert reads(uow) - before == 2  # both streams' start, and the watch's first look
    for waiting in (first, second):
        waiting.cancel()
    await asyncio.gather(first, second, return_exceptions=True)


async def test_pushed_news_is_read_at_once_and_lost_news_by_the_safety_look(uow):
    movements = MovementService(uow)
    a = await account_of(uow)
    clock, news = Clock(), News()
    watch = EntryWatch(uow, 5, clock.sleep, news=news)
    reader = Reader(watch.lines(actor=ALICE, account_id=a.id))
    await news.listening.wait()
    await settle()

    deposit = await movements.deposit(actor=ALICE, account_id=a.id, amount=Money(7, EUR))
    news.heard([a.id, AccountId(999)])  # with no tick of the clock
    await settle()
    assert reader.lines == [7]
    # An announcement lost on the way: the line waits for the safety look, and no longer.
    await movements.deposit(actor=ALICE, account_id=a.id, amount=Money(8, EUR))
    await settle()
    assert reader.lines == [7]
    await clock.tick()
    assert reader.lines == [7, 8]
    # Listening again after a loss looks at every account at once.
    await movements.deposit(actor=ALICE, account_id=a.id, amount=Money(9, EUR))
    news.heard(None)
    await settle()
    assert reader.lines == [7, 8, 9]
    assert deposit is not None
    await reader.close()


async def test_resume_sends_the_lines_after_the_given_one_then_live_each_once(uow):
    movements = MovementService(uow)
    a = await account_of(uow, opening=100)
    seen = []
    for amount in (1, 2, 3, 4, 5):
        seen.append(
            await movements.deposit(actor=ALICE, account_id=a.id, amount=Money(amount, EUR))
        )
    clock = Clock()
    watch = EntryWatch(uow, 0.5, clock.sleep, batch=2)
    # A stream already follows the account, so the resumed one joins its reads mid-way.
    live = Reader(watch.lines(actor=ALICE, account_id=a.id))
    await settle()
    async with uow(read_only=True) as reading:
        lines = await reading.transactions.entries_after(a.id, None, 100)
    after_two = next(e.id for e in lines if e.amount.minor_units == 2)

    # Lines commit while the resumed stream starts and catches up: before each of its reads.
    real_uow = watch._uow
    catching_up = [10, 11, 12]

    class CommittingFirst:
        def __init__(self, inner) -> None:
            self.inner = inner

        async def __aenter__(self):
            if catching_up:
                amount = Money(catching_up.pop(0), EUR)
                await movements.deposit(actor=ALICE, account_id=a.id, amount=amount)
            return await self.inner.__aenter__()

        async def __aexit__(self, *exc):
            await self.inner.__aexit__(*exc)

    def committing_between_reads(*, read_only=False):
        made = real_uow(read_only=read_only)
        return CommittingFirst(made) if read_only else made

    watch._uow = committing_between_reads
    resumed = Reader(watch.lines(actor=ALICE, account_id=a.id, after=after_two))
    await settle()
    await movements.deposit(actor=ALICE, account_id=a.id, amount=Money(13, EUR))
    for _ in range(4):
        await clock.tick()
    assert resumed.lines == [3, 4, 5, 10, 11, 12, 13]
    assert live.lines == [10, 11, 12, 13]
    await resumed.close()
    await live.close()


async def test_resume_after_a_line_of_another_account_looks_like_no_line(uow):
    a, b = await account_of(uow), await account_of(uow, actor=BOB)
    watch = EntryWatch(uow, 0.5, Clock().sleep)
    async with uow(read_only=True) as reading:
        [bobs_line] = await reading.transactions.entries_after(b.id, None, 10)
    with pytest.raises(EntryNotFound):
        await anext(watch.lines(actor=ALICE, account_id=a.id, after=bobs_line.id))
    with pytest.raises(AccountNotFound):
        await anext(watch.lines(actor=ALICE, account_id=b.id))
    with pytest.raises(AccountNotFound):
        await anext(watch.lines(actor=ALICE, account_id=AccountId(987654)))
    assert watch._accounts == {}  # a refused stream leaves nothing behind


async def steady_and_idle(uow):
    """An account with two streams on a watch that holds 3 lines a stream: one read as lines
    come, one whose first line is asked for (the future returned), then nothing more."""
    movements = MovementService(uow)
    a = await account_of(uow)
    clock = Clock()
    watch = EntryWatch(uow, 0.5, clock.sleep, queue_limit=3)
    steady = Reader(watch.lines(actor=ALICE, account_id=a.id))
    idle = watch.lines(actor=ALICE, account_id=a.id)
    first = asyncio.ensure_future(anext(idle))
    await settle()
    return movements, a, clock, steady, idle, first


async def test_a_stream_that_falls_behind_ends_and_the_others_get_everything(uow):
    movements, a, clock, steady, slow, first = await steady_and_idle(uow)
    for amount in range(1, 8):
        await movements.deposit(actor=ALICE, account_id=a.id, amount=Money(amount, EUR))
        await clock.tick()
    assert steady.lines == [1, 2, 3, 4, 5, 6, 7]
    assert (await first).amount.minor_units == 1
    # Three lines wait for it; the fourth was one too many, and it ends when it next reads.
    with pytest.raises(StreamFellBehind) as behind:
        await anext(slow)
    assert behind.value.limit == 3
    await movements.deposit(actor=ALICE, account_id=a.id, amount=Money(8, EUR))
    await clock.tick()
    assert steady.lines[-1] == 8 and steady.error is None
    await steady.close()


async def test_a_reader_that_keeps_up_is_not_ended_by_many_lines_in_one_read(uow):
    # More lines committed between two reads than the limit: handed all at once, before
    # any reader can take one. The limit is on what is left over from the read before.
    movements, a, clock, steady, idle, first = await steady_and_idle(uow)
    for amount in range(1, 8):
        await movements.deposit(actor=ALICE, account_id=a.id, amount=Money(amount, EUR))
    await clock.tick()
    assert steady.lines == [1, 2, 3, 4, 5, 6, 7] and steady.error is None
    assert (await first).amount.minor_units == 1
    # Six lines of that read still wait for the idle one when the next read comes.
    await movements.deposit(actor=ALICE, account_id=a.id, amount=Money(8, EUR))
    await clock.tick()
    assert steady.lines[-1] == 8 and steady.error is None
    with pytest.raises(StreamFellBehind):
        await anext(idle)
    await steady.close()


async def test_a_failed_look_is_logged_and_the_next_one_still_delivers(uow, caplog):
    movements = MovementService(uow)
    a = await account_of(uow)
    clock = Clock()
    watch = EntryWatch(uow, 0.5, clock.sleep)
    reader = Reader(watch.lines(actor=ALICE, account_id=a.id))
    await settle()
    real_uow = watch._uow
    failures = [RuntimeError("the database went away")]

    def flaky(*, read_only=False):
        if read_only and failures:
            raise failures.pop()
        return real_uow(read_only=read_only)

    watch._uow = flaky
    await movements.deposit(actor=ALICE, account_id=a.id, amount=Money(5, EUR))
    with caplog.at_level(logging.WARNING, logger="bankql.watch"):
        await clock.tick()
    assert reader.lines == []
    [logged] = [r for r in caplog.records if r.name == "bankql.watch"]
    assert "went away" in str(logged.exc_info[1])
    await clock.tick()  # the pause after the failure
    await clock.tick()
    assert reader.lines == [5]
    await reader.close()


async def test_a_read_that_hangs_is_given_up_and_made_again(uow, caplog):
    movements = MovementService(uow)
    a = await account_of(uow)
    clock = Clock()
    watch = EntryWatch(uow, 0.5, clock.sleep, read_timeout_s=0.05)
    reader = Reader(watch.lines(actor=ALICE, account_id=a.id))
    await settle()
    real_uow = watch._uow
    hangs = [True]

    class Hanging:
        async def __aenter__(self):
            await asyncio.Event().wait()  # never set

        async def __aexit__(self, *exc):
            return None

    def hanging_once(*, read_only=False):
        if read_only and hangs:
            hangs.pop()
            return Hanging()
        return real_uow(read_only=read_only)

    watch._uow = hanging_once
    await movements.deposit(actor=ALICE, account_id=a.id, amount=Money(5, EUR))
    with caplog.at_level(logging.WARNING, logger="bankql.watch"):
        await clock.tick()  # the look hangs until its deadline
        await asyncio.sleep(0.2)
    assert reader.lines == []
    [logged] = [r for r in caplog.records if r.name == "bankql.watch"]
    assert isinstance(logged.exc_info[1], TimeoutError)
    await clock.tick()  # the pause after the failure
    await clock.tick()
    assert reader.lines == [5]
    await reader.close()


async def test_the_subscriptions_a_connection_starts_at_once_share_one_viewer_lookup(uow):
    from datetime import timedelta

    from domain.services import UserService
    from gql.context import build_context
    from gql.server.auth import TokenCodec
    from tests.conftest import TEST_SECRET_KEY
    from tests.fakes import FakePasswordHasher

    user = await UserService(uow, FakePasswordHasher()).register(
        email="a@example.com", password="long enough password"
    )
    tokens = TokenCodec(TEST_SECRET_KEY, timedelta(hours=1))
    session = (await SessionService(uow).start(user, user_agent=None)).session
    connection = build_context(uow, tokens, tokens.verify(tokens.issue(user.id, session.id).token))
    before = reads(uow)

    async def subscription_viewer():
        async with connection.operation(subscription=True) as context:
            return await context.actor()

    viewers = await asyncio.gather(*(subscription_viewer() for _ in range(20)))
    assert reads(uow) - before == 1
    assert {viewer.user_id for viewer in viewers} == {user.id}
    # A query still looks the viewer up afresh.
    async with connection.operation(subscription=False) as context:
        await context.actor()
    assert reads(uow) - before == 2


async def test_a_process_runs_at_most_so_many_streams(uow):
    a = await account_of(uow)
    watch = EntryWatch(uow, 0.5, Clock().sleep, max_streams=2)
    first = Reader(watch.lines(actor=ALICE, account_id=a.id))
    second = Reader(watch.lines(actor=ALICE, account_id=a.id))
    await settle()
    with pytest.raises(StreamLimitReached) as refused:
        await anext(watch.lines(actor=ALICE, account_id=a.id))
    assert refused.value.limit == 2 and "(2)" in refused.value.message
    await first.close()
    third = Reader(watch.lines(actor=ALICE, account_id=a.id))
    await settle()
    assert third.error is None and watch.streams == 2
    await second.close()
    await third.close()
    assert watch.streams == 0 and watch._accounts == {}


def test_a_watch_serves_streams_on_a_later_event_loop_too():
    # One process runs one loop; a test client may run one per connection.
    uow = FakeUnitOfWorkFactory()
    watch = EntryWatch(uow, 0.01)

    async def one_line(amount: int) -> int:
        a = await account_of(uow)
        stream = watch.lines(actor=ALICE, account_id=a.id)
        first = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.05)
        await MovementService(uow).deposit(actor=ALICE, account_id=a.id, amount=Money(amount, EUR))
        line = await asyncio.wait_for(first, 5)
        await stream.aclose()
        return line.amount.minor_units

    assert asyncio.run(one_line(3)) == 3
    assert asyncio.run(one_line(4)) == 4


async def test_one_look_serves_every_stream_and_tells_only_those_whose_session_ended(uow):
    users, sessions = UserService(uow, FakePasswordHasher()), SessionService(uow)
    alice = await users.register(email="alice@example.com", password="correct horse 1")
    phone = (await sessions.start(alice, user_agent=None)).session
    laptop = (await sessions.start(alice, user_agent=None)).session
    actor = Actor(alice.id, Role.CUSTOMER)
    clock = Clock()
    watch = SessionWatch(sessions.live, 0.5, clock.sleep)
    async with (
        watch.watching(phone.id) as phone_stream,
        watch.watching(phone.id) as other_phone_stream,
        watch.watching(laptop.id) as laptop_stream,
    ):
        before = reads(uow)
        await clock.tick()
        assert reads(uow) == before + 1
        assert not phone_stream.is_set() and not laptop_stream.is_set()
        await sessions.end(actor=actor, session_id=phone.id)
        await clock.tick()
        assert reads(uow) == before + 2
        assert phone_stream.is_set() and other_phone_stream.is_set()
        assert not laptop_stream.is_set()
    # Nobody watches any more: no more looks.
    await clock.tick()
    assert reads(uow) == before + 2
