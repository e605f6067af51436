"""RS micro-benchmark (issue 6): verifying one DPoP-bound JWT access token with its proof,
in-process (no HTTP), as operations/s, next to the raw `cryptography` bound for the same
work (two ES256 verifications and one RFC 7638 thumbprint).

    .venv/bin/python -m bench.rs_micro [--seconds 0.5] [--rounds 9]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from corridor.core.b64 import b64url_decode, b64url_encode
from corridor.core.dpop import make_proof
from corridor.core.jose import SigningKey
from corridor.core.replay import MemoryReplayCache
from corridor.resource.guard import ResourceGuard, ResourceSettings

ISSUER = "https://as.example.org"
RESOURCE = "https://api.example.org"
URL = RESOURCE + "/accounts"


def setup() -> tuple[ResourceGuard, SigningKey, SigningKey, str]:
    as_key, dpop_key = SigningKey.generate("ES256"), SigningKey.generate("ES256")
    guard = ResourceGuard(
        ResourceSettings(
            resource=RESOURCE, authorization_servers=(ISSUER,), public_url=RESOURCE, dpop_nonce_required=False
        ),
        replay=MemoryReplayCache(),
    )
    keys = guard.issuers[ISSUER]
    keys._keys, keys._fetched_at = [as_key.public_jwk], time.time() + 1e9  # as if fetched; no HTTP here
    now = int(time.time())
    token = as_key.sign(
        {
            "iss": ISSUER,
            "sub": "u",
            "aud": RESOURCE,
            "exp": now + 3600,
            "iat": now,
            "jti": "j",
            "client_id": "c",
            "scope": "accounts",
            "cnf": {"jkt": dpop_key.thumbprint()},
        },
        "at+jwt",
    )
    return guard, as_key, dpop_key, token


def corridor_ops(seconds: float, fixture: tuple[ResourceGuard, SigningKey, SigningKey, str]) -> float:
    guard, _, dpop_key, token = fixture
    # Every request needs a fresh proof (the replay cache refuses a jti twice); made beforehand.
    proofs = [make_proof(dpop_key, "GET", URL, access_token=token) for _ in range(int(seconds * 20_000))]
    headers_base = [("authorization", f"DPoP {token}")]
    count, start = 0, time.process_time()
    while time.process_time() - start < seconds and count < len(proofs):
        guard.authenticate("GET", "/accounts", [*headers_base, ("dpop", proofs[count])], None)
        count += 1
    return count / (time.process_time() - start)


def raw_ops(seconds: float, fixture: tuple[ResourceGuard, SigningKey, SigningKey, str]) -> float:
    """The bound: two ES256 signature checks and one SHA-256 thumbprint, nothing else."""
    _, as_key, dpop_key, token = fixture
    proof = make_proof(dpop_key, "GET", URL, access_token=token)
    pairs = []
    for jws, key in ((token, as_key), (proof, dpop_key)):
        head, body, sig = jws.split(".")
        raw = b64url_decode(sig)
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        public = key.key.get_op_key("verify")
        pairs.append((public, der, f"{head}.{body}".encode()))
    jwk: dict[str, Any] = dpop_key.public_jwk_without_meta()
    members = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":")).encode()
    count, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        for public, der, data in pairs:
            public.verify(der, data, ec.ECDSA(hashes.SHA256()))
        b64url_encode(hashlib.sha256(members).digest())
        count += 1
    return count / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=0.5, help="length of each slice")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved corridor/raw slice pairs")
    args = parser.parse_args()
    fixture = setup()
    corridor_ops(0.2, fixture)  # warm the caches (parsed keys, compiled patterns)
    ours, bound = [], []
    for _ in range(args.rounds):  # interleaved, so drift on a shared machine hits both alike
        ours.append(corridor_ops(args.seconds, fixture))
        bound.append(raw_ops(args.seconds, fixture))
    ratios = sorted(a / b for a, b in zip(ours, bound, strict=True))
    print(
        json.dumps(
            {
                "corridor_ops_per_s": round(statistics.median(ours)),
                "raw_crypto_ops_per_s": round(statistics.median(bound)),
                "ratio_median": round(statistics.median(ratios), 3),
                "ratio_range": [round(ratios[0], 3), round(ratios[-1], 3)],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
