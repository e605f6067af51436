"""A software WebAuthn authenticator and client (the user's device and browser, which we do not
own), so the AS's ceremony checks can be driven over HTTP with exact, hostile inputs.
Headless Chromium's virtual authenticator covers the real browser (tests/server/test_passkeys_chromium.py).

It speaks the JSON form the login pages post (WebAuthn L3 5.1.8/5.1.9, base64url members), with
"none" attestation, an ES256 key per credential and a signature counter.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import struct
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from webauthn.helpers import encode_cbor

from corridor.core.b64 import b64url_decode, b64url_encode

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40
_FORM = re.compile(r'<form method="post" action="([^"]+)" class="passkey">(.*?)</form>', re.S)
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_THEN = re.compile(r'name="then" value="([^"]+)"')
_OPTIONS = re.compile(r'data-passkey="(create|get)" data-options="([^"]+)"')


@dataclass
class PasskeyForm:
    """The passkey ceremony on a page: where it posts, its hidden fields and the options."""

    action: str
    fields: dict[str, str]
    ceremony: str
    options: dict[str, Any]


def passkey_form(page: httpx.Response) -> PasskeyForm:
    found = _FORM.search(page.text)
    assert found, page.text
    body = found.group(2)
    csrf, options = _CSRF.search(body), _OPTIONS.search(body)
    assert csrf and options, body
    fields = {"csrf": html.unescape(csrf.group(1))}
    if then := _THEN.search(body):
        fields["then"] = then.group(1)
    return PasskeyForm(
        html.unescape(found.group(1)), fields, options.group(1), json.loads(html.unescape(options.group(2)))
    )


@dataclass
class Credential:
    credential_id: bytes
    key: ec.EllipticCurvePrivateKey
    user_handle: bytes
    sign_count: int = 0


@dataclass
class Authenticator:
    """One device: its credentials (discoverable), user verification and counter behaviour."""

    origin: str
    rp_id: str
    user_verified: bool = True
    counter_step: int = 1
    credentials: list[Credential] = field(default_factory=list)

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        data = {"type": kind, "challenge": challenge, "origin": origin or self.origin, "crossOrigin": False}
        return json.dumps(data, separators=(",", ":")).encode()

    def _flags(self, extra: int = 0) -> int:
        return UP | (UV if self.user_verified else 0) | extra

    def create(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        kind: str = "webauthn.create",
        challenge: str | None = None,
    ) -> str:
        """navigator.credentials.create(): a new ES256 credential, its registration response."""
        key = ec.generate_private_key(ec.SECP256R1())
        credential = Credential(os.urandom(32), key, b64url_decode(options["user"]["id"]))
        numbers = key.public_key().public_numbers()
        cose = encode_cbor(
            {1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")}
        )
        attested = (
            bytes(16) + struct.pack(">H", len(credential.credential_id)) + credential.credential_id + cose
        )
        auth_data = (
            hashlib.sha256((rp_id or self.rp_id).encode()).digest()
            + bytes([self._flags(AT | BE | BS)])
            + struct.pack(">I", credential.sign_count)
            + attested
        )
        client_data = self._client_data(kind, challenge or options["challenge"], origin)
        attestation = encode_cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
        self.credentials.append(credential)
        cid = b64url_encode(credential.credential_id)
        return json.dumps(
            {
                "id": cid,
                "rawId": cid,
                "type": "public-key",
                "response": {
                    "clientDataJSON": b64url_encode(client_data),
                    "attestationObject": b64url_encode(attestation),
                    "transports": ["internal"],
                },
                "authenticatorAttachment": "platform",
                "clientExtensionResults": {},
            }
        )

    def get(
        self,
        options: dict[str, Any],
        *,
        credential: Credential | None = None,
        origin: str | None = None,
        rp_id: str | None = None,
        kind: str = "webauthn.get",
        user_handle: bytes | None = None,
        advance: bool = True,
    ) -> str:
        """navigator.credentials.get(): an assertion by ``credential`` (default: the newest)."""
        credential = credential or self.credentials[-1]
        if advance:
            credential.sign_count += self.counter_step
        auth_data = (
            hashlib.sha256((rp_id or self.rp_id).encode()).digest()
            + bytes([self._flags(BE | BS)])
            + struct.pack(">I", credential.sign_count)
        )
        client_data = self._client_data(kind, options["challenge"], origin)
        signature = credential.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        cid = b64url_encode(credential.credential_id)
        return json.dumps(
            {
                "id": cid,
                "rawId": cid,
                "type": "public-key",
                "response": {
                    "clientDataJSON": b64url_encode(client_data),
                    "authenticatorData": b64url_encode(auth_data),
                    "signature": b64url_encode(signature),
                    "userHandle": b64url_encode(
                        credential.user_handle if user_handle is None else user_handle
                    ),
                },
                "authenticatorAttachment": "platform",
                "clientExtensionResults": {},
            }
        )
