"""Issue 15, 2: all SQL lives in store/. Outside it, no module of src/ imports SQLAlchemy or
builds a statement (select, insert, update, delete, text, exec_driver_sql); a failure names the
file and the line."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "corridor"
STORE = SRC / "store"

SQL = re.compile(
    r"^\s*(from|import)\s+sqlalchemy\b"  # SQLAlchemy itself
    r"|\b(select|insert|update|delete|text)\s*\(\s*(t\.|schema\.|[a-z_]+\.c\.|\"|')"  # statements
    r"|\bexec_driver_sql\s*\("
    r"|\bwith_for_update\s*\("
    r"|^\s*(from|import)\s+corridor\.store(\.schema|\s+import\s+schema)\b",  # the tables
    re.MULTILINE,
)


def sql_outside_store() -> list[str]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if STORE in path.parents:
            continue
        text = path.read_text(encoding="utf-8")
        for match in SQL.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append(f"{path.relative_to(SRC.parent)}:{line}: {match.group(0).strip()}")
    return found


def test_no_sql_outside_store() -> None:
    assert sql_outside_store() == []


def test_the_check_sees_sql(tmp_path: Path) -> None:
    """A positive control: the pattern finds each kind of SQL it is meant to refuse."""
    samples = [
        "from sqlalchemy import select",
        "import sqlalchemy",
        "stmt = select(t.grants)",
        "conn.execute(update(schema.grants).values(x=1))",
        'conn.exec_driver_sql("SELECT 1")',
        "from corridor.store import schema",
    ]
    for sample in samples:
        assert SQL.search(sample), sample
    assert not SQL.search("selected = update_policy(options)")
