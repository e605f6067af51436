"""design.md 1: ``corridor.check`` imports ``corridor.client`` and ``corridor.core`` (and its
own modules), never the server, the store, the resource server or the audit layer: it must work
against any authorization server."""

from __future__ import annotations

import ast
from pathlib import Path

import corridor.check

ALLOWED = ("corridor.check", "corridor.client", "corridor.core", "corridor")


def test_check_imports_only_client_and_core() -> None:
    root = Path(corridor.check.__file__).parent
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if (
                    name.startswith("corridor")
                    and not any(name == allowed or name.startswith(allowed + ".") for allowed in ALLOWED[:-1])
                    and name != "corridor"
                ):
                    found.append(f"{path.relative_to(root)}: {name}")
    assert found == [], found
    assert len(list(root.rglob("*.py"))) > 10  # the walk saw the package


def test_every_module_names_its_suite_class_and_a_clause() -> None:
    """The issue: every module's docstring names the suite module and the clause it checks;
    the names are the suite's, in its order, each once."""
    from corridor.check.config import DEFAULT_VARIANT
    from corridor.check.module import MODULES
    from corridor.check.modules import ORDER
    from corridor.check.runner import modules_for

    modules_for(DEFAULT_VARIANT)  # imports (registers) them
    names = [spec.name for spec in MODULES if spec.profile == "plain_fapi"]
    assert sorted(names) == sorted(ORDER), set(names) ^ set(ORDER)
    # Issue 20: the client credentials plan runs some of the same suite modules, each once.
    credentials = [spec.name for spec in MODULES if spec.profile == "fapi_client_credentials_grant"]
    assert credentials and len(set(credentials)) == len(credentials) and set(credentials) <= set(ORDER)
    for spec in MODULES:
        doc = spec.run.__doc__ or ""
        if not spec.extra:
            assert spec.name.startswith("fapi2-security-profile-final-"), spec.name
            assert "FAPI2SPFinal" in doc, spec.name
        assert "FAPI2" in doc or "RFC" in doc, spec.name
        assert spec.clause, spec.name
