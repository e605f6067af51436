"""Issue 15: no file in src/ over 450 lines without a comment at its top saying why."""

from __future__ import annotations

from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "corridor"
LIMIT = 450
MARK = "# Why over 450 lines:"


def long_files_without_a_reason(root: Path) -> list[str]:
    """The Python files under ``root`` longer than LIMIT lines whose first line is not MARK."""
    found = []
    for path in sorted(root.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) > LIMIT and not (lines and lines[0].startswith(MARK)):
            found.append(f"{path.relative_to(root.parent)}: {len(lines)} lines")
    return found


def test_no_source_file_is_long_without_saying_why() -> None:
    assert long_files_without_a_reason(SRC) == []


def test_the_rule_finds_a_long_file_and_accepts_a_reason(tmp_path: Path) -> None:
    body = "x = 1\n" * (LIMIT + 1)
    (tmp_path / "long.py").write_text(body)
    (tmp_path / "short.py").write_text("x = 1\n" * LIMIT)
    (tmp_path / "explained.py").write_text(f"{MARK} a table of data.\n{body}")
    assert long_files_without_a_reason(tmp_path) == [f"{tmp_path.name}/long.py: {LIMIT + 1} lines"]
