"""The checker's JARM reading (corridor.check.jarm) on responses made here, good and bad, and the
configuration's Message Signing variants (corridor.check.config)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from corridor.check import jwt
from corridor.check.config import ConfigError, parse_config, select_variants
from corridor.check.jarm import JarmProblem, read
from corridor.check.outcome import Landing, callback
from corridor.core.jose import SigningKey

ISSUER = "https://as.example.com"
CLIENT = "c1"
REDIRECT = "https://client.example/cb?dummy1=lorem"
AS_KEY = SigningKey.generate("ES256")
JWKS = {"keys": [AS_KEY.public_jwk]}


def response(
    claims: dict[str, Any] | None = None, *, key: Any = None, header: Any = None, **query: str
) -> str:
    now = int(time.time())
    body = jwt.merge(
        {"iss": ISSUER, "aud": CLIENT, "exp": now + 120, "code": "c" * 43, "state": "s1"}, claims or {}
    )
    private = key or AS_KEY.private_jwk()
    head = jwt.merge({"alg": "ES256", "kid": AS_KEY.public_jwk["kid"]}, header or {})
    token = jwt.sign(private, body, head)
    return REDIRECT + "&" + urlencode({"response": token, **query})


def verify(url: str, **kwargs: Any) -> Any:
    return read(
        callback(url, REDIRECT),
        redirect_uri=REDIRECT,
        issuer=ISSUER,
        client_id=CLIENT,
        jwks=JWKS,
        now=time.time(),
        **kwargs,
    )


def test_a_good_response_gives_its_parameters_with_iss() -> None:
    read_back = verify(response())
    assert read_back.result.landing is Landing.SUCCESS
    assert read_back.result.params == {"iss": ISSUER, "code": "c" * 43, "state": "s1"}
    assert not read_back.warnings
    error = verify(response({"code": jwt.DROP, "error": "access_denied"}))
    assert error.result.landing is Landing.ERROR_REDIRECT and error.result.error == "access_denied"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (REDIRECT + "&code=abc&state=s1&iss=" + ISSUER, "not a JARM response"),
        (response({"iss": jwt.DROP}), "has no iss"),
        (response({"iss": "https://other.example"}), "is not the issuer"),
        (response({"aud": "c2"}), "is not the client_id"),
        (response({"exp": int(time.time()) - 600}), "expired"),
        (response({"exp": jwt.DROP}), "no numeric exp"),
        (response(iss=ISSUER), "outside the JWT"),
        (response(header={"kid": jwt.DROP}), "no kid"),
        (response(header={"kid": "other"}), "no key with kid"),
        (response(key=SigningKey.generate("ES256").private_jwk()), "does not verify"),
    ],
)
def test_a_bad_response_is_a_problem(url: str, reason: str) -> None:
    with pytest.raises(JarmProblem, match=reason):
        verify(url)


def test_an_unlisted_alg_is_a_problem() -> None:
    rsa = SigningKey.generate("PS256")
    url = response(key=rsa.private_jwk(), header={"alg": "RS256", "kid": rsa.public_jwk["kid"]})
    with pytest.raises(JarmProblem, match="'RS256', not PS256/ES256/EdDSA"):
        read(
            callback(url, REDIRECT),
            redirect_uri=REDIRECT,
            issuer=ISSUER,
            client_id=CLIENT,
            jwks={"keys": [rsa.public_jwk]},
            now=time.time(),
        )


def test_a_plain_error_only_where_allowed_and_a_long_life_warns() -> None:
    plain = REDIRECT + "&error=invalid_request_object&iss=" + ISSUER
    with pytest.raises(JarmProblem):
        verify(plain)
    assert verify(plain, allow_plain_error=True).plain
    with pytest.raises(JarmProblem):  # a plain success never
        verify(REDIRECT + "&code=abc", allow_plain_error=True)
    assert "10 minutes" in verify(response({"exp": int(time.time()) + 3600})).warnings[0]


def _config(tmp_path: Path, variants: list[str], *, jwk: bool = True, plan: str | None = None) -> Any:
    (tmp_path / "k.json").write_text(json.dumps(SigningKey.generate("ES256").private_jwk()))
    client: dict[str, Any] = {"redirect_uri": REDIRECT, "scope": "openid accounts", "variants": variants}
    if jwk:
        client["jwk_file"] = "k.json"
    data: dict[str, Any] = {
        "issuer": ISSUER,
        "login": {"method": "manual"},
        "clients": [{**client, "client_id": "a"}, {**client, "client_id": "b"}],
    }
    if plan:
        data["plan"] = plan
    return parse_config(data, tmp_path)


def test_message_signing_variants_in_the_configuration(tmp_path: Path) -> None:
    config = _config(tmp_path, ["private_key_jwt+dpop+jar+jarm"], plan="message-signing")
    (variant,) = select_variants(config, all_variants=False, client_auth=None, sender=None, openid=None)
    assert variant.signed and variant.jarm and variant.pair == "private_key_jwt+dpop+jar+jarm"
    assert len(config.clients_for(variant)) == 2
    (plain,) = select_variants(
        config, all_variants=False, client_auth=None, sender=None, openid=None, plan="security-profile"
    )
    with pytest.raises(ConfigError, match="registered for private_key_jwt\\+dpop "):
        config.clients_for(plain)
    assert len(select_variants(config, all_variants=True, client_auth=None, sender=None, openid=None)) == 8
    with pytest.raises(ConfigError, match="unknown variant"):
        _config(tmp_path, ["private_key_jwt+dpop+jar"])
    with pytest.raises(ConfigError, match="plan must be one of"):
        _config(tmp_path, ["private_key_jwt+dpop"], plan="signing")
