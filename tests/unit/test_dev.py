"""dev.py's test command: a run of chosen tests reports coverage without enforcing it."""

import dev


def test_the_whole_suite_keeps_the_coverage_floor():
    assert dev.coverage_floor([]) == []
    assert dev.coverage_floor(["-q", "-x", "-p", "no:cacheprovider"]) == []


def test_chosen_tests_only_report_coverage():
    assert dev.coverage_floor(["tests/unit", "-q"]) == ["--cov-fail-under=0"]
    assert dev.coverage_floor(["tests/unit/test_money.py::test_x"]) == ["--cov-fail-under=0"]


def test_the_whole_suite_runs_in_two_processes_and_chosen_tests_in_one():
    assert dev.test_processes([]) == ["-n", "2", "--dist", "loadgroup"]
    assert dev.test_processes(["-q"]) == ["-n", "2", "--dist", "loadgroup"]
    assert dev.test_processes(["tests/unit", "-q"]) == []
