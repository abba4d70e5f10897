import pytest

from domain.errors import AmountOutOfRange, CurrencyMismatch, InvalidValue
from domain.money import MAX_MINOR_UNITS, Currency, Money

EUR, JPY, BHD = Currency.of("EUR"), Currency.of("JPY"), Currency.of("BHD")


@pytest.mark.parametrize(
    ("text", "currency", "minor_units", "shown"),
    [
        ("10.5", EUR, 1050, "10.50"),
        ("12", EUR, 1200, "12.00"),
        ("12.50", EUR, 1250, "12.50"),
        ("0.01", EUR, 1, "0.01"),
        ("-3.5", EUR, -350, "-3.50"),
        ("1200", JPY, 1200, "1200"),
        ("1.234", BHD, 1234, "1.234"),
        ("007", EUR, 700, "7.00"),
    ],
)
def test_plain_decimals_are_read_exactly_and_shown_with_the_currency_digits(
    text, currency, minor_units, shown
):
    money = Money.parse(text, currency)
    assert money.minor_units == minor_units
    assert money.to_decimal_string() == shown


@pytest.mark.parametrize(
    "text",
    [
        "1E+2",
        "1e2",
        "1_000",
        " 1",
        "1 ",
        "+1",
        "NaN",
        "Infinity",
        "",
        ".5",
        "5.",
        "1.2.3",
        "٣",
        "0x10",
        "--1",
        "1,5",
    ],
)
def test_anything_but_a_plain_decimal_is_refused(text):
    with pytest.raises(InvalidValue):
        Money.parse(text, EUR)


def test_a_fraction_longer_than_the_currency_allows_is_refused_even_in_zeros():
    with pytest.raises(InvalidValue, match="at most 2 decimal places"):
        Money.parse("10.500", EUR)
    with pytest.raises(InvalidValue, match="at most 0 decimal places"):
        Money.parse("1.5", JPY)


def test_amounts_beyond_64_bits_of_minor_units_are_out_of_range():
    assert Money.parse("92233720368547758.07", EUR).minor_units == MAX_MINOR_UNITS
    with pytest.raises(AmountOutOfRange):
        Money.parse("92233720368547758.08", EUR)
    with pytest.raises(AmountOutOfRange):
        Money.parse("9" * 100, EUR)


def test_arithmetic_that_overflows_64_bits_raises_instead_of_growing():
    top = Money(MAX_MINOR_UNITS, EUR)
    with pytest.raises(AmountOutOfRange):
        _ = top + Money(1, EUR)
    with pytest.raises(AmountOutOfRange):
        _ = -top - Money(2, EUR)


def test_money_never_mixes_currencies():
    with pytest.raises(CurrencyMismatch):
        _ = Money(1, EUR) + Money(1, JPY)


def test_money_refuses_floats():
    with pytest.raises(TypeError):
        Money(1.5, EUR)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(True, EUR)


@pytest.mark.parametrize("code", ["eur", "Eur", "EUR"])
def test_currency_codes_are_accepted_in_any_case_and_kept_upper_case(code):
    assert Currency.of(code) == EUR
    assert str(Currency.of(code)) == "EUR"


@pytest.mark.parametrize("code", ["ZZZ", "EURO", "E1R", "", "XAU", "XXX", "€"])
def test_unknown_or_unitless_currency_codes_are_refused(code):
    with pytest.raises(InvalidValue):
        Currency.of(code)


def test_minor_digits_come_from_the_iso_4217_table():
    assert (EUR.minor_digits, JPY.minor_digits, BHD.minor_digits) == (2, 0, 3)
