"""Database URLs that list several servers: the form read, and the mistakes refused at start."""

from __future__ import annotations

import pytest

from gql.server.settings import ConfigurationError, Settings, load_settings
from persistence.database import connection_parameters

SEVERAL = (
    "postgresql+psycopg://bankql@/bankql?host=db1:5432&host=db2:6432"
    "&target_session_attrs=read-write"
)


def test_several_hosts_reach_libpq_as_its_own_lists():
    parameters = connection_parameters(SEVERAL)
    assert parameters["host"] == "db1,db2"
    assert parameters["port"] == "5432,6432"
    assert parameters["target_session_attrs"] == "read-write"
    assert (parameters["dbname"], parameters["user"]) == ("bankql", "bankql")


def test_the_url_with_several_hosts_is_accepted():
    settings = Settings(_env_file=None, database_url=SEVERAL, listen_database_url=SEVERAL)  # type: ignore[call-arg]
    assert settings.database_url == SEVERAL


@pytest.mark.parametrize("variable", ["BANKQL_DATABASE_URL", "BANKQL_LISTEN_DATABASE_URL"])
def test_libpq_s_comma_form_is_refused_with_the_form_to_write(monkeypatch, variable):
    monkeypatch.setenv(variable, "postgresql+psycopg://bankql@db1:5432,db2:5432/bankql")
    with pytest.raises(ConfigurationError) as refused:
        load_settings()
    message = str(refused.value)
    assert message.startswith(f"{variable}: ")
    assert "several hosts" in message
    assert "host=db1:5432&host=db2:5432&target_session_attrs=read-write" in message
    assert "\n" not in message


def test_several_hosts_without_asking_for_the_writable_one_are_refused(monkeypatch):
    monkeypatch.setenv(
        "BANKQL_DATABASE_URL", "postgresql+psycopg://bankql@/bankql?host=db1&host=db2"
    )
    with pytest.raises(ConfigurationError, match="without target_session_attrs=read-write"):
        load_settings()
