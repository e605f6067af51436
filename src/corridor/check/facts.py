"""The report's opening: the seed's fields, each proven by what modules saw, beside what the
metadata advertises ("conformance is evidence, not a conclusion")."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from corridor import __version__
from corridor.check.config import CheckConfig
from corridor.check.results import ModuleResult, Status, VariantReport
from corridor.check.session import Server

PROFILE = "FAPI 2.0 Security Profile"
VERSION = "Final (2025-02-22)"
TEST_PLAN = "fapi2-security-profile-final-test-plan (fapi_profile=plain_fapi)"
CC_TEST_PLAN = (
    "fapi2-security-profile-final-client-credentials-grant-test-plan "
    "(fapi_profile=fapi_client_credentials_grant, plain_oauth)"
)
MS_PROFILE = "FAPI 2.0 Message Signing"
MS_VERSION = "Final (2025-09)"
MS_TEST_PLAN = (
    "fapi2-message-signing-final-test-plan (fapi_profile=plain_fapi, "
    "fapi_request_method=signed_non_repudiation, fapi_response_mode=jarm)"
)


def certification_targets(variants: Sequence[VariantReport]) -> list[str]:
    """The OIDF certification profiles the variants test, named as the suite's plans name them
    (FAPI2SPFinalTestPlan / FAPI2MessageSigningFinalTestPlan.certificationProfileName): e.g.
    "FAPI2SP OP private key + DPoP", "FAPI2SP OP OpenID Connect", and with Message Signing
    "FAPI2MS OP JAR" (signed_non_repudiation) and "FAPI2MS OP JARM" (jarm)."""
    targets: list[str] = []

    def add(name: str) -> None:
        if name not in targets:
            targets.append(name)

    for variant in variants:
        auth = "private key" if variant.client_auth == "private_key_jwt" else "MTLS"
        sender = "DPoP" if variant.sender == "dpop" else "MTLS"
        if variant.openid:
            add("FAPI2SP OP OpenID Connect")
        add(f"FAPI2SP OP {auth} + {sender}")
        if variant.request_method == "signed_non_repudiation":
            add("FAPI2MS OP JAR")
        if variant.response_mode == "jarm":
            add("FAPI2MS OP JARM")
    return targets


def _results(variants: Sequence[VariantReport]) -> list[tuple[VariantReport, ModuleResult]]:
    return [(variant, result) for variant in variants for result in variant.results]


class _Evidence:
    def __init__(self, variants: Sequence[VariantReport]) -> None:
        self.pairs = _results(variants)

    def of(self, *names: str) -> list[tuple[VariantReport, ModuleResult]]:
        return [(v, r) for v, r in self.pairs if r.name in names]

    def verdict(self, *names: str) -> tuple[str, list[str]]:
        """proven: every run of these modules passed (at least one ran); contradicted: one
        failed; else not tested."""
        found = [(v, r) for v, r in self.of(*names) if r.status is not Status.SKIPPED]
        evidence = sorted({r.name for _, r in found})
        if not found:
            return "not tested", sorted(set(names))
        if any(r.status is Status.FAIL for _, r in found):
            return "contradicted", evidence
        return "proven", evidence

    def fact_values(self, name: str) -> list[Any]:
        return [r.facts[name] for _, r in self.pairs if name in r.facts]


def _row(topic: str, advertised: str, proven: str, verdict: tuple[str, list[str]]) -> dict[str, Any]:
    return {
        "topic": topic,
        "advertised": advertised,
        "proven": proven,
        "verdict": verdict[0],
        "evidence": verdict[1],
    }


def _join(values: Iterable[Any]) -> str:
    listed = [str(v) for v in values]
    return " ".join(listed) if listed else "(not advertised)"


def opening(
    config: CheckConfig,
    servers: Mapping[bool, Server],
    variants: Sequence[VariantReport],
    *,
    tls: list[dict[str, Any]] | None = None,
    now: datetime.datetime | None = None,
) -> dict[str, Any]:
    server = servers.get(True) or next(iter(servers.values()))
    meta = server.metadata
    ev = _Evidence(variants)
    senders = []
    if meta.get("dpop_signing_alg_values_supported"):
        senders.append(f"DPoP ({_join(meta.get('dpop_signing_alg_values_supported') or [])})")
    if meta.get("tls_client_certificate_bound_access_tokens") is True:
        senders.append("mTLS certificate-bound tokens")
    tested_senders = sorted({v.sender for v in variants})
    holder = ev.verdict(
        "fapi2-security-profile-final-ensure-holder-of-key-required",
        "fapi2-security-profile-final-dpop-negative-tests",
    )
    par_required = meta.get("require_pushed_authorization_requests")
    par = ev.verdict(
        "fapi2-security-profile-final-ensure-unsigned-authorization-request-without-using-par-fails"
    )
    pkce = ev.verdict(
        "fapi2-security-profile-final-par-ensure-pkce-required",
        "fapi2-security-profile-final-par-plain-pkce-rejected",
        "fapi2-security-profile-final-ensure-pkce-code-verifier-required",
        "fapi2-security-profile-final-incorrect-pkce-code-verifier-rejected",
    )
    iss = ev.verdict(
        "fapi2-security-profile-final-happy-flow", "fapi2-security-profile-final-user-rejects-authentication"
    )
    iss_seen = []
    if ev.fact_values("iss_on_success"):
        iss_seen.append("on success")
    if ev.fact_values("iss_on_error"):
        iss_seen.append("on error responses")
    code_life = ev.verdict(
        "fapi2-security-profile-final-ensure-token-endpoint-fails-with-expired-auth-code",
        "fapi2-security-profile-final-attempt-reuse-authorization-code-after-one-second",
    )
    par_life = ev.verdict("fapi2-security-profile-final-par-attempt-to-use-expired-request_uri")
    expires = sorted({v for v in ev.fact_values("par_expires_in") if isinstance(v, int)})
    aud = ev.verdict(
        "fapi2-security-profile-final-par-test-array-as-audience-fails",
        "fapi2-security-profile-final-par-test-par-endpoint-url-as-audience-fails",
        "fapi2-security-profile-final-par-test-token-endpoint-url-as-audience-fails",
        "fapi2-security-profile-final-ensure-client-assertion-with-wrong-aud-fails",
    )
    clock = ev.verdict(
        "fapi2-security-profile-final-par-ensure-jwt-client-assertions-nbf-8-seconds-in-the-future-is-accepted",
        "fapi2-security-profile-final-par-ensure-jwt-client-assertions-nbf-over-60-seconds-in-the-future-fails",
        "fapi2-security-profile-final-ensure-client-assertion-with-exp-is-5-minutes-in-past-fails",
        "fapi2-security-profile-final-ensure-dpopproof-with-iat-10seconds-before-succeeds",
        "fapi2-security-profile-final-ensure-dpopproof-with-iat-10seconds-after-succeeds",
    )
    algs = ev.verdict("fapi2-security-profile-final-ensure-signed-client-assertion-with-RS256-fails")
    accepted_algs = sorted(
        {f"client assertion {a}" for a in ev.fact_values("assertion_alg")}
        | {f"DPoP proof {a}" for a in ev.fact_values("dpop_alg")}
        | {str(a) for algs in ev.fact_values("accepted_algs") for a in algs}
    )
    nonces = sorted({url for urls in ev.fact_values("dpop_nonce_challenges") for url in urls})
    message_signing = any(
        v.request_method != "unsigned" or v.response_mode != "plain_response" for v in variants
    )
    facts = [
        _row(
            "Sender-constraining methods",
            ", ".join(senders) or "(none advertised)",
            f"tested: {', '.join(tested_senders)}; bearer use and another key's proof refused"
            if holder[0] == "proven"
            else "not shown that a bearer or wrong-key use is refused",
            holder,
        ),
        _row(
            "PAR mandatory",
            "require_pushed_authorization_requests = "
            + (str(par_required).lower() if par_required is not None else "(absent)"),
            "an authorization request without PAR was refused"
            if par[0] == "proven"
            else "an unpushed request was not shown to be refused",
            par,
        ),
        _row(
            "PKCE S256 enforced",
            f"code_challenge_methods_supported = {_join(meta.get('code_challenge_methods_supported') or [])}",
            "no challenge, plain, no verifier and a wrong verifier are all refused"
            if pkce[0] == "proven"
            else "not shown",
            pkce,
        ),
        _row(
            "RFC 9207 iss in authorization responses",
            "authorization_response_iss_parameter_supported = "
            + str(meta.get("authorization_response_iss_parameter_supported")).lower(),
            f"iss = the issuer {', '.join(iss_seen)}" if iss_seen else "not seen",
            iss,
        ),
        _row(
            "Authorization code lifetime",
            "(not advertised)",
            "refused after 62 s and on reuse"
            if code_life[0] == "proven"
            and any(
                r.status is not Status.SKIPPED
                for _, r in ev.of(
                    "fapi2-security-profile-final-ensure-token-endpoint-fails-with-expired-auth-code"
                )
            )
            else "reuse refused; the 60 s limit needs --slow",
            code_life,
        ),
        _row(
            "request_uri lifetime",
            f"expires_in = {', '.join(map(str, expires)) or '(not seen)'} s",
            "refused after expires_in + 1 s" if par_life[0] == "proven" else "enforcement needs --slow",
            par_life,
        ),
        _row(
            "Client assertion audience",
            "the issuer, as a string (FAPI2 5.3.2.1-8)",
            "an array, the PAR URL, the token URL and a wrong aud are refused"
            if aud[0] == "proven"
            else "not shown",
            aud,
        ),
        _row(
            "Clock window for JWTs received",
            "accept iat/nbf up to +10 s, refuse beyond +60 s (FAPI2 5.3.2.1-13)",
            "nbf +8 s accepted, +60 s refused; DPoP iat ±10 s accepted"
            if clock[0] == "proven"
            else "not shown",
            clock,
        ),
        _row(
            "Signing algorithms",
            f"token endpoint: {_join(meta.get('token_endpoint_auth_signing_alg_values_supported') or [])}; "
            f"DPoP: {_join(meta.get('dpop_signing_alg_values_supported') or [])}",
            f"accepted: {', '.join(accepted_algs) or '(none seen)'}; RS256 refused"
            if algs[0] == "proven"
            else f"accepted: {', '.join(accepted_algs) or '(none seen)'}",
            algs,
        ),
        _row(
            "DPoP nonces",
            "(RFC 9449 8/9 nonces are not advertised in metadata)",
            f"required by {', '.join(nonces)}" if nonces else "no nonce was asked for",
            ("proven", []) if nonces else ("not proven", []),
        ),
    ]
    if message_signing:
        facts += _message_signing_rows(meta, ev)
    roles = ["authorization server"]
    if config.resource is not None:
        roles.append("resource server")
    return {
        "profile": f"{PROFILE} + {MS_PROFILE}" if message_signing else PROFILE,
        "version": f"{VERSION}; Message Signing {MS_VERSION}" if message_signing else VERSION,
        "test_plan": MS_TEST_PLAN
        if message_signing
        else CC_TEST_PLAN
        if any(v.profile == "fapi_client_credentials_grant" for v in variants)
        else TEST_PLAN,
        "targets": certification_targets(variants),
        "roles": roles,
        "variants": [v.name for v in variants],
        "tool": f"corridor check {__version__}",
        "date": (now or datetime.datetime.now(datetime.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "issuer": config.issuer,
        "metadata_url": server.metadata_url,
        "metadata_sha256": server.metadata_sha256,
        "metadata": {
            (openid and "openid") or "oauth": {"url": s.metadata_url, "sha256": s.metadata_sha256}
            for openid, s in servers.items()
        },
        "facts": facts,
        "tls": tls or [],
        "notes": [],
    }


def _message_signing_rows(meta: Mapping[str, Any], ev: _Evidence) -> list[dict[str, Any]]:
    """The Message Signing rows: signed requests required, their claims and signature checked
    (JAR), and the responses signed (JARM), each proven by the modules that show it."""
    p = "fapi2-security-profile-final-"
    required = ev.verdict(p + "ensure-unsigned-request-at-par-endpoint-fails")
    claims = ev.verdict(
        p + "ensure-request-object-without-exp-fails",
        p + "ensure-request-object-without-nbf-fails",
        p + "ensure-expired-request-object-fails",
        p + "ensure-request-object-with-bad-aud-fails",
        p + "ensure-request-object-with-exp-over-60-fails",
        p + "ensure-request-object-with-nbf-over-60-fails",
        "corridor-ensure-request-object-without-aud-fails",
    )
    signature = ev.verdict(
        p + "ensure-request-object-signature-algorithm-is-not-none",
        p + "ensure-request-object-with-invalid-signature-fails",
        p + "ensure-signed-request-object-with-RS256-fails",
        p + "ensure-matching-key-in-authorization-request",
    )
    jarm = ev.verdict(p + "happy-flow", p + "user-rejects-authentication")
    jarm_algs = sorted({str(a) for a in ev.fact_values("jarm_alg")})
    return [
        _row(
            "JAR: signed request objects required at PAR",
            f"require_signed_request_object = {str(meta.get('require_signed_request_object')).lower()}",
            "unsigned pushed parameters refused" if required[0] == "proven" else "not shown",
            required,
        ),
        _row(
            "JAR: request object claims",
            "aud = the issuer, nbf <= 60 min old, exp <= nbf + 60 min (FAPI2-MS-FINAL-5.3.1)",
            "missing exp/nbf/aud, expired, another aud, 70-minute lifetimes refused"
            if claims[0] == "proven"
            else "not shown",
            claims,
        ),
        _row(
            "JAR: request object signature",
            f"request_object_signing_alg_values_supported = "
            f"{_join(meta.get('request_object_signing_alg_values_supported') or [])}",
            "alg none, a bad signature, RS256 and another client's key refused"
            if signature[0] == "proven"
            else "not shown",
            signature,
        ),
        _row(
            "JARM: signed authorization responses",
            f"response_modes_supported = {_join(meta.get('response_modes_supported') or [])}; "
            f"authorization_signing_alg_values_supported = "
            f"{_join(meta.get('authorization_signing_alg_values_supported') or [])}",
            f"success and error responses as JWTs signed with {', '.join(jarm_algs)}, iss/aud/exp verified"
            if jarm_algs and jarm[0] == "proven"
            else "not shown",
            jarm if jarm_algs else ("not tested", jarm[1]),
        ),
    ]
