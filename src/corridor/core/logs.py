"""Where log lines go and how they look (issue 18; docs/observability.md): one handler on the root
logger, which Corridor's loggers and uvicorn's (configured with ``log_config=None``,
transport/listeners.py) all reach, so every line has the same format.

``text``: ``time LEVEL logger: message``, control and bidirectional formatting characters escaped
(core/text.py). ``json``: one JSON object per line (python-json-logger) with ``time`` (ISO 8601,
UTC), ``level``, ``logger``, ``message``, ``request_id`` when a request is being served (the id its
evidence records carry), and the fields a line adds (the access line: ``method``, ``path`` without
query, ``status``, ``latency_ms``, ``client_address``, ``client_id``, ``rule``, ``endpoint``).
Strings are JSON-escaped, non-ASCII as ``\\uXXXX``, so no value can start a line or reorder one.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Literal, Protocol, TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from corridor.core.request_context import current_facts
from corridor.core.text import LOG_FILTER

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LogSettings(Protocol):
    @property
    def log_level(self) -> str: ...
    @property
    def log_format(self) -> Literal["text", "json"] | None: ...
    @property
    def dev_mode(self) -> bool: ...


class RequestIdFilter(logging.Filter):
    """Every record logged while a request is served names its request id."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            facts = current_facts()
            record.request_id = facts.request_id if facts is not None else None
        return True


class _JsonLines(JsonFormatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


def log_format(settings: LogSettings) -> Literal["text", "json"]:
    """``log_format``, or unset: text in dev mode, json otherwise."""
    return settings.log_format or ("text" if settings.dev_mode else "json")


def formatter(kind: Literal["text", "json"]) -> logging.Formatter:
    if kind == "json":
        return _JsonLines(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            # uvicorn's extra copy of its message with ANSI colours: noise in a JSON line.
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
            json_ensure_ascii=True,
        )
    return logging.Formatter(TEXT_FORMAT)


def configure_logging(settings: LogSettings, stream: TextIO | None = None) -> logging.Handler:
    """Replace the root logger's handlers with one that writes ``settings.log_format`` lines to
    ``stream`` (stderr), at ``settings.log_level``; returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(log_format(settings)))
    handler.addFilter(LOG_FILTER)  # every record, whichever logger it came through
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    return handler
