"""`.ci/run` sets every switch that turns a test's skip into a failure (issue 13 F9, design.md 8:
under CI a missing system package or service is a failure), so CI never depends on the runner
exporting one. The switches are found in the tests themselves, not listed here: every
environment variable read by a function that can call ``pytest.skip``, and every
``CORRIDOR_REQUIRE_*`` / ``CORRIDOR_TEST_*`` name the tests mention."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CI_RUN = REPO / ".ci" / "run"


def _is_environ_read(node: ast.Call) -> ast.expr | None:
    """The name argument of ``os.environ.get(X)``, ``os.getenv(X)``; None otherwise."""
    func = node.func
    if not isinstance(func, ast.Attribute) or not node.args:
        return None
    if func.attr == "get" and isinstance(func.value, ast.Attribute) and func.value.attr == "environ":
        return node.args[0]
    if func.attr == "getenv":
        return node.args[0]
    return None


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "string"`` assignments."""
    found: dict[str, str] = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value.value
    return found


def _environment_names(function: ast.AST, constants: dict[str, str]) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(function):
        argument: ast.expr | None = None
        if isinstance(node, ast.Call):
            argument = _is_environ_read(node)
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "environ"
            and isinstance(node.ctx, ast.Load)
        ):
            argument = node.slice
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            names.add(argument.value)
        elif isinstance(argument, ast.Name) and argument.id in constants:
            names.add(constants[argument.id])
    return names


def _calls_skip(function: ast.AST) -> bool:
    return any(
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "skip"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "pytest"
        for node in ast.walk(function)
    )


def switches() -> set[str]:
    """Every environment variable that decides between a skip and a failure in the tests."""
    sources = sorted((REPO / "tests").rglob("*.py"))
    constants: dict[str, str] = {}
    trees = {}
    for path in sources:
        tree = ast.parse(path.read_text(), str(path))
        trees[path] = tree
        constants.update(_constants(tree))  # constants imported across modules (POSTGRES_ENV)
    found: set[str] = set()
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and _calls_skip(node):
                found |= _environment_names(node, constants)
        if path != Path(__file__):
            found |= set(re.findall(r"\bCORRIDOR_(?:REQUIRE|TEST)_[A-Z0-9_]+\b", path.read_text()))
    return found


def exported(script: str) -> dict[str, str]:
    """``export NAME=value`` lines of a shell script."""
    return dict(re.findall(r"^\s*export\s+([A-Za-z_][A-Za-z0-9_]*)=(\S*)", script, re.M))


def test_the_switch_finder_sees_the_known_switches() -> None:
    """Positive control: the finder sees the switches of the browser, outage-cluster, PostgreSQL
    and nginx tests (if it saw nothing, the next test would pass vacuously)."""
    assert {"CI", "CORRIDOR_REQUIRE_NGINX", "CORRIDOR_TEST_POSTGRES_URL"} <= switches()


def test_ci_run_exports_every_switch() -> None:
    """issue 13 F9: every switch the tests consult is exported by .ci/run, non-empty."""
    variables = exported(CI_RUN.read_text())
    missing = sorted(name for name in switches() if not variables.get(name))
    assert missing == [], f".ci/run does not export {missing}"
    assert variables["CI"] == "true"
