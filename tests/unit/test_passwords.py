import asyncio
import os
import sys
import threading

import pytest

from domain.errors import HashingBusy
from persistence.passwords import HASHING_NICENESS, PasswordHashing

CHEAP = PasswordHashing(time_cost=1, memory_cost_kib=64, parallelism=1)


async def test_a_password_verifies_against_its_own_argon2id_hash_only():
    stored = await CHEAP.hash("correct horse battery")
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert await CHEAP.verify(stored, "correct horse battery")
    assert not await CHEAP.verify(stored, "correct horse batterY")


async def test_a_user_without_a_hash_never_signs_in_and_a_broken_hash_is_a_refusal():
    assert not await CHEAP.verify(None, "not the password of anyone")
    assert not await CHEAP.verify("not a hash", "anything")


async def test_hashes_are_salted():
    assert await CHEAP.hash("same password") != await CHEAP.hash("same password")


async def test_a_turn_past_the_bound_is_refused_after_the_wait():
    hashing = PasswordHashing(1, 64, 1, max_concurrent=2, wait_s=0)
    async with hashing.turn(), hashing.turn():
        with pytest.raises(HashingBusy) as busy:
            async with hashing.turn():
                pass
    assert busy.value.retry_after_s == 1
    async with hashing.turn():  # both given back
        assert await hashing.verify(await hashing.hash("x" * 12), "x" * 12)


async def test_a_waiting_caller_gets_the_next_free_turn():
    hashing = PasswordHashing(1, 64, 1, max_concurrent=1, wait_s=30)
    order = []

    async def second() -> None:
        async with hashing.turn():
            order.append("second")

    async with hashing.turn():
        waiting = asyncio.create_task(second())
        await asyncio.sleep(0)
        order.append("first")
    await waiting
    assert order == ["first", "second"]


@pytest.mark.skipif(sys.platform != "linux", reason="only Linux sets priorities per thread")
async def test_hashes_run_at_a_lower_priority_than_the_event_loop():
    def priority() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    hashing = PasswordHashing(1, 64, 1)
    assert await hashing._run(priority) == min(priority() + HASHING_NICENESS, 19)
