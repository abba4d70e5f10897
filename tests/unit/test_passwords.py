from persistence.passwords import PasswordHashing

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
