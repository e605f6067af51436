"""The sender-binding module on its own (corridor.resource.binding): header reading and the
challenge, without a server (the HTTP behaviour is in test_guard.py and the UserInfo tests)."""

from __future__ import annotations

import pytest

from corridor.core.rules import Rule
from corridor.resource.binding import ALGS, challenge, read_authorization
from corridor.resource.tokens import ResourceError


@pytest.mark.parametrize(
    ("values", "expected"), [(["DPoP t"], ("dpop", "t")), (["bearer  t "], ("bearer", "t"))]
)
def test_read_authorization(values: list[str], expected: tuple[str, str]) -> None:
    assert read_authorization(values) == expected


@pytest.mark.parametrize(
    ("values", "elsewhere", "error", "status"),
    [
        ([], False, "", 401),
        (["DPoP a", "DPoP b"], False, "invalid_request", 400),
        (["Basic a"], False, "invalid_request", 400),
        (["DPoP a b"], False, "invalid_request", 400),
        (["DPoP"], False, "invalid_request", 400),
        (["DPoP a"], True, "invalid_request", 401),
    ],
)
def test_read_authorization_refusals(values: list[str], elsewhere: bool, error: str, status: int) -> None:
    with pytest.raises(ResourceError) as refused:
        read_authorization(values, token_elsewhere=elsewhere)
    assert (refused.value.error, refused.value.status) == (error, status)


def test_bare_challenges() -> None:
    assert challenge(None, bare_schemes=("DPoP",)) == [("WWW-Authenticate", f'DPoP algs="{ALGS}"')]
    assert challenge(None, resource_metadata="https://api/m") == [
        ("WWW-Authenticate", f'DPoP algs="{ALGS}", resource_metadata="https://api/m"'),
        ("WWW-Authenticate", 'Bearer resource_metadata="https://api/m"'),
    ]


def test_error_challenge_with_nonce() -> None:
    error = ResourceError("use_dpop_nonce", "a nonce", rule=Rule.RFC_9449_9, headers={"DPoP-Nonce": "n"})
    assert challenge(error) == [
        ("WWW-Authenticate", f'DPoP error="use_dpop_nonce", error_description="a nonce", algs="{ALGS}"'),
        ("DPoP-Nonce", "n"),
    ]
    bearer = ResourceError(
        "insufficient_scope", "", rule="x", status=403, scheme="Bearer", params={"scope": "a"}
    )
    assert challenge(bearer) == [("WWW-Authenticate", 'Bearer error="insufficient_scope", scope="a"')]
