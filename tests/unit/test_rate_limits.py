"""Token buckets, connection counts and sign-in delays, on a clock the test moves."""

from datetime import UTC, datetime, timedelta

import pytest

from domain.model import UserId
from domain.throttle import SignInFailures, SignInThrottle
from gql.schema.top_level_errors import RateLimited, retry_after_seconds
from gql.server.rate_limits import ConnectionLimits, RateLimiter, RequestLimits, retry_after_of
from gql.server.settings import Settings

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_lets_a_burst_through_then_one_request_per_refill():
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.take("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.take("a") == 0
    assert limiter.take("a") == pytest.approx(0.5)
    clock.now += 60  # a long pause refills up to the burst, never beyond it
    assert [limiter.take("a") for _ in range(4)][-1] == pytest.approx(0.5)


def test_each_key_has_its_own_bucket():
    limiter = RateLimiter(rate=1, burst=1, clock=Clock())
    assert limiter.take("a") == 0
    assert limiter.take("a") > 0
    assert limiter.take("b") == 0


def test_the_buckets_kept_are_bounded_and_the_least_recent_go_first():
    clock = Clock()
    limiter = RateLimiter(rate=1, burst=1, max_keys=3, clock=clock)
    for key in ["a", "b", "c"]:
        limiter.take(key)
    limiter.take("a")  # seen again: now the most recent
    for n in range(100):
        limiter.take(f"sprayed-{n}")
        assert len(limiter) <= 3
    limiter = RateLimiter(rate=1, burst=1, max_keys=3, clock=clock)
    for key in ["a", "b", "c", "a", "d"]:
        limiter.take(key)
    # "b" was the least recently seen, so it went; "a" kept its empty bucket.
    assert limiter.take("a") > 0
    assert limiter.take("b") == 0


def test_a_charge_is_owed_by_the_bucket_and_the_next_requests_wait_it_off():
    clock = Clock()
    limiter = RateLimiter(rate=10, burst=20, clock=clock)
    assert limiter.take("a") == 0  # 19 left
    limiter.charge("a", 24)  # owes 5
    assert limiter.take("a") == pytest.approx(0.6)
    clock.now += 0.6
    assert limiter.take("a") == 0
    # However large the charge, the debt stops at a whole burst: a wait of 2.1 s here.
    limiter.charge("a", 10_000)
    assert limiter.take("a") == pytest.approx(2.1)
    limiter.charge("unseen", 5)  # a key without a bucket owes nothing
    assert limiter.take("unseen") == 0


def test_signed_in_users_and_anonymous_addresses_draw_on_separate_limits():
    clock = Clock()
    limits = RequestLimits(
        RateLimiter(rate=1, burst=2, clock=clock), RateLimiter(rate=1, burst=1, clock=clock)
    )
    assert limits.refusal(None, "10.0.0.1") is None
    refusal = limits.refusal(None, "10.0.0.1")
    assert isinstance(refusal, RateLimited)
    assert refusal.extensions == {"code": "RATE_LIMITED", "retryAfter": 1}
    # The same address signed in counts against the user, not the address.
    assert limits.refusal(UserId(7), "10.0.0.1") is None
    assert limits.refusal(UserId(7), "10.0.0.1") is None
    assert limits.refusal(UserId(7), "10.0.0.1") is not None
    assert limits.refusal(UserId(8), "10.0.0.1") is None


@pytest.mark.parametrize(("wait", "seconds"), [(0.001, 1), (1.0, 1), (1.2, 2), (59.5, 60)])
def test_retry_after_is_whole_seconds_rounded_up(wait, seconds):
    assert retry_after_seconds(wait) == seconds
    assert RateLimited("slow down", wait).extensions["retryAfter"] == seconds


def test_a_results_retry_after_is_its_longest_rate_limited_wait():
    assert retry_after_of(None) is None
    errors = [RateLimited("a", 3), RateLimited("b", 7.5)]
    assert retry_after_of(errors) == 8


def test_connections_are_counted_per_user_and_per_process():
    limits = ConnectionLimits(per_user=2, per_process=3)
    first, second, third = object(), object(), object()
    assert limits.admit(UserId(1), "10.0.0.1", first) and limits.admit(UserId(1), None, second)
    assert not limits.admit(UserId(1), "10.0.0.2", third)
    assert limits.admit(UserId(2), "10.0.0.1", third)
    limits.release(first)
    limits.release(first)  # twice is once
    assert limits.admit(UserId(1), None, object())
    assert [limits.enter() for _ in range(4)] == [True, True, True, False]
    limits.leave()
    assert limits.enter()


def test_connections_without_a_sign_in_are_counted_per_address():
    """Else one client could hold every connection of the process without signing in.
    Holders are known by their identity, as connections are, so each one is kept alive."""
    limits = ConnectionLimits(per_user=2, per_process=100)
    holders = [object() for _ in range(10)]
    first, second, third, fourth, fifth, opening, other, more, last, after = holders
    assert limits.admit(None, "10.0.0.1", first) and limits.admit(None, "10.0.0.1", second)
    assert not limits.admit(None, "10.0.0.1", third)
    # Another address, and a signed-in user from the same one, have their own counts.
    assert limits.admit(None, "10.0.0.2", third)
    assert limits.admit(UserId(1), "10.0.0.1", fourth)
    limits.release(first)
    assert limits.admit(None, "10.0.0.1", fifth)
    # Connections still opening (no connection_init yet) have a count of their own.
    assert limits.admit(None, "10.0.0.1", opening, opening=True)
    assert limits.admit(None, "10.0.0.1", other, opening=True)
    assert not limits.admit(None, "10.0.0.1", more, opening=True)
    assert not limits.admit(None, "10.0.0.1", opening)  # as itself: its address has two
    assert limits.admit(None, "10.0.0.1", last, opening=True)
    assert not limits.admit(None, "10.0.0.1", after, opening=True)


def test_sign_in_delays_start_after_the_free_failures_double_and_stop_at_the_cap():
    throttle = SignInThrottle(free_failures=3, max_delay=timedelta(seconds=60))
    delays = [throttle.delay(failures).total_seconds() for failures in range(12)]
    assert delays == [0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert throttle.delay(10_000) == timedelta(seconds=60)


def test_the_wait_counts_from_the_last_failure():
    throttle = SignInThrottle(free_failures=5)
    assert throttle.wait(SignInFailures("a@example.com", 0, None), T0) == timedelta(0)
    assert throttle.wait(SignInFailures("a@example.com", 5, T0), T0) == timedelta(seconds=1)
    seven = SignInFailures("a@example.com", 7, T0)
    assert throttle.wait(seven, T0 + timedelta(seconds=1)) == timedelta(seconds=3)
    assert throttle.wait(seven, T0 + timedelta(seconds=4)) == timedelta(0)
    assert throttle.max_delay < throttle.forget_after


def attempts_in_an_hour(throttle: SignInThrottle) -> int:
    """An attacker trying one address again the moment each wait ends, for an hour."""
    now, failures, attempts = T0, SignInFailures("victim@example.com", 0, None), 0
    while now < T0 + timedelta(hours=1):
        now += throttle.wait(failures, now)
        if now >= T0 + timedelta(hours=1):
            break
        attempts += 1
        failures = SignInFailures(failures.email, failures.count + 1, now)
    return attempts


def test_no_setting_allowed_lets_an_address_be_tried_100_times_an_hour():
    assert attempts_in_an_hour(SignInThrottle()) < 100
    fields = Settings.model_fields
    loosest = SignInThrottle(
        free_failures=fields["sign_in_free_failures"].metadata[1].le,
        max_delay=timedelta(seconds=fields["sign_in_max_delay_seconds"].metadata[0].ge),
    )
    assert loosest.free_failures == 10 and loosest.max_delay == timedelta(seconds=60)
    assert attempts_in_an_hour(loosest) < 100
    # The bound is what keeps it so: a shorter cap would let a guesser through.
    assert attempts_in_an_hour(SignInThrottle(max_delay=timedelta(seconds=30))) > 100
