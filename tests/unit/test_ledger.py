from datetime import UTC, datetime

import pytest

from domain.errors import (
    AccountClosed,
    AccountNotEmpty,
    BalanceOverLimit,
    CurrencyMismatch,
    InsufficientFunds,
    LedgerInvariantBroken,
    MovementOverLimit,
)
from domain.ledger import NewEntry, NewTransaction, TransactionKind, move, request_hash
from domain.limits import MoneyLimits
from domain.model import Account, AccountId, AccountStatus, FundingAccount, UserId
from domain.money import MAX_MINOR_UNITS, Currency, Money

EUR, USD, JPY = Currency.of("EUR"), Currency.of("USD"), Currency.of("JPY")
NO_LIMITS = MoneyLimits()


def account(id_, minor_units=0, currency=EUR, status=AccountStatus.OPEN):
    return Account(
        AccountId(id_),
        UserId(1),
        f"a{id_}",
        Money(minor_units, currency),
        status,
        datetime(2026, 1, 1, tzinfo=UTC),
    )


def transfer(debit, credit, minor_units, currency=EUR, limits=NO_LIMITS):
    return move(
        TransactionKind.TRANSFER,
        debit=debit,
        credit=credit,
        amount=Money(minor_units, currency),
        actor_id=UserId(1),
        description=None,
        idempotency=None,
        limits=limits,
    )


def with_funding(kind, customer, funding, minor_units, limits=NO_LIMITS):
    debit, credit = (funding, customer) if kind is TransactionKind.DEPOSIT else (customer, funding)
    return move(
        kind,
        debit=debit,
        credit=credit,
        amount=Money(minor_units, customer.currency),
        actor_id=UserId(1),
        description=None,
        idempotency=None,
        limits=limits,
    )


def test_a_transfer_writes_two_entries_that_sum_to_zero_with_balances_after():
    source, destination = account(1, 1000), account(2, 50)
    new = transfer(source, destination, 300)
    assert [
        (e.account_id, e.amount.minor_units, e.balance_after.minor_units) for e in new.entries
    ] == [
        (1, -300, 700),
        (2, 300, 350),
    ]
    assert (source.balance.minor_units, destination.balance.minor_units) == (700, 350)


def test_a_customer_account_cannot_be_overdrawn_and_nothing_changes():
    source, destination = account(1, 100), account(2, 0)
    with pytest.raises(InsufficientFunds) as caught:
        transfer(source, destination, 101)
    assert caught.value.available == Money(100, EUR)
    assert caught.value.requested == Money(101, EUR)
    assert (source.balance.minor_units, destination.balance.minor_units) == (100, 0)


def test_a_deposit_balances_against_funding_which_records_no_balance_after():
    funding, customer = FundingAccount(AccountId(1), EUR), account(2, 100)
    new = with_funding(TransactionKind.DEPOSIT, customer, funding, 500)
    assert [(e.account_id, e.amount, e.balance_after) for e in new.entries] == [
        (1, Money(-500, EUR), None),
        (2, Money(500, EUR), Money(600, EUR)),
    ]
    assert customer.balance == Money(600, EUR)
    assert (new.source_account_id, new.destination_account_id) == (None, 2)


def test_a_withdrawal_credits_funding_and_cannot_overdraw_the_customer():
    funding, customer = FundingAccount(AccountId(1), EUR), account(2, 100)
    new = with_funding(TransactionKind.WITHDRAWAL, customer, funding, 100)
    assert [(e.account_id, e.amount.minor_units) for e in new.entries] == [(2, -100), (1, 100)]
    assert (new.source_account_id, new.destination_account_id) == (2, None)
    with pytest.raises(InsufficientFunds):
        with_funding(TransactionKind.WITHDRAWAL, customer, funding, 1)


def test_funding_has_no_bound_that_one_customer_could_use_up_for_others():
    # Under a funding balance of 64 bits, the second full account would have been refused.
    funding = FundingAccount(AccountId(1), EUR)
    full = [account(key) for key in range(2, 6)]
    for customer in full:
        with_funding(TransactionKind.DEPOSIT, customer, funding, MAX_MINOR_UNITS)
    assert all(customer.balance.minor_units == MAX_MINOR_UNITS for customer in full)
    late = account(6)
    new = with_funding(TransactionKind.DEPOSIT, late, funding, 1)
    assert late.balance == Money(1, EUR)
    assert new.entries[0].balance_after is None


def test_funding_in_another_currency_is_a_currency_mismatch():
    with pytest.raises(CurrencyMismatch):
        with_funding(TransactionKind.DEPOSIT, account(2), FundingAccount(AccountId(1), USD), 5)


def test_a_movement_must_be_made_on_a_customer_account():
    funding = FundingAccount(AccountId(1), EUR)
    with pytest.raises(LedgerInvariantBroken):
        move(
            TransactionKind.TRANSFER,
            debit=funding,
            credit=account(2),
            amount=Money(5, EUR),
            actor_id=UserId(1),
            description=None,
            idempotency=None,
            limits=NO_LIMITS,
        )


def test_closed_accounts_take_no_movement():
    with pytest.raises(AccountClosed):
        transfer(account(1, 100), account(2, status=AccountStatus.CLOSED), 10)


def test_closed_comes_before_currency_which_comes_before_funds():
    closed_usd = account(2, 0, USD, status=AccountStatus.CLOSED)
    with pytest.raises(AccountClosed):
        transfer(account(1, 0), closed_usd, 10, USD)
    with pytest.raises(CurrencyMismatch) as caught:
        transfer(account(1, 0), account(2, 0, USD), 10)
    assert (caught.value.expected, caught.value.received) == ("EUR", "USD")
    with pytest.raises(CurrencyMismatch) as caught:
        transfer(account(1, 0), account(2, 0), 10, USD)
    assert (caught.value.expected, caught.value.received) == ("EUR", "USD")


def test_a_balance_that_would_overflow_moves_nothing():
    rich, full = account(1, 10), account(2, MAX_MINOR_UNITS)
    with pytest.raises(BalanceOverLimit) as caught:
        transfer(rich, full, 1)
    assert caught.value.limit == Money(MAX_MINOR_UNITS, EUR)
    assert (rich.balance.minor_units, full.balance.minor_units) == (10, MAX_MINOR_UNITS)


def test_a_credit_beyond_the_largest_balance_moves_nothing():
    limits = MoneyLimits(max_balance=10)  # 10.00 EUR
    funding, customer = FundingAccount(AccountId(1), EUR), account(2, 900)
    with pytest.raises(BalanceOverLimit) as caught:
        with_funding(TransactionKind.DEPOSIT, customer, funding, 101, limits)
    assert (caught.value.account_id, caught.value.limit) == (2, Money(1000, EUR))
    assert customer.balance == Money(900, EUR)
    with_funding(TransactionKind.DEPOSIT, customer, funding, 100, limits)
    assert customer.balance == Money(1000, EUR)
    source = account(3, 500)
    with pytest.raises(BalanceOverLimit):
        transfer(source, customer, 1, limits=limits)
    assert (source.balance.minor_units, customer.balance.minor_units) == (500, 1000)


def test_the_balance_limit_comes_after_funds():
    limits = MoneyLimits(max_balance=1)
    with pytest.raises(InsufficientFunds):
        transfer(account(1, 0), account(2, 100), 500, limits=limits)


def test_limits_count_whole_units_of_each_currency_within_64_bits():
    limits = MoneyLimits(max_movement=1000, max_balance=MAX_MINOR_UNITS)
    assert limits.largest_movement(EUR) == Money(100_000, EUR)
    assert limits.largest_movement(JPY) == Money(1000, JPY)
    assert limits.largest_balance(EUR) == Money(MAX_MINOR_UNITS, EUR)
    assert MoneyLimits().largest_movement(USD) == Money(MAX_MINOR_UNITS, USD)


def test_a_movement_over_its_limit_is_refused():
    limits = MoneyLimits(max_movement=1000)
    limits.check_movement(Money(1000, JPY))
    with pytest.raises(MovementOverLimit) as caught:
        limits.check_movement(Money(1001, JPY))
    assert caught.value.limit == Money(1000, JPY)
    assert caught.value.message == "A single movement is at most 1000 JPY."


def test_a_limit_is_at_least_one_unit():
    with pytest.raises(ValueError, match="at least one"):
        MoneyLimits(max_balance=0)


def test_an_unbalanced_transaction_cannot_be_built():
    with pytest.raises(LedgerInvariantBroken, match="sum to zero"):
        NewTransaction(
            TransactionKind.TRANSFER,
            Money(5, EUR),
            AccountId(1),
            AccountId(2),
            None,
            UserId(1),
            None,
            (
                NewEntry(AccountId(1), Money(-5, EUR), Money(0, EUR)),
                NewEntry(AccountId(2), Money(4, EUR), Money(4, EUR)),
            ),
        )


def test_a_transaction_needs_two_entries_of_its_currency_and_a_positive_amount():
    entry = NewEntry(AccountId(1), Money(5, EUR), Money(5, EUR))
    with pytest.raises(LedgerInvariantBroken):
        NewTransaction(
            TransactionKind.DEPOSIT,
            Money(5, EUR),
            None,
            AccountId(1),
            None,
            UserId(1),
            None,
            (entry,),
        )
    with pytest.raises(LedgerInvariantBroken):
        NewTransaction(
            TransactionKind.DEPOSIT,
            Money(0, EUR),
            None,
            AccountId(1),
            None,
            UserId(1),
            None,
            (entry, NewEntry(AccountId(2), Money(-5, EUR), Money(0, EUR))),
        )
    with pytest.raises(LedgerInvariantBroken):
        NewTransaction(
            TransactionKind.DEPOSIT,
            Money(5, EUR),
            None,
            AccountId(1),
            None,
            UserId(1),
            None,
            (
                NewEntry(AccountId(1), Money(5, USD), Money(5, USD)),
                NewEntry(AccountId(2), Money(-5, USD), Money(-5, USD)),
            ),
        )


def test_applying_a_change_that_would_make_a_customer_balance_negative_is_a_bug_not_a_reply():
    with pytest.raises(LedgerInvariantBroken):
        account(1, 5).apply(Money(-6, EUR))


def test_closing_needs_a_zero_balance():
    full = account(1, 1)
    with pytest.raises(AccountNotEmpty) as caught:
        full.close()
    assert caught.value.balance == Money(1, EUR)
    empty = account(2)
    empty.close()
    assert empty.status is AccountStatus.CLOSED
    with pytest.raises(AccountClosed):
        empty.close()
    with pytest.raises(AccountClosed):
        empty.rename("x")


def test_request_hashes_tell_different_requests_apart_and_ignore_field_order():
    first = request_hash(TransactionKind.DEPOSIT, account=1, amount=5, description=None)
    assert first == request_hash(TransactionKind.DEPOSIT, description=None, amount=5, account=1)
    assert first != request_hash(TransactionKind.DEPOSIT, account=1, amount=6, description=None)
    assert first != request_hash(TransactionKind.WITHDRAWAL, account=1, amount=5, description=None)
