"""``corridor login``: one FAPI 2.0 flow by hand, with a loopback redirect URI (RFC 8252 7.3)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from corridor.client.flow import FapiClient, TokenSet

PAGE = b"""<!doctype html><meta charset="utf-8"><title>Corridor login</title>
<p>The authorization response reached <code>corridor login</code>. You can close this tab.</p>"""


class LoopbackCallback:
    """Receives exactly one authorization response on http://127.0.0.1:PORT/callback."""

    def __init__(self, port: int = 0) -> None:
        received: dict[str, str] = {}
        done = threading.Event()
        bound: list[int] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if not self.path.startswith("/callback?") or done.is_set():
                    self.send_response(404)
                    self.end_headers()
                    return
                received["url"] = f"http://127.0.0.1:{bound[0]}{self.path}"
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Security-Policy", "default-src 'none'")
                self.send_header("Referrer-Policy", "no-referrer")  # the code must not leak onward
                self.end_headers()
                self.wfile.write(PAGE)
                done.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", port), Handler)
        bound.append(self.server.server_port)
        self.redirect_uri = f"http://127.0.0.1:{self.server.server_port}/callback"
        self._received, self._done = received, done
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def wait(self, timeout: float) -> str | None:
        self._done.wait(timeout)
        self.server.shutdown()
        return self._received.get("url")


def redacted(tokens: TokenSet, show: bool) -> dict[str, Any]:
    """The token response, with credentials shortened unless asked for (no secrets on screens or logs)."""
    body = dict(tokens.raw)
    if not show:
        for name in ("access_token", "refresh_token", "id_token"):
            if isinstance(body.get(name), str):
                body[name] = body[name][:8] + "…(redacted, --show-tokens to print)"
    if tokens.id_token_claims is not None:
        body["id_token_claims"] = dict(tokens.id_token_claims)
    return body


def read_authorization_details(value: str) -> list[dict[str, Any]]:
    """``JSON`` or ``@FILE`` as a command line gives it: RFC 9396 2, a non-empty JSON array of
    objects (the AS checks each entry against its type's schema at PAR). ValueError says why not."""
    text = value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read {value[1:]}: {exc}") from exc
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON ({exc})") from exc
    if not isinstance(parsed, list) or not parsed or not all(isinstance(e, dict) for e in parsed):
        raise ValueError("must be a non-empty JSON array of objects (RFC 9396 2)")
    return parsed


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


__all__ = ["FapiClient", "LoopbackCallback", "read_authorization_details", "redacted", "to_json"]
