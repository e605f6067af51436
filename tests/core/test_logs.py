"""Issue 18: core/logs.py, the one root handler: text lines escaped whichever logger wrote them,
JSON lines with the request id, the default format by mode."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import pytest

from corridor.core.logs import configure_logging, log_format
from corridor.core.request_context import request_facts


@dataclass
class Config:
    log_format: Literal["text", "json"] | None = None
    log_level: str = "info"
    dev_mode: bool = False


@pytest.fixture
def root_handlers() -> Iterator[None]:
    """configure_logging replaces the root handlers: put pytest's back afterwards."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved:
        root.addHandler(handler)
    root.setLevel(level)


def test_the_default_format_follows_the_mode() -> None:
    assert log_format(Config(dev_mode=True)) == "text"
    assert log_format(Config(dev_mode=False)) == "json"
    assert log_format(Config(log_format="text", dev_mode=False)) == "text"
    assert log_format(Config(log_format="json", dev_mode=True)) == "json"


def test_text_lines_are_escaped_whatever_logger_wrote_them(root_handlers: None) -> None:
    stream = io.StringIO()
    configure_logging(Config(log_format="text"), stream)
    logging.getLogger("some.library").warning("path=%s", "/a\nforged line\x1b[31m\u202e")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].endswith(
        "WARNING some.library: path=/a\\x0aforged line\\x1b[31m\\u202e"
    )


def test_json_lines_carry_the_request_id_and_the_fields(root_handlers: None) -> None:
    stream = io.StringIO()
    configure_logging(Config(log_format="json"), stream)
    log = logging.getLogger("corridor.test")
    with request_facts() as facts:
        log.info("served", extra={"path": "/par\n", "status": 201, "color_message": "\x1b[31mx"})
    log.info("outside")
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["request_id"] == facts.request_id and outside["request_id"] is None
    assert inside["level"] == "INFO" and inside["logger"] == "corridor.test" and inside["message"] == "served"
    assert inside["path"] == "/par\n" and inside["status"] == 201 and "color_message" not in inside
    assert inside["time"].endswith("Z")
