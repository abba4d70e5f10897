"""The served schema keeps the whole public API contract."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

CHECKER = Path(__file__).resolve().parents[3] / "shared" / "api" / "check_contract.py"
REMOVED = re.compile(r"^[A-Z_]+: (?:Field )?([A-Za-z.]+) was removed\.$")


def missing_parts(report: str) -> set[str]:
    """What the checker reports as removed; any other kind of violation is reported as is."""
    lines = report.splitlines()[:-1]
    return {match.group(1) if (match := REMOVED.match(line)) else line for line in lines}


def test_bankql_schema_keeps_the_contract(tmp_path):
    if not CHECKER.exists():
        pytest.fail(f"the contract checker is missing at {CHECKER}")
    sdl = subprocess.run(
        [sys.executable, "-m", "gql.cli", "schema"], check=True, capture_output=True, text=True
    ).stdout
    schema_file = tmp_path / "schema.graphql"
    schema_file.write_text(sdl)
    checked = subprocess.run(
        [sys.executable, str(CHECKER), str(schema_file)], capture_output=True, text=True
    )
    assert missing_parts(checked.stdout) == set(), checked.stdout
    assert checked.returncode == 0, checked.stdout
