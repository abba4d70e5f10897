"""The image's exact start command, run here against a temporary PostgreSQL database.

No container engine runs on the test machines, so this reads the final stage of the
Dockerfile (its ENV, CMD and HEALTHCHECK) and runs those commands as the container would.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_SECRET_KEY
from tests.databases import PostgresDatabase, postgres_admin_url
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def final_stage() -> str:
    return (ROOT / "Dockerfile").read_text().split("\nFROM ")[-1]


def image_environment(stage: str) -> dict[str, str]:
    joined = re.sub(r"\\\n\s*", " ", stage)
    pairs = [line[4:] for line in joined.splitlines() if line.startswith("ENV ")]
    found = dict(re.findall(r"(\w+)=(\S+)", " ".join(pairs)))
    found.pop("PATH", None)  # the image's venv; here the project's own
    return found


def exec_form(stage: str, instruction: str) -> list[str]:
    [line] = [line for line in stage.splitlines() if line.startswith(instruction)]
    command: list[str] = json.loads(line[line.index("CMD") + 3 :].strip())
    return [
        str(BIN / command[0]) if shutil.which(command[0], path=str(BIN)) else command[0],
        *command[1:],
    ]


@pytest.fixture
def database_url():
    database = PostgresDatabase(postgres_admin_url())
    yield database.create()
    database.drop()


def test_the_image_runs_as_a_non_root_user_with_a_healthcheck():
    stage = final_stage()
    assert re.search(r"^USER (?!root|0\b)", stage, re.MULTILINE)
    assert "HEALTHCHECK" in stage and "EXPOSE 8000" in stage
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.index("COPY requirements-runtime.lock") < dockerfile.index("COPY gql ./gql")


def test_the_start_command_migrates_and_serves_on_postgresql(database_url, tmp_path):
    stage = final_stage()
    port = free_port()
    env = (
        os.environ
        | image_environment(stage)
        | {
            "BANKQL_DATABASE_URL": database_url,
            "BANKQL_SECRET_KEY": TEST_SECRET_KEY,
            "BANKQL_PORT": str(port),
        }
    )
    server = subprocess.Popen(
        exec_form(stage, "CMD"),
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and server.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert ready is not None and ready.status_code == 200, server.stderr
        health = subprocess.run(exec_form(stage, "HEALTHCHECK"), env=env, timeout=30)
        assert health.returncode == 0
        answer = httpx.post(
            f"http://127.0.0.1:{port}/graphql", json={"query": "{ viewer { email } }"}, timeout=5
        )
        assert answer.json()["data"] == {"viewer": None}
    finally:
        server.terminate()
        server.wait(timeout=30)
    lines = [json.loads(line) for line in server.stderr.read().splitlines() if line.startswith("{")]
    assert any(line["message"] == "request" and line["path"] == "/graphql" for line in lines)


def test_the_healthcheck_fails_when_nothing_answers():
    env = os.environ | {"BANKQL_PORT": str(free_port())}
    result = subprocess.run(
        exec_form(final_stage(), "HEALTHCHECK"), env=env, timeout=30, capture_output=True, text=True
    )
    assert result.returncode != 0 and "unhealthy" in result.stderr


def test_the_runtime_lock_pins_what_the_development_lock_pins():
    def pins(name: str) -> dict[str, str]:
        text = (ROOT / name).read_text()
        return dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==([^ ;\\]+)", text, re.MULTILINE))

    runtime, development = pins("requirements-runtime.lock"), pins("requirements.lock")
    assert runtime and all(development.get(name) == version for name, version in runtime.items())
