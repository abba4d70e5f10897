"""The layout's promises, read from the imports themselves."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FRAMEWORKS = {"gql", "persistence", "strawberry", "starlette", "sqlmodel", "sqlalchemy", "uvicorn"}


def imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_domain_imports_no_framework_and_no_outer_layer():
    for path in (ROOT / "domain").rglob("*.py"):
        outer = {name for name in imported(path) if name.split(".")[0] in FRAMEWORKS}
        assert outer == set(), path


def test_money_and_its_failures_do_not_import_the_failures_that_carry_money():
    for name in ("money.py", "failures.py"):
        assert "domain.errors" not in imported(ROOT / "domain" / name), name


def test_what_clients_see_takes_little_from_how_it_is_served():
    allowed = {"gql.server.logs", "gql.server.settings", "gql.server.auth"}
    for path in (ROOT / "gql" / "schema").glob("*.py"):
        taken = {name for name in imported(path) if name.startswith("gql.server")}
        assert taken <= allowed, (path, taken - allowed)
