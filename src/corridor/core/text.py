"""Characters that must never reach a reader raw (issue 13 E1, E3; design.md 5c).

A newline in a logged path starts a forged line; an ANSI escape recolours or erases a terminal;
a bidirectional formatting character (U+202E RIGHT-TO-LEFT OVERRIDE and its kin, Unicode UAX #9)
reorders what a page or a trace shows ("Merchant Ato 9.00 EUR"). Values are stored exactly as
received; every rendering for a person (log lines, the text trace, HTML pages) shows these
characters escaped, with :func:`escape_controls`, the one escaping function (log lines through
:func:`escaping_logger`).
"""

from __future__ import annotations

import logging
import re

#: C0 controls, DEL, C1 controls (U+0080-U+009F), the line and paragraph separators, and the
#: bidirectional formatting characters: ALM, LRM, RLM, LRE/RLE/PDF/LRO/RLO, LRI/RLI/FSI/PDI.
UNSAFE_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def has_unsafe_characters(text: str) -> bool:
    """Issue 13 E3: whether ``text`` carries a control or bidirectional formatting character."""
    return UNSAFE_CHARACTERS.search(text) is not None


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """Issue 13 E1: ``text`` with every unsafe character written as a visible escape
    (``\\n`` becomes ``\\x0a``, U+202E becomes ``\\u202e``); everything else unchanged."""
    return UNSAFE_CHARACTERS.sub(_escape, text)


class EscapeControlsFilter(logging.Filter):
    """Issue 13 E1: every log record's message with its unsafe characters escaped, so a newline
    or an ANSI escape from a request (a path, a client_id) cannot start or recolour a line."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call is the handler's to report; never lose the record
            return True
        escaped = escape_controls(message)
        if escaped != message:
            record.msg, record.args = escaped, None
        return True


#: The one filter instance, attached to every logger Corridor writes to (and uvicorn's).
LOG_FILTER = EscapeControlsFilter()


def escaping_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with :data:`LOG_FILTER` attached (once). A logger's filters see
    only the records logged through it, so each logger that writes is made through here."""
    logger = logging.getLogger(name)
    if LOG_FILTER not in logger.filters:
        logger.addFilter(LOG_FILTER)
    return logger
