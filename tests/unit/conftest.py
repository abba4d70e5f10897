"""What every unit test shares."""

import pytest

from domain.services import watch


@pytest.fixture(autouse=True)
def starts_without_waiting_for_company(monkeypatch):
    """The tests step the event loop a fixed number of times (no clock runs in them), so a
    start-up read does not wait for more starting streams to join it; the test that shows
    that wait sets it back."""
    monkeypatch.setattr(watch, "START_GATHER_S", 0)
