"""The WWW-Authenticate parser (RFC 9110 11.6.1) on hand-made header values: several
challenges in one field and across fields, quoted strings with escaped quotes and commas,
token68, case-insensitive schemes and parameter names, and malformed input."""

from __future__ import annotations

import httpx

from corridor.check.outcome import TOKEN68, challenge, parse_challenges, www_authenticate


def test_one_dpop_challenge_as_corridor_and_oidc_provider_send_it() -> None:
    value = 'DPoP error="invalid_dpop_proof", error_description="bad htu", algs="ES256 PS256 EdDSA"'
    assert parse_challenges(value) == [
        ("DPoP", {"error": "invalid_dpop_proof", "error_description": "bad htu", "algs": "ES256 PS256 EdDSA"})
    ]


def test_several_challenges_in_one_field() -> None:
    # RFC 9110 11.6.1's own example, plus a lone scheme and a token68 one.
    value = (
        'Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple", '
        "Negotiate, Basic2 dXNlcjpwdw==, Bearer"
    )
    assert parse_challenges(value) == [
        ("Newauth", {"realm": "apps", "type": "1", "title": 'Login to "apps"'}),
        ("Basic", {"realm": "simple"}),
        ("Negotiate", {}),
        ("Basic2", {TOKEN68: "dXNlcjpwdw=="}),
        ("Bearer", {}),
    ]


def test_quoted_strings_keep_commas_equals_and_escaped_quotes() -> None:
    value = (
        'DPoP error="invalid_token", error_description="say \\"no\\", then, a=b", '
        'algs="ES256", Bearer realm="x, y"'
    )
    assert parse_challenges(value) == [
        ("DPoP", {"error": "invalid_token", "error_description": 'say "no", then, a=b', "algs": "ES256"}),
        ("Bearer", {"realm": "x, y"}),
    ]


def test_token68_forms() -> None:
    assert parse_challenges("Basic YWxhZGRpbjpvcGVuc2VzYW1l") == [
        ("Basic", {TOKEN68: "YWxhZGRpbjpvcGVuc2VzYW1l"})
    ]
    assert parse_challenges("Negotiate a+b/c-d._~==  , Bearer") == [
        ("Negotiate", {TOKEN68: "a+b/c-d._~=="}),
        ("Bearer", {}),
    ]
    # "abc=" alone is a token68; "abc=def" is a parameter.
    assert parse_challenges("X abc=") == [("X", {TOKEN68: "abc="})]
    assert parse_challenges("X abc=def") == [("X", {"abc": "def"})]


def test_whitespace_around_equals_and_empty_list_elements() -> None:
    # BWS around "=" (RFC 9110 11.2) and empty elements of a list (RFC 9110 5.6.1).
    value = ' ,  Bearer realm = "api" ,, error =invalid_token ,  , DPoP algs= "ES256"  '
    assert parse_challenges(value) == [
        ("Bearer", {"realm": "api", "error": "invalid_token"}),
        ("DPoP", {"algs": "ES256"}),
    ]


def test_scheme_and_parameter_names_are_case_insensitive() -> None:
    headers = httpx.Headers([("WWW-Authenticate", 'dpop ERROR="use_dpop_nonce", Error="second"')])
    assert www_authenticate(headers) == [("dpop", {"error": "use_dpop_nonce"})]  # the first one wins
    assert challenge(headers, "DPoP") == {"error": "use_dpop_nonce"}
    assert challenge(headers, "Bearer") is None


def test_challenges_across_several_fields_in_order() -> None:
    headers = httpx.Headers(
        [
            ("WWW-Authenticate", 'DPoP algs="ES256 PS256", resource_metadata="https://api/.well-known/x"'),
            ("Content-Type", "application/json"),
            ("www-authenticate", 'Bearer resource_metadata="https://api/.well-known/x"'),
        ]
    )
    assert www_authenticate(headers) == [
        ("DPoP", {"algs": "ES256 PS256", "resource_metadata": "https://api/.well-known/x"}),
        ("Bearer", {"resource_metadata": "https://api/.well-known/x"}),
    ]
    assert www_authenticate(httpx.Headers()) == []


def test_malformed_input_is_skipped_never_raised_on() -> None:
    assert parse_challenges("") == []
    assert parse_challenges(" , ,") == []
    # An unclosed quote: the parameters before it survive, the rest is lost.
    assert parse_challenges('Bearer realm="x", error="open') == [("Bearer", {"realm": "x"})]
    # Junk after a value, a parameter without a name, no space after the scheme.
    assert parse_challenges('Bearer realm="x"junk, =v, error=e') == [("Bearer", {"realm": "x", "error": "e"})]
    assert parse_challenges('Basic=abc, DPoP error="e"') == [("DPoP", {"error": "e"})]
    assert parse_challenges('"quoted", Bearer') == [("Bearer", {})]
