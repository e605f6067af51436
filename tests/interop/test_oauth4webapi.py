"""Interop: panva's oauth4webapi (a certified FAPI 2.0 client, Node) drives the whole flow
against our AS over HTTPS: discovery, PAR with PKCE S256, private_key_jwt, DPoP with the
server's nonce, the iss and state checks on the authorization response, the code exchange
with ID token validation, userinfo and a refresh. The test plays the user in between.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.interop.conftest import Consent
from tests.support import Driver, decode_jwt

HERE = Path(__file__).parent
SCRIPT = HERE / "oauth4webapi_flow.mjs"
READ_TIMEOUT = 20.0
SCOPE = "openid profile offline_access accounts"

# Node and npm are on every machine and `make test` runs `npm ci` here: a missing peer is a
# failure, never a skip.
NODE = shutil.which("node")


class NodeFlow:
    """The script as a child process, with a timeout on every line read."""

    def __init__(self, env: dict[str, str]) -> None:
        assert NODE is not None
        self.process = subprocess.Popen(
            [NODE, SCRIPT.name],
            cwd=HERE,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str | None] = []
        out, err = self.process.stdout, self.process.stderr
        assert out is not None and err is not None
        for stream, sink in ((out, self.lines.put), (err, self.stderr.append)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    @staticmethod
    def _pump(stream: IO[str], sink: Callable[[str | None], None]) -> None:
        for line in stream:
            sink(line)
        sink(None)  # end of stream

    def read(self) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=READ_TIMEOUT)
        except queue.Empty:
            pytest.fail(f"no output from the script within {READ_TIMEOUT} s; {self.diagnostics()}")
        if line is None:
            self.process.wait(5)
            pytest.fail(f"the script ended early; {self.diagnostics()}")
        message = json.loads(line)
        assert isinstance(message, dict), line
        if "error" in message:
            pytest.fail(f"the script failed: {json.dumps(message['error'])}; {self.diagnostics()}")
        return message

    def write(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def diagnostics(self) -> str:
        return f"exit status {self.process.poll()}, stderr: {''.join(s for s in self.stderr if s)!r}"

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def node_flow(driver: Driver) -> Iterator[tuple[NodeFlow, Any]]:
    client = driver.add_client()
    env = {
        **os.environ,
        "NODE_EXTRA_CA_CERTS": str(driver.as_.tls.ca_file),
        "CORRIDOR_ISSUER": driver.issuer,
        "CORRIDOR_CLIENT_ID": client.client_id,
        "CORRIDOR_CLIENT_JWK": json.dumps(client.key.private_jwk()),
        "CORRIDOR_REDIRECT_URI": client.redirect_uri,
        "CORRIDOR_SCOPE": SCOPE,
    }
    flow = NodeFlow(env)
    try:
        yield flow, client
    finally:
        flow.close()


def test_oauth4webapi_par_dpop_private_key_jwt_flow(
    driver: Driver, consent: Consent, node_flow: tuple[NodeFlow, Any]
) -> None:
    flow, client = node_flow
    issuer = driver.issuer
    username = driver.add_user()

    # After discovery and PAR: the front-channel request carries only client_id and request_uri.
    authorization_url = flow.read()["authorization_url"]
    parts = urlsplit(authorization_url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == issuer + "/authorize"
    query = parse_qsl(parts.query)
    assert sorted(name for name, _ in query) == ["client_id", "request_uri"]
    assert dict(query)["client_id"] == client.client_id
    assert dict(query)["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")

    callback = consent(authorization_url, username)
    assert dict(parse_qsl(urlsplit(callback).query))["iss"] == issuer
    flow.write(callback)

    result = flow.read()["result"]
    assert flow.process.wait(10) == 0, flow.diagnostics()

    assert result["issuer"] == issuer
    assert result["callback_iss"] == issuer
    assert result["request_uri"] == dict(query)["request_uri"]
    # Our server demanded its DPoP nonce once (at PAR); the library kept it afterwards.
    assert result["retries"] == {"par": 1}

    assert result["token_type"] == "DPoP"
    assert result["refresh_token_present"] is True
    _, claims = decode_jwt(result["access_token"])
    assert claims["cnf"] == {"jkt": result["dpop_jkt"]}
    assert claims["client_id"] == client.client_id
    assert claims["iss"] == issuer
    assert claims["scope"] == SCOPE

    id_claims = result["id_token_claims"]
    assert id_claims["iss"] == issuer
    assert id_claims["aud"] == client.client_id
    assert id_claims["sub"] == claims["sub"]

    assert result["userinfo"]["sub"] == claims["sub"]
    assert result["userinfo"]["preferred_username"] == username

    assert result["refreshed_token_type"] == "DPoP"
    assert result["refreshed_access_token"] != result["access_token"]
    _, refreshed = decode_jwt(result["refreshed_access_token"])
    assert refreshed["cnf"] == {"jkt": result["dpop_jkt"]}
    assert refreshed["sub"] == claims["sub"]
