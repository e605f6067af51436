"""The WWW-Authenticate parser (RFC 9110 11.6.1) on hand-made header values: several
challenges in one field and across fields, quoted strings with escaped quotes and commas,
token68, case-insensitive schemes and parameter names, and malformed input; and the front
channel's outcome vocabulary (success, error redirect, error page, interaction, server error)
and the judgement of refused back-channel requests, on hand-made URLs and responses."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from corridor.check.outcome import (
    TOKEN68,
    EndpointAnswer,
    Landing,
    callback,
    challenge,
    page,
    parse_challenges,
    refusal_problem,
    same_endpoint,
    www_authenticate,
)


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


# -- the front channel's outcome vocabulary, on hand-made URLs and responses -----------------


REDIRECT = "https://client.example/cb?dummy1=lorem&dummy2=ipsum"


def _response(status: int, body: bytes = b"", content_type: str = "text/html") -> httpx.Response:
    return httpx.Response(
        status,
        content=body,
        headers={"content-type": content_type},
        request=httpx.Request("GET", "https://as/x"),
    )


@pytest.mark.parametrize(
    ("url", "landing", "params"),
    [
        (
            REDIRECT + "&code=abc&state=s&iss=https%3A%2F%2Fas",
            Landing.SUCCESS,
            {"code": "abc", "state": "s", "iss": "https://as"},
        ),
        (
            REDIRECT + "&error=access_denied&state=s",
            Landing.ERROR_REDIRECT,
            {"error": "access_denied", "state": "s"},
        ),
        # error wins over code (a response with both is an error response).
        (
            REDIRECT + "&code=abc&error=invalid_request",
            Landing.ERROR_REDIRECT,
            {"code": "abc", "error": "invalid_request"},
        ),
        # The redirect URI's own query is not a response parameter; nothing else: an error redirect.
        (REDIRECT, Landing.ERROR_REDIRECT, {}),
    ],
)
def test_a_callback_is_a_success_or_an_error_redirect(
    url: str, landing: Landing, params: dict[str, str]
) -> None:
    result = callback(url, REDIRECT)
    assert result.landing is landing
    assert result.params == params
    assert result.fragment == {}


def test_parameters_in_the_fragment_are_kept_apart() -> None:
    result = callback("https://client.example/cb#code=abc&state=s", "https://client.example/cb")
    assert result.landing is Landing.SUCCESS
    assert result.params == {} and result.fragment == {"code": "abc", "state": "s"}
    assert result.code is None


@pytest.mark.parametrize(
    ("status", "has_form", "landing"),
    [
        (400, False, Landing.ERROR_PAGE),
        (400, True, Landing.ERROR_PAGE),  # a 4xx is a refusal even with a form on it
        (200, False, Landing.ERROR_PAGE),  # a page with nothing to go on with
        (200, True, Landing.INTERACTION),  # a sign-in or consent page
        (500, False, Landing.SERVER_ERROR),  # never an acceptable refusal
        (503, True, Landing.SERVER_ERROR),
    ],
)
def test_a_page_of_the_server_is_an_error_page_an_interaction_or_a_server_error(
    status: int, has_form: bool, landing: Landing
) -> None:
    result = page(_response(status, b"<p>x</p>"), has_form=has_form, text="x" * 1000)
    assert result.landing is landing
    assert result.status == status
    assert len(result.text) == 300


def test_same_endpoint_ignores_the_query_and_compares_the_rest() -> None:
    assert same_endpoint("https://Client.Example/cb?code=1", "https://client.example/cb")
    assert not same_endpoint("https://client.example/cb2", "https://client.example/cb")
    assert not same_endpoint("https://client.example:8443/cb", "https://client.example/cb")
    assert not same_endpoint("http://client.example/cb", "https://client.example/cb")


@pytest.mark.parametrize(
    ("status", "body", "statuses", "errors", "problem"),
    [
        (400, b'{"error":"invalid_grant"}', {400}, {"invalid_grant"}, None),
        (401, b'{"error":"invalid_client"}', {400, 401}, {"invalid_client"}, None),
        (200, b'{"access_token":"x"}', {400}, {"invalid_grant"}, "expected a refusal, got HTTP 200"),
        (500, b"", {400}, None, "expected a refusal, got a server error (HTTP 500)"),
        (
            400,
            b'{"error":"invalid_request"}',
            {400},
            {"invalid_grant"},
            "error='invalid_request', expected invalid_grant",
        ),
        (403, b'{"error":"invalid_grant"}', {400}, {"invalid_grant"}, "HTTP 403, expected 400"),
        (400, b"not json", {400}, {"invalid_grant"}, "error=None, expected invalid_grant"),
    ],
)
def test_a_refused_back_channel_request_is_judged_by_status_and_error(
    status: int, body: bytes, statuses: set[int], errors: set[str] | None, problem: str | None
) -> None:
    answer = EndpointAnswer.of(_response(status, body, "application/json"))
    assert refusal_problem(answer, statuses=statuses, errors=errors) == problem


# -- a hostile server under test cannot make the checker hold an unbounded body ---------------


def test_a_response_over_the_cap_is_not_read_and_fails_the_module(tmp_path: Path) -> None:
    from corridor.check.http import MAX_RESPONSE, RecordingClient, ResponseTooLarge, Transcript, ssl_context
    from corridor.transport.tls import ensure_dev_tls
    from tests.stubserver import stub_server

    tls = ensure_dev_tls(tmp_path / "tls")
    bodies = {"/small": b"x" * 1000, "/huge": b"x" * (MAX_RESPONSE + 1)}
    with stub_server(lambda path: (200, "text/plain", bodies[path]), (tls.cert_file, tls.key_file)) as base:
        transcript = Transcript()
        client = RecordingClient(transcript, frozenset({"localhost"}), ssl_context(tls.ca_file))
        try:
            assert client.get(base + "/small").content == bodies["/small"]  # positive control
            with pytest.raises(ResponseTooLarge):
                client.get(base + "/huge")
        finally:
            client.close()
    assert transcript.exchanges[0].status == 200
    assert "ResponseTooLarge" in transcript.exchanges[1].error
