"""Reading form-encoded requests strictly (RFC 6749 3.1: no parameter twice)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

from corridor.core.errors import OAuthError
from corridor.core.rules import Rule

#: Largest request body accepted by any endpoint.
MAX_BODY = 64 * 1024
MAX_FIELDS = 64
#: RFC 8707 2.1 lets ``resource`` repeat; nothing else may.
REPEATABLE = frozenset({"resource"})


class Form(dict[str, str]):
    """Single-valued parameters, plus the list of repeatable ones."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        super().__init__()
        self.multi: dict[str, list[str]] = {}
        for name, value in pairs:
            if name in REPEATABLE:
                self.multi.setdefault(name, []).append(value)
                continue
            if name in self:
                raise OAuthError("invalid_request", f"parameter {name!r} is repeated", rule=Rule.RFC_6749_3_1)
            self[name] = value


def parse_pairs(text: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(
            text, keep_blank_values=False, strict_parsing=False, errors="strict", max_num_fields=MAX_FIELDS
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise OAuthError(
            "invalid_request", "the parameters cannot be parsed", rule=Rule.RFC_6749_3_1
        ) from exc


async def read_form(request: Request) -> Form:
    """The body of a POST as ``application/x-www-form-urlencoded`` (RFC 6749 4.1.3)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise OAuthError(
            "invalid_request", "the body must be application/x-www-form-urlencoded", rule=Rule.RFC_6749_4_1_3
        )
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise OAuthError(
                "invalid_request", "the request body is too large", rule=Rule.RFC_6749_3_1, status=413
            )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OAuthError("invalid_request", "the body is not UTF-8", rule=Rule.RFC_6749_B) from exc
    return Form(parse_pairs(text))
