"""The served schema keeps the public API contract, but for the parts not yet served.

The contract grew ahead of the code: each issue that serves some of its parts removes them
from NOT_YET_SERVED, and the set ends empty. Anything else the checker reports (a part that
was served and is gone, a changed type) fails at once.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

CHECKER = Path(__file__).resolve().parents[3] / "shared" / "api" / "check_contract.py"

NOT_YET_SERVED: set[str] = set()

# One removal, in the words of any graphql-core version the checker may run on.
_REMOVED = re.compile(
    r"^[A-Z_]+: (?:Field |Enum value |Argument )?(?P<part>[A-Za-z_.]+(?:\(\w+:\))?)"
    r"(?: arg (?P<arg>\w+))? was removed(?: from (?:enum|union) type (?P<parent>\w+))?\.$"
)


def reported_parts(report: str) -> set[str]:
    """The parts the checker reports as removed, by name; any other line is kept whole."""
    parts = set()
    for line in report.splitlines()[:-1]:  # the last line is the count
        match = _REMOVED.match(line)
        if match is None:
            parts.add(line)
            continue
        part = match["part"]
        if match["arg"]:
            part = f"{part}({match['arg']}:)"
        if match["parent"]:
            part = f"{match['parent']}.{part}"
        parts.add(part)
    return parts


def test_reported_parts_reads_every_wording():
    report = "\n".join(
        [
            "TYPE_REMOVED: Hold was removed.",
            "FIELD_REMOVED: Field User.sessions was removed.",
            "FIELD_REMOVED: Account.holds was removed.",
            "VALUE_REMOVED_FROM_ENUM: Enum value TransactionKind.REVERSAL was removed.",
            "VALUE_REMOVED_FROM_ENUM: REVERSAL was removed from enum type TransactionKind.",
            "TYPE_REMOVED_FROM_UNION: X was removed from union type CloseAccountResult.",
            "ARG_REMOVED: Argument Subscription.accountEntries(afterEntryId:) was removed.",
            "ARG_REMOVED: Subscription.accountEntries arg afterEntryId was removed.",
            "FIELD_CHANGED_KIND: Account.balance changed type from Money! to Money.",
            "9 contract violations (96 contract types checked)",
        ]
    )
    assert reported_parts(report) == {
        "Hold",
        "User.sessions",
        "Account.holds",
        "TransactionKind.REVERSAL",
        "CloseAccountResult.X",
        "Subscription.accountEntries(afterEntryId:)",
        "FIELD_CHANGED_KIND: Account.balance changed type from Money! to Money.",
    }


def test_bankql_schema_keeps_the_contract(tmp_path):
    if not CHECKER.exists():
        reason = f"the contract checker is not at {CHECKER} (beside the checkout)"
        if os.environ.get("BANKQL_REQUIRE_CONTRACT") == "1":
            pytest.fail(f"{reason}, and BANKQL_REQUIRE_CONTRACT=1")
        pytest.skip(reason)
    sdl = subprocess.run(
        [sys.executable, "-m", "gql.server.cli", "schema"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    schema_file = tmp_path / "schema.graphql"
    schema_file.write_text(sdl)
    checked = subprocess.run(
        [sys.executable, str(CHECKER), str(schema_file)], capture_output=True, text=True
    )
    reported = reported_parts(checked.stdout)
    assert reported - NOT_YET_SERVED == set(), f"the schema broke the contract:\n{checked.stdout}"
    served = NOT_YET_SERVED - reported
    assert served == set(), f"now served, so remove them from NOT_YET_SERVED: {sorted(served)}"


def test_the_committed_schema_file_is_the_served_schema():
    """Frontend tools read schema.graphql; it must say what the server serves."""
    served = subprocess.run(
        [sys.executable, "-m", "gql.server.cli", "schema"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    committed = (Path(__file__).resolve().parents[2] / "schema.graphql").read_text()
    assert committed == served, "schema.graphql is stale: run `bankql schema > schema.graphql`"
