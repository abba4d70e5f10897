#!/usr/bin/env python3
"""Run bankql from a fresh checkout with nothing but Python 3.11+.

    python3 dev.py serve [--host H] [--port P]   install if needed, migrate, serve on SQLite
                                                 (in development mode unless BANKQL_ENV is set)
    python3 dev.py test [pytest arguments]       install if needed, lint, type-check, test
    python3 dev.py lock                          re-pin both lock files from pyproject.toml

Everything is installed into .venv from requirements.lock, whose hashes pin exactly what CI
tested; the environment is rebuilt only when the lock or pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
LOCK = ROOT / "requirements.lock"
RUNTIME_LOCK = ROOT / "requirements-runtime.lock"  # what the container image installs
STAMP = VENV / ".bankql-installed"


def _run(*command: str | Path) -> None:
    print("+", " ".join(map(str, command)), flush=True)
    subprocess.run([str(part) for part in command], cwd=ROOT, check=True)


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for source in (LOCK, ROOT / "pyproject.toml"):
        digest.update(source.read_bytes())
    return digest.hexdigest()


def ensure_environment() -> None:
    """Create .venv and install the locked dependencies and bankql itself, once per lock."""
    if sys.version_info < (3, 11):
        sys.exit("bankql needs Python 3.11 or newer")
    if STAMP.exists() and STAMP.read_text() == _fingerprint():
        return
    if not (BIN / "python").exists():
        print(f"creating {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    python = BIN / "python"
    _run(python, "-m", "pip", "install", "--quiet", "--require-hashes", "-r", LOCK)
    _run(python, "-m", "pip", "install", "--quiet", "--no-deps", "--editable", ".")
    STAMP.write_text(_fingerprint())


NODE_FOLDERS = (ROOT / "gql" / "graphiql", ROOT / "tests" / "node")


def ensure_node_packages() -> None:
    """GraphiQL's files and the Node test tools, from their package-lock.json, when npm exists."""
    npm = shutil.which("npm")
    for folder in NODE_FOLDERS:
        stamp = folder / "node_modules" / ".bankql-installed"
        wanted = hashlib.sha256((folder / "package-lock.json").read_bytes()).hexdigest()
        if stamp.exists() and stamp.read_text() == wanted:
            continue
        if npm is None:
            print(
                "npm was not found: GraphiQL's page will say how to install its files, and "
                "the Node.js tests will be skipped",
                flush=True,
            )
            return
        _run(npm, "ci", "--prefix", folder, "--ignore-scripts", "--no-audit", "--no-fund")
        stamp.write_text(wanted)


def serve(arguments: list[str]) -> int:
    """Serve on this machine; development mode unless BANKQL_ENV says otherwise."""
    ensure_environment()
    ensure_node_packages()
    environment = {"BANKQL_ENV": "development"} | dict(os.environ)
    return subprocess.call([str(BIN / "bankql"), "serve", *arguments], cwd=ROOT, env=environment)


def _chosen(arguments: list[str]) -> bool:
    return any((ROOT / argument.split("::")[0]).exists() for argument in arguments)


def coverage_floor(arguments: list[str]) -> list[str]:
    """The whole suite must cover 90% (pyproject.toml); a run of chosen tests only reports it."""
    return ["--cov-fail-under=0"] if _chosen(arguments) else []


def test_processes(arguments: list[str]) -> list[str]:
    """The whole suite runs in two processes, the load tests in one of them (tests/conftest.py);
    chosen tests run in this one, where a debugger or -x behaves as usual."""
    return [] if _chosen(arguments) else ["-n", "2", "--dist", "loadgroup"]


def test(arguments: list[str]) -> int:
    """Lint code, Dockerfile and compose file, check types, then the whole suite with coverage."""
    ensure_environment()
    ensure_node_packages()
    # compose.yml insists on a secret key before it resolves; any value will do to check it.
    compose_env = {"BANKQL_SECRET_KEY": "only-for-checking-the-compose-file"}
    steps: list[tuple[list[str | Path], dict[str, str]]] = [
        ([BIN / "ruff", "check", "."], {}),
        ([BIN / "ruff", "format", "--check", "."], {}),
        ([BIN / "mypy"], {}),
        ([BIN / "hadolint", "Dockerfile"], {}),
        ([BIN / "docker-compose", "config", "--quiet"], compose_env),
        (
            [
                BIN / "python",
                "-m",
                "pytest",
                "--cov",
                "--cov-report=term",
                *coverage_floor(arguments),
                *test_processes(arguments),
                *arguments,
            ],
            {},
        ),
    ]
    for step, extra_env in steps:
        print("+", " ".join(map(str, step)), flush=True)
        command = [str(part) for part in step]
        code = subprocess.call(command, cwd=ROOT, env=dict(os.environ) | extra_env)
        if code != 0:
            return code
    return 0


def lock(_arguments: list[str]) -> int:
    """Resolve pyproject.toml's dependencies again, for every supported Python, with hashes:
    everything for development, and the runtime part alone for the container image."""
    ensure_environment()
    _run(BIN / "python", "-m", "pip", "install", "--quiet", "uv")
    common = ["--universal", "--python-version", "3.11", "--generate-hashes", "--no-header", "-q"]
    _run(BIN / "uv", "pip", "compile", "pyproject.toml", "--extra", "dev", *common, "-o", LOCK)
    _run(BIN / "uv", "pip", "compile", "pyproject.toml", *common, "-o", RUNTIME_LOCK)
    return 0


COMMANDS = {"serve": serve, "test": test, "lock": lock}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        return 2
    return COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
