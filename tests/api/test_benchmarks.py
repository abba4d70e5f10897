"""The benchmark scripts still run; their figures are for people, so only their shape is read."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.databases import postgres_admin_url

ROOT = Path(__file__).resolve().parents[2]


def run(*arguments: str) -> str:
    result = subprocess.run(
        [sys.executable, *arguments], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_cache_benchmark_prints_both_rates_their_ratio_and_what_the_caches_hold():
    output = run("benchmarks/graphql_caches.py", "--requests", "5", "--documents", "3")
    assert "with parser and validation caches" in output and "ratio:" in output
    assert "3 distinct documents" in output and "remembered without a budget" in output


def test_the_load_benchmark_checks_the_ledger_and_prints_throughput():
    output = run("-m", "benchmarks.load", "--ops", "40", "--clients", "4", "--sqlite")
    assert "requests/s" in output and "audit clean" in output


def test_the_subscription_benchmark_prints_delivery_times():
    arguments = "--subscribers 20 --connections 2 --accounts 4 --rate 4 --seconds 1 --sqlite"
    output = run("-m", "benchmarks.subscriptions", *arguments.split())
    assert "subscribers: 20 on 2 connections" in output and "line received: p50" in output
    assert "| lines delivered / expected | 20 / 20 |" in output, output


def test_the_abuse_benchmark_prints_the_victims_latency_under_each_attack():
    arguments = "-m benchmarks.abuse --seconds 0.5 --rate 10 --scale 0.02 --database-url"
    output = run(*arguments.split(), postgres_admin_url())
    rows = [line for line in output.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| phase | victim p50 | victim p95 | p95 / alone |"), output
    assert [row.split(" | ")[0] for row in rows[2:]] == [
        "| alone",
        "| costly query, 1 clients giving up after 3 s",
        "| login storm, 1 clients, wrong passwords",
        "| new large documents, 1 clients without a token",
        "| slow clients, 6 partial headers + 6 partial bodies",
        "| WebSocket flood, 6 connections x 5 subscriptions",
    ], output


def test_the_sign_in_benchmark_prints_reads_alone_and_under_sign_ins():
    output = run("-m", "benchmarks.sign_in", "--attackers", "2", "--reads", "5", "--sqlite")
    assert "reads alone:" in output and "reads under 2 sign-in clients:" in output


def test_the_statement_benchmark_prints_statement_counts_and_the_export_memory():
    output = run("-m", "benchmarks.statements", "--lines", "300", "--sqlite")
    assert "balanceAt: the same" in output and "one-month statement: the same" in output, output
    assert "CSV of 300 lines" in output and "growth" in output, output


def test_the_throughput_benchmark_prints_its_table_and_the_goals_ratios():
    if shutil.which("wrk") is None or shutil.which("pgbench") is None:
        pytest.skip("the throughput benchmark drives wrk and pgbench, which are not installed")
    postgres_admin_url()  # its database is made on that server; skipped without one
    output = run(
        "-m",
        "benchmarks.throughput",
        "--seconds",
        "1",
        "--workloads",
        "read,transfer",
        "--no-postgraphile",
    )
    rows = {
        tuple(cell.strip() for cell in line.strip("|").split("|")[:2]): line
        for line in output.splitlines()
        if line.startswith("| ")
    }
    for workload in ("read", "transfer"):
        for processes in ("1", "2"):
            line = rows[workload, processes]
            assert line.rstrip().endswith("| 0 |"), line  # every answer was the expected one
    assert "| transfer, 2 processes, at least 0.5x pgbench TPS | " in output
    assert any(name.startswith("pgbench TPC-B-like") for name, _ in rows)


def test_the_observability_benchmark_prints_each_setup():
    output = run("-m", "benchmarks.observability", "--sqlite", "--requests", "5", "--rounds", "1")
    for setup in ("metrics off", "metrics on", "metrics and tracing on"):
        assert setup in output, output
