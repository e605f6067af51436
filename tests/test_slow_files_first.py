"""The conftest's ``SLOW_FILES_FIRST`` names files that exist, each once: a renamed file would
drop out of the order silently."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SLOW_FILES_FIRST

ROOT = Path(__file__).resolve().parent.parent


def test_every_slow_file_exists_once() -> None:
    assert len(set(SLOW_FILES_FIRST)) == len(SLOW_FILES_FIRST)
    missing = [path for path in SLOW_FILES_FIRST if not (ROOT / path).is_file()]
    assert missing == []
