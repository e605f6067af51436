"""core/jose.py ``verify_with_keys_and_key``: the claims and the registered key that verified them
(issue 17: the request object's signer key goes into the evidence by its RFC 7638 thumbprint)."""

from __future__ import annotations

import pytest

from corridor.core.jose import (
    JoseFailure,
    SigningKey,
    jwk_thumbprint,
    read_header,
    verify_with_keys,
    verify_with_keys_and_key,
)


@pytest.mark.parametrize("alg", ["ES256", "PS256", "EdDSA"])
def test_returns_the_key_that_verified(alg: str) -> None:
    signer, other = SigningKey.generate(alg), SigningKey.generate(alg)
    # Both keys without kid: the verifier tries each candidate; the second one verifies.
    keys = [{k: v for k, v in key.public_jwk.items() if k != "kid"} for key in (other, signer)]
    token = signer.sign({"iss": "c", "n": 1}, "JWT")
    header = {k: v for k, v in read_header(token).items() if k != "kid"}
    claims, key = verify_with_keys_and_key(token, header, keys)
    assert claims == {"iss": "c", "n": 1} == verify_with_keys(token, header, keys)
    assert key is keys[1]
    assert jwk_thumbprint(key) == signer.thumbprint()


def test_refuses_like_verify_with_keys() -> None:
    signer, other = SigningKey.generate("ES256"), SigningKey.generate("ES256")
    token = signer.sign({"iss": "c"}, "JWT")
    with pytest.raises(JoseFailure):
        verify_with_keys_and_key(token, read_header(token), [{**other.public_jwk, "kid": signer.kid}])
    with pytest.raises(JoseFailure):
        verify_with_keys_and_key(token, read_header(token), [signer.public_jwk], algorithms=("PS256",))
