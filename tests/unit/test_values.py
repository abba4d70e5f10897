import pytest

from domain import values
from domain.errors import InvalidValue


def test_names_are_trimmed():
    assert values.account_name("  Savings  ") == "Savings"


def test_names_count_code_points_not_bytes():
    assert values.account_name("é" * 100) == "é" * 100
    assert values.account_name("🏦" * 100) == "🏦" * 100
    with pytest.raises(InvalidValue):
        values.account_name("🏦" * 101)


@pytest.mark.parametrize("name", ["", "   ", "a\x00b", "tab\there", "new\nline", "x" * 101])
def test_bad_names_are_refused(name):
    with pytest.raises(InvalidValue):
        values.account_name(name)


def test_a_blank_description_means_none():
    assert values.description("   ") is None
    assert values.description(None) is None
    assert values.description(" rent ") == "rent"


def test_descriptions_have_a_limit_and_no_control_characters():
    with pytest.raises(InvalidValue):
        values.description("x" * 501)
    with pytest.raises(InvalidValue):
        values.description("a\x07b")


@pytest.mark.parametrize("key", ["", "k" * 256, "a\nb"])
def test_bad_idempotency_keys_are_refused(key):
    with pytest.raises(InvalidValue):
        values.idempotency_key(key)


def test_idempotency_keys_are_kept_as_sent():
    assert values.idempotency_key(" k ") == " k "
    assert values.idempotency_key("k" * 255) == "k" * 255
