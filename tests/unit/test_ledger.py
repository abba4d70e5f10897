from datetime import UTC, datetime

import pytest

from domain.errors import (
    AccountClosed,
    AccountNotEmpty,
    AmountOutOfRange,
    CurrencyMismatch,
    InsufficientFunds,
    LedgerInvariantBroken,
)
from domain.ledger import NewEntry, NewTransaction, TransactionKind, move, request_hash
from domain.model import Account, AccountId, AccountKind, AccountStatus, UserId
from domain.money import MAX_MINOR_UNITS, Currency, Money

EUR, USD = Currency.of("EUR"), Currency.of("USD")


def account(id_, minor_units=0, currency=EUR, kind=AccountKind.CUSTOMER, status=AccountStatus.OPEN):
    return Account(
        AccountId(id_),
        UserId(1),
        kind,
        f"a{id_}",
        Money(minor_units, currency),
        status,
        datetime(2026, 1, 1, tzinfo=UTC),
    )


def transfer(debit, credit, minor_units, currency=EUR):
    return move(
        TransactionKind.TRANSFER,
        debit=debit,
        credit=credit,
        amount=Money(minor_units, currency),
        actor_id=UserId(1),
        description=None,
        idempotency=None,
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


def test_the_funding_account_may_go_below_zero():
    funding, customer = account(1, 0, kind=AccountKind.FUNDING), account(2)
    new = move(
        TransactionKind.DEPOSIT,
        debit=funding,
        credit=customer,
        amount=Money(500, EUR),
        actor_id=UserId(1),
        description=None,
        idempotency=None,
    )
    assert funding.balance.minor_units == -500
    assert new.source_account_id is None
    assert new.destination_account_id == 2


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
    with pytest.raises(AmountOutOfRange):
        transfer(rich, full, 1)
    assert (rich.balance.minor_units, full.balance.minor_units) == (10, MAX_MINOR_UNITS)


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
