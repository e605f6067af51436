"""A tiny HTTP(S) server for tests that need a peer we do not own the code of to be simple:
a client's jwks_uri, a fake AS's metadata, a loopback redirect URI. Each GET (or POST, its body
read and kept) is answered by a function of the path returning ``(status, content_type, body)``."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

Answer = Callable[[str], tuple[int, str, bytes]]


@dataclass(frozen=True)
class Seen:
    """One request the stub answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@contextmanager
def stub_server(
    answer: Answer, tls: tuple[Path, Path] | None = None, seen: list[Seen] | None = None
) -> Iterator[str]:
    """Serve ``answer`` on 127.0.0.1 (over TLS with ``(cert_file, key_file)`` if given); yields
    the base URL (https://localhost:PORT or http://127.0.0.1:PORT). ``seen`` gets every request
    (header names in lower case)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if seen is not None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                seen.append(Seen(self.command, self.path, headers, body))
            status, content_type, body = answer(self.path)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    try:
        yield f"https://localhost:{port}" if tls is not None else f"http://127.0.0.1:{port}"
    finally:
        httpd.shutdown()
