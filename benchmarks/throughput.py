"""Throughput of bankql against PostgreSQL's own TPC-B-like run and PostGraphile v4.

    .venv/bin/python -m benchmarks.throughput [--seconds 5] [--rounds 1]

One command: it makes a temporary database on the PostgreSQL server of
BANKQL_TEST_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/postgres),
seeds users and accounts through the API, then, round after round, starts `bankql serve`
with 1 and with 2 processes and drives each workload with wrk (2 threads, 32 connections),
runs pgbench's TPC-B-like script (scale 10, 8 clients) and PostGraphile v4 (installed
from npm into a temporary folder) on the same database, and prints one table: requests per
second, latency p50/p99, CPU per request of the server's processes and of the PostgreSQL
sessions serving them, and the ratios the performance goals name. Everything it started is
stopped, and the database and the folder are removed, however it ends.

Needs wrk (Debian: apt-get install wrk; installed for you when run as root with apt-get),
pgbench (postgresql-client) and npm. Without npm or network the PostGraphile rows are left
out and the table says so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
from sqlalchemy.engine import make_url

from tests.servers import BANKQL, environment, free_port

ADMIN_URL_VARIABLE = "BANKQL_TEST_POSTGRES_URL"
DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
WRK_THREADS = 2
WRK_CONNECTIONS = 32
PGBENCH_CLIENTS = 8
PGBENCH_SCALE = 10
# Enough accounts that random transfers seldom wait for one another's row locks.
USERS = 32
ACCOUNTS_EACH = 8
PAGE_ACCOUNTS = 20
PAGE_LINES = 10
START_TIMEOUT_S = 60
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The measurement of the 200-line statement page before this work (req/s, medians
# of 1 and 2 processes), against which its goal of ten times as many is printed.
PAGE_BEFORE = {1: 12.5, 2: 21.5}

READ = "query($id: ID!) { account(id: $id) { id name balance { amount currency } } }"
TRANSFER = (
    "mutation($input: TransferInput!) { transfer(input: $input) { __typename "
    "... on MoneyMovement { transaction { id } } } }"
)
DEPOSIT = (
    "mutation($input: DepositInput!) { deposit(input: $input) { __typename "
    "... on MoneyMovement { transaction { id } } } }"
)
PAGE = (
    f"{{ accounts(first: {PAGE_ACCOUNTS}) {{ edges {{ node {{ id balance {{ amount currency }} "
    f"entries(first: {PAGE_LINES}) {{ edges {{ node {{ id amount {{ amount }} "
    "balanceAfter { amount } } } } } } } }"
)
POSTGRAPHILE_READ = "query($id: BigInt!) { accountById(id: $id) { id name balance currency } }"


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# --- tools -------------------------------------------------------------------------------


def need_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing: installing Debian's wrk package", file=sys.stderr)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "wrk"], check=False, stdout=subprocess.DEVNULL
        )
        found = shutil.which("wrk")
        if found:
            return found
    raise SystemExit(
        "This benchmark drives HTTP with wrk, which is not installed: on Debian or Ubuntu "
        "run `sudo apt-get install wrk` (elsewhere see https://github.com/wg/wrk), then again."
    )


def need(tool: str, package: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise SystemExit(f"This benchmark needs {tool} (Debian package {package}).")
    return found


# --- CPU accounting ------------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    pids, queue = [], [pid]
    while queue:
        current = queue.pop()
        pids.append(current)
        with suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                queue += [int(child) for child in (task / "children").read_text().split()]
    return pids


def cpu_by_process(pids: list[int]) -> dict[int, float]:
    """User and system time each of these processes has used so far, in seconds."""
    used = {}
    for pid in pids:
        with suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            used[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return used


def cpu_seconds(pids: list[int]) -> float:
    return sum(cpu_by_process(pids).values())


def cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two readings; a process that started in between counts whole, one
    that ended in between is not seen."""
    return sum(used - before.get(pid, 0.0) for pid, used in after.items())


def backend_pids(admin_url: str, database: str) -> list[int]:
    with psycopg.connect(libpq(admin_url), autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return [int(row[0]) for row in rows]


# --- the database --------------------------------------------------------------------------


@dataclass
class Database:
    admin_url: str
    name: str = field(default_factory=lambda: f"bankql_bench_{uuid.uuid4().hex[:10]}")

    @property
    def url(self) -> str:
        return (
            make_url(self.admin_url).set(database=self.name).render_as_string(hide_password=False)
        )

    @property
    def libpq(self) -> str:
        return libpq(self.url)

    def create(self) -> None:
        with psycopg.connect(libpq(self.admin_url), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        with psycopg.connect(libpq(self.admin_url), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


# --- servers ---------------------------------------------------------------------------------


class Process:
    """A server process group, stopped with its children however the benchmark ends."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: str | None = None) -> None:
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        self.process = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_for(self, url: str, body: dict[str, object] | None = None) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        # One client for every look: a new one would load the machine's certificates each
        # time, taking the processor the starting server needs.
        with httpx.Client(timeout=2) as http:
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    if body is None:
                        ok = http.get(url).status_code == 200
                    else:
                        ok = http.post(url, json=body).status_code == 200
                    if ok:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        self.stop()
        self.log.seek(0)
        raise RuntimeError(f"{url} did not come up:\n{self.log.read()[-3000:]}")

    def cpu(self) -> float:
        return cpu_seconds(process_tree(self.process.pid))

    def stop(self) -> None:
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def bankql_environment(url: str, workers: int) -> dict[str, str]:
    return environment(
        url,
        BANKQL_ENV="production",
        BANKQL_LOG_LEVEL="WARNING",
        BANKQL_WORKERS=str(workers),
        # The benchmark's few users send far more than a person would.
        BANKQL_RATE_LIMIT_PER_SECOND="100000",
        BANKQL_RATE_LIMIT_BURST="1000000",
        BANKQL_ANONYMOUS_RATE_LIMIT_PER_SECOND="100000",
        BANKQL_ANONYMOUS_RATE_LIMIT_BURST="1000000",
    )


@contextmanager
def bankql(url: str, workers: int) -> Iterator[tuple[str, Process]]:
    port = free_port()
    server = Process(
        [*BANKQL, "serve", "--port", str(port), "--workers", str(workers)],
        bankql_environment(url, workers),
    )
    try:
        base = f"http://127.0.0.1:{port}"
        server.wait_for(f"{base}/healthz")
        yield base, server
    finally:
        server.stop()


@contextmanager
def postgraphile(folder: Path, database: Database, workers: int) -> Iterator[tuple[str, Process]]:
    port = free_port()
    command = [
        str(folder / "node_modules" / ".bin" / "postgraphile"),
        "--connection",
        database.libpq,
        "--schema",
        "compare",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--disable-query-log",
    ]
    if workers > 1:
        command += ["--cluster-workers", str(workers)]
    server = Process(command, dict(os.environ), cwd=str(folder))
    try:
        base = f"http://127.0.0.1:{port}"
        server.wait_for(f"{base}/graphql", {"query": "{ __typename }"})
        yield base, server
    finally:
        server.stop()


# --- seeding ----------------------------------------------------------------------------------


@dataclass
class Seed:
    tokens: list[str]
    accounts: list[list[str]]  # each user's account IDs
    page_token: str
    raw_ids: list[int]  # the accounts' database keys, for PostGraphile


async def gql(http: httpx.AsyncClient, query: str, token: str | None = None, **variables):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    body = response.json()
    if "errors" in body:
        raise RuntimeError(f"seeding failed: {body['errors']}")
    return body["data"]


REGISTER = (
    "mutation($input: RegisterInput!) { register(input: $input) { __typename "
    "... on AuthPayload { token } } }"
)
OPEN = (
    "mutation($input: OpenAccountInput!) { openAccount(input: $input) { __typename "
    "... on AccountPayload { account { id } } } }"
)


async def seed(base: str) -> Seed:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:

        async def user(email: str) -> str:
            data = await gql(http, REGISTER, input={"email": email, "password": "benchmark pw 1"})
            return str(data["register"]["token"])

        async def account(token: str, name: str, deposit: str) -> str:
            data = await gql(
                http,
                OPEN,
                token,
                input={"name": name, "currency": "EUR", "initialDeposit": deposit},
            )
            return str(data["openAccount"]["account"]["id"])

        tokens = [await user(f"bench{n}@example.com") for n in range(USERS)]
        accounts = [
            list(
                await asyncio.gather(
                    *(account(token, f"A{k}", "1000000") for k in range(ACCOUNTS_EACH))
                )
            )
            for token in tokens
        ]
        page_token = await user("statement@example.com")
        page_accounts = [await account(page_token, f"P{k}", "1000") for k in range(PAGE_ACCOUNTS)]
        deposit = {"amount": "1.00", "currency": "EUR"}
        for _ in range(PAGE_LINES):
            await asyncio.gather(
                *(
                    gql(http, DEPOSIT, page_token, input={"accountId": key, "amount": deposit})
                    for key in page_accounts
                )
            )
    return Seed(tokens, accounts, page_token, [])


def copy_accounts_for_postgraphile(database: Database) -> list[int]:
    """A table with the same columns and rows as bankql's accounts, in its own schema."""
    with psycopg.connect(database.libpq, autocommit=True) as connection:
        connection.execute("CREATE SCHEMA compare")
        connection.execute("CREATE TABLE compare.accounts (LIKE public.accounts INCLUDING ALL)")
        connection.execute("INSERT INTO compare.accounts SELECT * FROM public.accounts")
        rows = connection.execute(
            "SELECT id FROM compare.accounts WHERE owner_id IS NOT NULL"
        ).fetchall()
    return [int(row[0]) for row in rows]


# --- wrk ----------------------------------------------------------------------------------------


def lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal here


def wrk_script(kind: str, seed: Seed) -> str:
    """A wrk script that sends one workload's requests, each to a random user's accounts,
    and counts answers that are not what the workload expects."""
    tokens = "{" + ",".join(lua_string(token) for token in seed.tokens) + "}"
    accounts = (
        "{"
        + ",".join("{" + ",".join(lua_string(key) for key in keys) + "}" for keys in seed.accounts)
        + "}"
    )
    raw_ids = "{" + ",".join(str(key) for key in seed.raw_ids) + "}"
    if kind == "read":
        body = (
            "local u = math.random(#tokens)\n"
            "  local a = accounts[u][math.random(#accounts[u])]\n"
            f"  return post(tokens[u], {lua_string(READ)}, '{{\"id\":\"' .. a .. '\"}}')"
        )
        good = '"balance"'
    elif kind == "transfer":
        body = (
            "local u = math.random(#tokens)\n"
            "  local s = math.random(#accounts[u])\n"
            "  local d = (s % #accounts[u]) + 1\n"
            "  if math.random(2) == 1 then\n"
            "    d = math.random(#accounts)\n"
            "    d = accounts[d][math.random(#accounts[d])]\n"
            "    if d == accounts[u][s] then d = accounts[u][(s % #accounts[u]) + 1] end\n"
            "  else d = accounts[u][d] end\n"
            f"  return post(tokens[u], {lua_string(TRANSFER)}, "
            '\'{"input":{"sourceAccountId":"\' .. accounts[u][s] .. '
            '\'","destinationAccountId":"\' .. d .. '
            '\'","amount":{"amount":"0.01","currency":"EUR"}}}\')'
        )
        good = '"MoneyMovement"'
    elif kind == "deposit":
        body = (
            "local u = math.random(#tokens)\n"
            "  local a = accounts[u][math.random(#accounts[u])]\n"
            f"  return post(tokens[u], {lua_string(DEPOSIT)}, "
            '\'{"input":{"accountId":"\' .. a .. '
            '\'","amount":{"amount":"0.01","currency":"EUR"}}}\')'
        )
        good = '"MoneyMovement"'
    elif kind == "page":
        body = f"return post({lua_string(seed.page_token)}, {lua_string(PAGE)}, '{{}}')"
        good = '"balanceAfter"'
    elif kind == "postgraphile":
        body = (
            "local a = raw_ids[math.random(#raw_ids)]\n"
            f"  return post(nil, {lua_string(POSTGRAPHILE_READ)}, "
            "'{\"id\":\"' .. a .. '\"}')"
        )
        good = '"accountById":{'
    else:
        raise ValueError(kind)
    return f"""
tokens = {tokens}
accounts = {accounts}
raw_ids = {raw_ids}
local threads = {{}}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bad = 0
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end

function post(token, query, variables)
  local headers = {{["Content-Type"] = "application/json", ["Accept"] = "application/json"}}
  if token then headers["Authorization"] = "Bearer " .. token end
  local escaped = string.gsub(query, '"', '\\\\"')
  local body = '{{"query":"' .. escaped .. '","variables":' .. variables .. '}}'
  return wrk.format("POST", "/graphql", headers, body)
end

function request()
  {body}
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, {lua_string(good)}, 1, true)
     or string.find(body, '"errors"', 1, true) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("bad") end
  io.write(string.format("BAD %d\\n", total))
  io.write(string.format("P50 %f\\nP99 %f\\n", latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass
class Result:
    workload: str
    processes: int
    rate: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    server_cpu_ms: list[float] = field(default_factory=list)
    database_cpu_ms: list[float] = field(default_factory=list)
    bad: int = 0

    def median(self, values: list[float]) -> float | None:
        return statistics.median(values) if values else None


def run_wrk(
    wrk: str, base: str, script: str, seconds: float, folder: Path
) -> tuple[float, float, float, int]:
    path = folder / f"{uuid.uuid4().hex}.lua"
    path.write_text(script)
    completed = subprocess.run(
        [
            wrk,
            "-t",
            str(WRK_THREADS),
            "-c",
            str(WRK_CONNECTIONS),
            "-d",
            f"{seconds:g}s",
            "--timeout",
            "10s",
            "-s",
            str(path),
            f"{base}/graphql",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    output = completed.stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^P50 ([\d.]+)", output, re.MULTILINE)
    p99 = re.search(r"^P99 ([\d.]+)", output, re.MULTILINE)
    bad = re.search(r"^BAD (\d+)", output, re.MULTILINE)
    if not (rate and p50 and p99 and bad):
        raise RuntimeError(f"wrk said:\n{output}\n{completed.stderr}")
    errors = int(bad.group(1))
    socket_errors = re.search(r"Socket errors: .*", output)
    if socket_errors:
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(0)))
    # wrk's percentiles are in microseconds.
    return float(rate.group(1)), float(p50.group(1)) / 1000, float(p99.group(1)) / 1000, errors


def measure(
    wrk: str,
    base: str,
    server: Process,
    database: Database,
    result: Result,
    script: str,
    seconds: float,
    folder: Path,
) -> None:
    # A short warm-up, so that every connection and prepared statement exists.
    run_wrk(wrk, base, script, 1, folder)
    database_before = cpu_by_process(backend_pids(database.admin_url, database.name))
    server_before = server.cpu()
    rate, p50, p99, bad = run_wrk(wrk, base, script, seconds, folder)
    server_after = server.cpu()
    database_spent = cpu_spent(
        database_before, cpu_by_process(backend_pids(database.admin_url, database.name))
    )
    requests = max(1.0, rate * seconds)
    result.rate.append(rate)
    result.p50_ms.append(p50)
    result.p99_ms.append(p99)
    result.server_cpu_ms.append((server_after - server_before) * 1000 / requests)
    result.database_cpu_ms.append(database_spent * 1000 / requests)
    result.bad += bad


def pgbench(database: Database, seconds: float) -> tuple[float, float, float]:
    """TPC-B-like transactions per second, average latency, and PostgreSQL CPU per
    transaction (its sessions' CPU, read just before they end)."""
    command = [
        "pgbench",
        "-n",
        "-c",
        str(PGBENCH_CLIENTS),
        "-j",
        "2",
        "-T",
        f"{max(1, round(seconds))}",
        database.libpq,
    ]
    started = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    backends = backend_pids(database.admin_url, database.name)
    before = cpu_seconds(backends)
    time.sleep(max(0.5, round(seconds) - 1.0))
    after = cpu_seconds(backends)
    output, errors = started.communicate(timeout=seconds + 60)
    tps = re.search(r"tps = ([\d.]+)", output)
    latency = re.search(r"latency average = ([\d.]+) ms", output)
    if not (tps and latency):
        raise RuntimeError(f"pgbench said:\n{output}\n{errors}")
    rate = float(tps.group(1))
    window = max(0.5, round(seconds) - 1.0)
    return rate, float(latency.group(1)), (after - before) * 1000 / max(1.0, rate * window)


def install_postgraphile(folder: Path) -> Path | None:
    npm = shutil.which("npm")
    if npm is None:
        return None
    target = folder / "postgraphile"
    target.mkdir()
    installed = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--silent", "postgraphile@4"],
        cwd=target,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if (
        installed.returncode != 0
        or not (target / "node_modules" / ".bin" / "postgraphile").exists()
    ):
        print(f"PostGraphile could not be installed: {installed.stderr[-500:]}", file=sys.stderr)
        return None
    return target


# --- the table ------------------------------------------------------------------------------


def number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def row_cells(result: Result) -> list[str]:
    return [
        result.workload,
        str(result.processes),
        number(result.median(result.rate)),
        number(result.median(result.p50_ms), 1),
        number(result.median(result.p99_ms), 1),
        number(result.median(result.server_cpu_ms), 2),
        number(result.median(result.database_cpu_ms), 2),
        str(result.bad),
    ]


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5, help="length of each run (5)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (1)")
    parser.add_argument(
        "--workloads",
        default="read,transfer,deposit,page",
        help="bankql workloads to run, comma-separated (read,transfer,deposit,page)",
    )
    parser.add_argument("--no-postgraphile", action="store_true", help="leave PostGraphile out")
    arguments = parser.parse_args()
    if arguments.seconds <= 0 or arguments.rounds < 1:
        raise SystemExit("--seconds must be positive and --rounds at least 1")
    workloads = [name.strip() for name in arguments.workloads.split(",") if name.strip()]
    unknown = set(workloads) - {"read", "transfer", "deposit", "page"}
    if unknown:
        raise SystemExit(f"--workloads: unknown {', '.join(sorted(unknown))}")
    wrk = need_wrk()
    need("pgbench", "postgresql-client")
    admin_url = os.environ.get(ADMIN_URL_VARIABLE, DEFAULT_ADMIN_URL)
    database = Database(admin_url)
    database.create()
    folder = Path(tempfile.mkdtemp(prefix="bankql-throughput-"))
    results: dict[tuple[str, int], Result] = {}
    pgbench_runs: list[tuple[float, float, float]] = []
    try:
        migrated = subprocess.run(
            [*BANKQL, "migrate"],
            env=bankql_environment(database.url, 1),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if migrated.returncode != 0:
            raise RuntimeError(migrated.stderr)
        with bankql(database.url, 1) as (base, _server):
            seeded = asyncio.run(seed(base))
        seeded.raw_ids = copy_accounts_for_postgraphile(database)
        subprocess.run(
            ["pgbench", "-i", "-q", "-s", str(PGBENCH_SCALE), database.libpq],
            capture_output=True,
            check=True,
            timeout=600,
        )
        graphile = None if arguments.no_postgraphile else install_postgraphile(folder)
        for _round in range(arguments.rounds):
            for processes in (1, 2):
                with bankql(database.url, processes) as (base, server):
                    for workload in workloads:
                        result = results.setdefault(
                            (workload, processes), Result(workload, processes)
                        )
                        script = wrk_script(workload, seeded)
                        measure(
                            wrk, base, server, database, result, script, arguments.seconds, folder
                        )
                if graphile is not None:
                    with postgraphile(graphile, database, processes) as (base, server):
                        result = results.setdefault(
                            ("PostGraphile accountById", processes),
                            Result("PostGraphile accountById", processes),
                        )
                        script = wrk_script("postgraphile", seeded)
                        measure(
                            wrk, base, server, database, result, script, arguments.seconds, folder
                        )
            pgbench_runs.append(pgbench(database, arguments.seconds))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        database.drop()
    print_table(results, pgbench_runs, arguments)


def print_table(
    results: dict[tuple[str, int], Result],
    pgbench_runs: list[tuple[float, float, float]],
    arguments: argparse.Namespace,
) -> None:
    cpus = os.cpu_count()
    model = "unknown CPU"
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {cpus} CPUs ({model}), "
        f"{arguments.rounds} round(s) of {arguments.seconds:g} s, wrk {WRK_THREADS} threads "
        f"{WRK_CONNECTIONS} connections; medians"
    )
    header = [
        "workload",
        "processes",
        "req/s",
        "p50 ms",
        "p99 ms",
        "server CPU ms/req",
        "PostgreSQL CPU ms/req",
        "bad answers",
    ]
    rows = [row_cells(result) for result in results.values()]
    if pgbench_runs:
        tps = statistics.median(run[0] for run in pgbench_runs)
        latency = statistics.median(run[1] for run in pgbench_runs)
        cpu = statistics.median(run[2] for run in pgbench_runs)
        rows.append(
            [
                f"pgbench TPC-B-like, {PGBENCH_CLIENTS} clients",
                "-",
                number(tps),
                f"{latency:.1f} (mean)",
                "-",
                "-",
                number(cpu, 2),
                "0",
            ]
        )
    else:
        tps = None
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")

    def rate(workload: str, processes: int) -> float | None:
        result = results.get((workload, processes))
        return result.median(result.rate) if result else None

    print()
    print("| goal | measured |")
    print("|---|---|")
    print(
        "| read, 2 processes, at least 1.0x PostGraphile | "
        f"{ratio(rate('read', 2), rate('PostGraphile accountById', 2))} |"
    )
    print(
        f"| transfer, 2 processes, at least 0.5x pgbench TPS | {ratio(rate('transfer', 2), tps)} |"
    )
    print(
        "| deposits, 2 processes at least 1.7x one | "
        f"{ratio(rate('deposit', 2), rate('deposit', 1))} |"
    )
    print(
        "| statement page at least 10x before (12.5 / 21.5 req/s) | "
        f"{ratio(rate('page', 1), PAGE_BEFORE[1])} / {ratio(rate('page', 2), PAGE_BEFORE[2])} |"
    )


if __name__ == "__main__":
    main()
