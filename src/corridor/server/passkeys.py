"""Passkeys: the AS as a WebAuthn Relying Party (W3C WebAuthn Level 3), on the ``webauthn``
library, for sign-in from the login page and for step-up (RFC 9470) to the ``passkey`` level.

Ceremonies belong to one interaction. Challenges are stateless and single use: 16 random
bytes, the issue time and an HMAC over both with the purpose ("create" or "get") and the
interaction id (WebAuthn 13.4.3: random, at least 16 bytes, checked by the RP). A challenge
is good for ``CHALLENGE_LIFETIME`` seconds and is spent in the replay cache when a ceremony
succeeds, so a captured response cannot be replayed. User verification is required, so one
passkey ceremony is two factors (possession + PIN or biometric): the ``passkey`` acr.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from corridor.core.b64 import b64url_decode, b64url_encode
from corridor.core.json_limits import check_json_limits
from corridor.core.rules import Rule
from corridor.store.sql import Row, Store

#: The acr a passkey ceremony gives (design.md 5b: password < mfa < passkey).
PASSKEY_ACR = "passkey"
#: How long a ceremony may take, in seconds (also the browser's ``timeout``).
CHALLENGE_LIFETIME = 300
#: WebAuthn 5.1: a credential ID is at most 1023 bytes; a posted response is bounded too.
MAX_CREDENTIAL_ID = 1023
MAX_RESPONSE_CHARS = 16_384
#: FAPI2 5.4.1 algorithms, plus RS256 which some platform authenticators still only offer.
ALGORITHMS = [
    COSEAlgorithmIdentifier.ECDSA_SHA_256,
    COSEAlgorithmIdentifier.EDDSA,
    COSEAlgorithmIdentifier.RSASSA_PSS_SHA_256,
    COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256,
]
_NONCE, _TIME, _MAC = 16, 8, 16
#: What the library raises on a malformed response: its own exceptions, and ValueError, which its
#: client-data parser lets out (UnicodeDecodeError on bytes that are not UTF-8); both become a
#: refusal. Anything else is a bug and stays a 500 (design.md 8).
_MALFORMED = (WebAuthnException, ValueError)


class PasskeyRefused(Exception):
    """A ceremony response that is not accepted; ``rule`` names the check for the audit trail."""

    def __init__(self, rule: str, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.rule = rule
        #: For the user; ``reason`` (the library's words) goes to the audit record only.
        self.message = message
        self.reason = (reason or message)[:300]  # the library may quote what was sent


@dataclass(frozen=True)
class Assertion:
    """A verified authentication: whose passkey it was and the counter it moved to."""

    passkey: Row
    sign_count: int
    backed_up: bool


def relying_party(issuer: str) -> tuple[str, str] | None:
    """The RP ID and origin of this issuer, or None when its host is an IP address
    (WebAuthn 5.1.4.1: an RP ID is a registrable domain; browsers refuse IP addresses)."""
    parts = urlsplit(issuer)
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    port = parts.port
    origin = f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, 443) else "")
    return host, origin


class Passkeys:
    """Registration and authentication ceremonies for one issuer, over the store's passkeys."""

    def __init__(self, store: Store, issuer: str, rp_name: str, mac_key: Callable[[], bytes]) -> None:
        self.store = store
        self.rp_name = rp_name
        self._party = relying_party(issuer)
        self._mac_key = mac_key

    @property
    def available(self) -> bool:
        return self._party is not None

    @property
    def rp_id(self) -> str:
        assert self._party is not None
        return self._party[0]

    @property
    def origin(self) -> str:
        assert self._party is not None
        return self._party[1]

    # -- challenges ------------------------------------------------------------------------

    def _mac(self, purpose: str, interaction_id: str, nonce_and_time: bytes) -> bytes:
        key = self._mac_key()
        assert key, "AuthorizationServer.start() loads the challenge key"
        message = f"{purpose}\0{interaction_id}\0".encode() + nonce_and_time
        return hmac.new(key, message, hashlib.sha256).digest()[:_MAC]

    def challenge(self, purpose: str, interaction_id: str, now: float) -> bytes:
        body = os.urandom(_NONCE) + struct.pack(">d", now)
        return body + self._mac(purpose, interaction_id, body)

    def _check_challenge(self, client_data: bytes, purpose: str, interaction_id: str, now: float) -> bytes:
        """The challenge the browser signed, if this AS made it for this purpose and interaction
        and it is still fresh (WebAuthn 7.1 step 8 / 7.2 step 12 compare it with ours)."""
        check_json_limits(client_data)  # issue 13 B5 (a ValueError: a refusal)
        challenge = parse_client_data_json(client_data).challenge
        body, mac = challenge[: _NONCE + _TIME], challenge[_NONCE + _TIME :]
        if len(challenge) != _NONCE + _TIME + _MAC or not hmac.compare_digest(
            mac, self._mac(purpose, interaction_id, body)
        ):
            section = "7.1" if purpose == "create" else "7.2"
            raise PasskeyRefused(
                f"WebAuthn {section} (challenge)", "This passkey answer is not for this page."
            )
        (issued,) = struct.unpack(">d", body[_NONCE:])
        if not issued - 5 <= now <= issued + CHALLENGE_LIFETIME:
            raise PasskeyRefused(
                Rule.WEBAUTHN_13_4_3_CHALLENGE_EXPIRED, "The passkey request expired; try again."
            )
        return challenge

    def _spend(self, challenge: bytes, now: float) -> None:
        """WebAuthn 13.4.3: a challenge is used once (one atomic insert in the replay cache)."""
        key = "webauthn:" + hashlib.sha256(challenge).hexdigest()
        if not self.store.replay.remember_once(key, now + CHALLENGE_LIFETIME + 10, now):
            raise PasskeyRefused(
                Rule.WEBAUTHN_13_4_3_CHALLENGE_REUSED, "This passkey answer was already used."
            )

    # -- options (what the page hands to navigator.credentials) ------------------------------

    def registration_options(self, user: Row, interaction_id: str, now: float) -> str:
        """WebAuthn 5.4: a discoverable credential with user verification, no attestation."""
        options = generate_registration_options(
            rp_id=self.rp_id,
            rp_name=self.rp_name,
            user_id=str(user["id"]).encode(),
            user_name=str(user["username"]),
            challenge=self.challenge("create", interaction_id, now),
            timeout=CHALLENGE_LIFETIME * 1000,
            attestation=AttestationConveyancePreference.NONE,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=self._descriptors(self.store.users.passkeys(user["id"])),
            supported_pub_key_algs=ALGORITHMS,
        )
        return options_to_json(options)

    def authentication_options(self, interaction_id: str, now: float, user_id: str | None = None) -> str:
        """WebAuthn 5.5: for a known user, their credentials; for sign-in, any discoverable one."""
        options = generate_authentication_options(
            rp_id=self.rp_id,
            challenge=self.challenge("get", interaction_id, now),
            timeout=CHALLENGE_LIFETIME * 1000,
            allow_credentials=self._descriptors(self.store.users.passkeys(user_id)) if user_id else [],
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        return options_to_json(options)

    @staticmethod
    def _descriptors(passkeys: list[Row]) -> list[PublicKeyCredentialDescriptor]:
        return [PublicKeyCredentialDescriptor(id=b64url_decode(p["credential_id"])) for p in passkeys]

    # -- ceremonies ---------------------------------------------------------------------------

    def register(self, response: str, user: Row, interaction_id: str, now: float) -> Row:
        """WebAuthn 7.1: verify a registration response and store the new passkey."""
        passkey = self.verify_registration(response, user, interaction_id, now)
        if not self.store.users.add_passkey(**passkey):
            raise PasskeyRefused(Rule.WEBAUTHN_7_1_STEP_25, "This passkey is already registered.")
        return passkey

    def verify_registration(self, response: str, user: Row, interaction_id: str, now: float) -> Row:
        """WebAuthn 7.1 up to step 25: the new passkey's row, verified and its challenge spent,
        for the caller to store (``register``, or with an enrolment link in one transaction)."""
        if len(response) > MAX_RESPONSE_CHARS:
            raise PasskeyRefused(Rule.WEBAUTHN_7_1_SIZE, "The passkey answer is too large.")
        try:
            check_json_limits(response, max_size=MAX_RESPONSE_CHARS)  # issue 13 B5
            credential = parse_registration_credential_json(response)
            challenge = self._check_challenge(
                credential.response.client_data_json, "create", interaction_id, now
            )
            verified = verify_registration_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=self.origin,
                require_user_verification=True,
                supported_pub_key_algs=ALGORITHMS,
            )
        except PasskeyRefused:
            raise
        except _MALFORMED as error:
            raise PasskeyRefused(
                Rule.WEBAUTHN_7_1, "The passkey could not be registered.", str(error)
            ) from None
        if len(verified.credential_id) > MAX_CREDENTIAL_ID:
            raise PasskeyRefused(Rule.WEBAUTHN_5_1_CREDENTIAL_ID, "The passkey's identifier is too long.")
        self._spend(challenge, now)
        passkey: Row = {
            "credential_id": b64url_encode(verified.credential_id),
            "user_id": user["id"],
            "public_key": b64url_encode(verified.credential_public_key),
            "sign_count": verified.sign_count,
            "aaguid": verified.aaguid,
            "transports": json.dumps([t.value for t in credential.response.transports or []]),
            "backed_up": verified.credential_backed_up,
            "created_at": now,
            "last_used_at": None,
        }
        return passkey

    def authenticate(
        self, response: str, interaction_id: str, now: float, user_id: str | None = None
    ) -> Assertion:
        """WebAuthn 7.2: verify an assertion; with ``user_id``, only that user's passkeys count."""
        if len(response) > MAX_RESPONSE_CHARS:
            raise PasskeyRefused(Rule.WEBAUTHN_7_2_SIZE, "The passkey answer is too large.")
        try:
            check_json_limits(response, max_size=MAX_RESPONSE_CHARS)  # issue 13 B5
            credential = parse_authentication_credential_json(response)
            challenge = self._check_challenge(
                credential.response.client_data_json, "get", interaction_id, now
            )
            raw_id = credential.raw_id
            passkey = (
                self.store.users.passkey(b64url_encode(raw_id)) if len(raw_id) <= MAX_CREDENTIAL_ID else None
            )
            # 7.2 step 6: the credential must belong to the user being signed in; when the user is
            # found from the credential (a discoverable one), its user handle must be that user's.
            if passkey is None or (user_id is not None and passkey["user_id"] != user_id):
                raise PasskeyRefused(
                    Rule.WEBAUTHN_7_2_STEP_6_UNKNOWN_CREDENTIAL, "This passkey is not registered here."
                )
            handle = credential.response.user_handle
            if (handle is None and user_id is None) or (
                handle is not None and not hmac.compare_digest(handle, str(passkey["user_id"]).encode())
            ):
                raise PasskeyRefused(
                    Rule.WEBAUTHN_7_2_STEP_6_USER_HANDLE, "This passkey belongs to another account."
                )
            verified = verify_authentication_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=self.origin,
                credential_public_key=b64url_decode(passkey["public_key"]),
                credential_current_sign_count=int(passkey["sign_count"]),
                require_user_verification=True,
            )
        except PasskeyRefused:
            raise
        except _MALFORMED as error:
            raise PasskeyRefused(Rule.WEBAUTHN_7_2, "The passkey did not sign you in.", str(error)) from None
        self._spend(challenge, now)
        # WebAuthn 6.1.1: the counter only moves forward; a racing or cloned use loses here.
        if not self.store.users.use_passkey(
            passkey["credential_id"], int(passkey["sign_count"]), verified.new_sign_count, now
        ):
            raise PasskeyRefused(
                Rule.WEBAUTHN_6_1_1_SIGNATURE_COUNTER, "This passkey was just used elsewhere."
            )
        return Assertion(passkey, verified.new_sign_count, verified.credential_backed_up)
