"""Sessions in the database: lapsing on the clock, and deleted some time after they end."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from domain.errors import InvalidRefreshToken
from domain.model import Actor, Role
from domain.ports import PageRequest
from domain.services import SessionService, UserService
from domain.services import sessions as sessions_module
from domain.services.sessions import RETENTION
from persistence.passwords import PasswordHashing
from persistence.tables import RetiredRefreshTokenRow, SessionRow

TTL = timedelta(days=30)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


async def count(engine, table) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(table))).scalar())


async def test_a_session_lapses_unless_refreshed_and_each_refresh_moves_it_on(uow_factory):
    clock = Clock()
    users = UserService(uow_factory, PasswordHashing(1, 64, 1))
    sessions = SessionService(uow_factory, TTL, clock)
    alice = await users.register(email="alice@example.com", password="correct horse battery")
    started = await sessions.start(alice, user_agent=None)
    clock.now += TTL - timedelta(seconds=1)
    renewed = await sessions.refresh(started.refresh_token)
    assert renewed.session.expires_at == clock.now + TTL
    clock.now += TTL
    try:
        await sessions.refresh(renewed.refresh_token)
    except InvalidRefreshToken:
        pass
    else:
        raise AssertionError("a lapsed refresh token was traded")
    actor = Actor(alice.id, Role.CUSTOMER)
    assert await sessions.session(actor=actor, session_id=started.session.id) is None


async def test_ended_and_lapsed_sessions_are_deleted_after_the_retention_period(
    uow_factory, engine
):
    clock = Clock()
    users = UserService(uow_factory, PasswordHashing(1, 64, 1))
    sessions = SessionService(uow_factory, TTL, clock)
    alice = await users.register(email="alice@example.com", password="correct horse battery")
    actor = Actor(alice.id, Role.CUSTOMER)
    lapsing = await sessions.start(alice, user_agent=None)
    clock.now += TTL  # it lapses now
    ended = await sessions.start(alice, user_agent=None)
    await sessions.refresh(ended.refresh_token)  # leaves a retired digest behind
    await sessions.end(actor=actor, session_id=ended.session.id)
    live = await sessions.start(alice, user_agent=None)
    assert await count(engine, SessionRow) == 3
    # Within the retention period, ended and lapsed sessions are kept.
    clock.now += RETENTION - timedelta(seconds=1)
    assert await sessions.prune() == 0
    # Past it, they go, with their retired digests; a live session stays.
    clock.now += timedelta(seconds=2)
    assert await sessions.prune() == 2
    async with engine.connect() as connection:
        kept = set((await connection.execute(select(SessionRow.id))).scalars())
    assert kept == {live.session.id}
    assert lapsing.session.id != live.session.id
    assert await count(engine, RetiredRefreshTokenRow) == 0


async def test_every_sign_in_deletes_the_sessions_past_their_retention(uow_factory, engine):
    clock = Clock()
    users = UserService(uow_factory, PasswordHashing(1, 64, 1))
    sessions = SessionService(uow_factory, TTL, clock)
    alice = await users.register(email="alice@example.com", password="correct horse battery")
    old = await sessions.start(alice, user_agent=None)
    await sessions.sign_out(
        actor=Actor(alice.id, Role.CUSTOMER), session_id=old.session.id, everywhere=False
    )
    clock.now += RETENTION + timedelta(seconds=1)
    new = await sessions.start(alice, user_agent=None)
    async with engine.connect() as connection:
        kept = set((await connection.execute(select(SessionRow.id))).scalars())
    assert kept == {new.session.id}


async def test_a_live_session_keeps_its_retired_digests_only_while_they_could_be_live(
    uow_factory, engine
):
    """A session refreshed for ever must not pile up digests for ever: a retired refresh
    token lapsed one TTL after it was issued at the latest, so its digest goes then."""
    clock = Clock()
    users = UserService(uow_factory, PasswordHashing(1, 64, 1))
    sessions = SessionService(uow_factory, TTL, clock)
    alice = await users.register(email="alice@example.com", password="correct horse battery")
    started = await sessions.start(alice, user_agent=None)
    tokens = [started.refresh_token]
    for _ in range(5):  # a refresh every ten days, for fifty days
        clock.now += timedelta(days=10)
        tokens.append((await sessions.refresh(tokens[-1])).refresh_token)
    # The first token was retired on day 10, more than a TTL ago: its digest is gone. The
    # other four, retired on days 20 to 50, are kept.
    assert await count(engine, RetiredRefreshTokenRow) == 4
    # A digest still kept is still recognised as reuse, and ends the session.
    try:
        await sessions.refresh(tokens[2])  # retired on day 30
    except InvalidRefreshToken:
        pass
    else:
        raise AssertionError("a reused refresh token was traded")
    actor = Actor(alice.id, Role.CUSTOMER)
    assert await sessions.session(actor=actor, session_id=started.session.id) is None


async def test_a_new_session_past_the_most_a_user_may_have_ends_their_oldest(
    uow_factory, monkeypatch
):
    """Signing in over and over must not pile up live sessions without bound: each would
    have to be listed, and ended at once by a password change or a sign-out everywhere."""
    monkeypatch.setattr(sessions_module, "MAX_LIVE_SESSIONS", 3)
    users = UserService(uow_factory, PasswordHashing(1, 64, 1))
    sessions = SessionService(uow_factory, TTL)
    alice = await users.register(email="alice@example.com", password="correct horse battery")
    bob = await users.register(email="bob@example.com", password="correct horse battery")
    bobs = await sessions.start(bob, user_agent=None)
    started = [await sessions.start(alice, user_agent=None) for _ in range(3)]
    signed_in = await users.sign_in(email="alice@example.com", password="correct horse battery")
    started.append(signed_in)
    actor = Actor(alice.id, Role.CUSTOMER)
    live = await sessions.sessions(actor=actor, user_id=alice.id, page=PageRequest(10))
    assert [s.id for s in live.items] == [s.session.id for s in reversed(started[1:])]
    try:
        await sessions.refresh(started[0].refresh_token)
    except InvalidRefreshToken:
        pass
    else:
        raise AssertionError("the oldest session lived on past the most a user may have")
    # Nobody else's sessions are touched.
    assert (await sessions.refresh(bobs.refresh_token)).session.id == bobs.session.id


async def test_a_sign_in_deletes_one_batch_of_dead_sessions_and_prune_deletes_them_all(
    uow_factory, engine, monkeypatch
):
    monkeypatch.setattr(sessions_module, "PRUNE_BATCH", 2)
    clock = Clock()
    users = UserService(uow_factory, PasswordHashing(1, 64, 1))
    sessions = SessionService(uow_factory, TTL, clock)
    alice = await users.register(email="alice@example.com", password="correct horse battery")
    for _ in range(5):
        await sessions.start(alice, user_agent=None)
    clock.now += TTL + RETENTION + timedelta(seconds=1)  # all five long dead
    await sessions.start(alice, user_agent=None)
    # The sign-in cleared one batch on its way, not every dead session at once.
    assert await count(engine, SessionRow) == 5 - 2 + 1
    assert await sessions.prune() == 3
    assert await count(engine, SessionRow) == 1
