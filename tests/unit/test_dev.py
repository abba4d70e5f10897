"""dev.py's test command: a run of chosen tests reports coverage without enforcing it."""

import dev


def test_the_whole_suite_keeps_the_coverage_floor():
    assert dev.coverage_floor([]) == []
    assert dev.coverage_floor(["-q", "-x", "-p", "no:cacheprovider"]) == []


def test_chosen_tests_only_report_coverage():
    assert dev.coverage_floor(["tests/unit", "-q"]) == ["--cov-fail-under=0"]
    assert dev.coverage_floor(["tests/unit/test_money.py::test_x"]) == ["--cov-fail-under=0"]
