"""The request modules of ``corridor check`` can fail: each runs against an in-process Corridor
(real TLS on 127.0.0.1, SQLite, a movable clock) as it is, where it passes, and with one
test-only fault in the authorization server, where it must catch the fault."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from corridor.check import flows, outcome, refusals, runner
from corridor.check.config import DEFAULT_VARIANT, CheckConfig, ClientConfig, LoginConfig
from corridor.check.http import Transcript
from corridor.check.login import make_browser
from corridor.check.module import Context, ModuleFailed
from corridor.check.outcome import FrontChannelResult, Landing
from corridor.check.results import ModuleResult, Status
from corridor.check.session import Server
from corridor.core.randomness import new_secret_token, token_hash
from corridor.server import authorize as authorize_module
from corridor.server import par as par_module
from corridor.server.authority import Exchange
from corridor.server.checks.par import require_redirect_uri
from corridor.store.requests import SqlRequests
from corridor.transport.tls import DevTLS
from tests.pki import TestPKI
from tests.support import PASSWORD, Driver, RunningAS, running_as

PREFIX = "fapi2-security-profile-final-"
UNPUSHED = PREFIX + "ensure-unsigned-authorization-request-without-using-par-fails"
WITHOUT_REDIRECT_URI = PREFIX + "ensure-request-object-without-redirect-uri-fails"
REDIRECT_URI_DEFAULT = PREFIX + "ensure-redirect-uri-in-authorization-request"
REUSE = PREFIX + "par-attempt-reuse-request_uri"
EXPIRED = PREFIX + "par-attempt-to-use-expired-request_uri"
REDIRECTS = ("https://client.example.org/cb", "https://client.example.org/cb?dummy1=lorem&dummy2=ipsum")


@pytest.fixture(scope="module")
def corridor(tmp_path_factory: pytest.TempPathFactory, tls: DevTLS, pki: TestPKI) -> Iterator[RunningAS]:
    data_dir = tmp_path_factory.mktemp("as")
    database = f"sqlite:///{data_dir / 'corridor.db'}"
    with running_as(data_dir, tls, mtls_ca_file=str(pki.ca_file), database_url=database) as running:
        yield running


@pytest.fixture(scope="module")
def config(corridor: RunningAS, tmp_path_factory: pytest.TempPathFactory) -> CheckConfig:
    """Two private_key_jwt + DPoP clients (the second with a redirect URI that has a query) and
    a user, as the check's configuration would name them."""
    driver = Driver(corridor)
    username = driver.add_user()
    clients = []
    for redirect in REDIRECTS:
        client = driver.add_client(scope="openid offline_access accounts", redirect_uris=(redirect,))
        clients.append(
            ClientConfig(
                client_id=client.client_id,
                redirect_uri=redirect,
                scope=("openid", "offline_access", "accounts"),
                jwk=client.key.private_jwk(),
                variants=frozenset({DEFAULT_VARIANT.pair}),
            )
        )
    driver.http.close()
    return CheckConfig(
        path=tmp_path_factory.mktemp("check") / "check.toml",
        issuer=corridor.issuer,
        login=LoginConfig("html-form", username, PASSWORD),
        clients=(clients[0], clients[1]),
        ca_file=Path(corridor.tls.ca_file),
    )


@pytest.fixture(autouse=True)
def clock_back(corridor: RunningAS) -> Iterator[None]:
    """A test that moves the server's clock puts it back for the next one."""
    start = corridor.clock._offset
    yield
    corridor.clock.advance(start - corridor.clock._offset)


def run(
    config: CheckConfig,
    name: str,
    *,
    slow: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> ModuleResult:
    reports, _, _ = runner.run(
        config,
        [DEFAULT_VARIANT],
        lambda transcript: make_browser(
            config.login, transcript=transcript, allowed_hosts=config.allowed_hosts(), ca_file=config.ca_file
        ),
        only=[name],
        workers=1,
        slow=slow,
        sleep=sleep,
        clock=clock,
    )
    (result,) = reports[0].results
    return result


def test_an_unpushed_request_is_refused_and_par_optional_is_caught(
    config: CheckConfig, corridor: RunningAS, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FAPI2 5.3.2.2-3: Corridor refuses a front-channel request without request_uri (the
    report's "PAR mandatory: proven"); a server that pushes such a request itself and goes on
    ("PAR optional") gives a code, and the module fails."""
    healthy = run(config, UNPUSHED)
    assert healthy.status is Status.PASS, healthy.reason
    assert healthy.facts.get("par_required_proven") is True

    real = authorize_module.read_front_channel

    def par_optional(raw_query: str) -> authorize_module.FrontChannel:
        front = real(raw_query)
        if front.request_uri or not front.client_id:
            return front
        query = dict(parse_qsl(raw_query))
        parameters: dict[str, Any] = {k: query[k] for k in par_module.KEPT if k in query}
        parameters.update(scope=query.get("scope", ""), resources=[], authorization_details=None)
        reference, now = new_secret_token(), corridor.clock.now()
        corridor.store.requests.save_pushed(
            token_hash(reference), front.client_id, parameters, None, now, now + 60
        )
        return authorize_module.FrontChannel(front.client_id, par_module.REQUEST_URI_PREFIX + reference, [])

    monkeypatch.setattr(authorize_module, "read_front_channel", par_optional)
    faulty = run(config, UNPUSHED)
    assert faulty.status is Status.FAIL
    assert "issued a code" in faulty.reason
    assert "par_required_proven" not in faulty.facts


def test_par_without_redirect_uri_accepted_is_caught(
    config: CheckConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FAPI2 5.3.2.2-6: Corridor refuses a pushed request without redirect_uri; a server that
    falls back to the single registered URI (RFC 6749 3.1.2.3 allows it, FAPI 2.0 does not) fails
    the module, while the suite's redirect-uri-in-authorization-request module tolerates it."""
    healthy = run(config, WITHOUT_REDIRECT_URI)
    assert healthy.status is Status.PASS, healthy.reason

    def default_redirect_uri(ex: Exchange) -> None:
        if not ex.form.get("redirect_uri") and ex.client is not None and len(ex.client.redirect_uris) == 1:
            ex.form["redirect_uri"] = ex.client.redirect_uris[0]
        require_redirect_uri(ex)

    pipeline = tuple(
        default_redirect_uri if check is require_redirect_uri else check
        for check in par_module.PUSHED_AUTHORIZATION
    )
    monkeypatch.setattr(par_module, "PUSHED_AUTHORIZATION", pipeline)
    faulty = run(config, WITHOUT_REDIRECT_URI)
    assert faulty.status is Status.FAIL
    assert "issued a code" in faulty.reason
    tolerated = run(config, REDIRECT_URI_DEFAULT)
    assert tolerated.status is Status.PASS, tolerated.reason


def test_a_request_uri_usable_twice_is_caught(config: CheckConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 9126 7.3 (a SHOULD, so the suite's verdict is WARNING, not FAIL): Corridor refuses a
    request_uri after its flow completed; a server that never consumes it gives a second code."""
    healthy = run(config, REUSE)
    assert healthy.status is Status.PASS, healthy.reason

    monkeypatch.setattr(SqlRequests, "consume_pushed", lambda self, ref_hash, now: True)
    faulty = run(config, REUSE)
    assert faulty.status is Status.WARNING
    assert "second time" in faulty.reason


def test_an_expired_request_uri_is_refused_and_one_that_never_expires_is_caught(
    config: CheckConfig, corridor: RunningAS, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 9126 2.2, FAPI2 5.3.2.2-12, with --slow: the wait for expires_in + 1 s moves the
    server's clock (which the checker's assertions follow). Corridor refuses the expired
    request_uri; a server whose request_uri outlives its expires_in gives a code, and the module
    fails."""
    skipped = run(config, EXPIRED)
    assert skipped.status is Status.SKIPPED

    waited: list[float] = []

    def move_clock(seconds: float) -> None:
        waited.append(seconds)
        corridor.clock.advance(seconds)

    healthy = run(config, EXPIRED, slow=True, sleep=move_clock, clock=corridor.clock.now)
    assert healthy.status is Status.PASS, healthy.reason
    assert healthy.facts.get("par_expiry_enforced") is True
    assert waited == [healthy.facts["par_expires_in"] + 1]

    real = SqlRequests.save_pushed

    def never_expires(
        self: SqlRequests,
        ref_hash: str,
        client_id: str,
        parameters: Any,
        dpop_jkt: str | None,
        now: float,
        expires_at: float,
    ) -> None:
        real(self, ref_hash, client_id, parameters, dpop_jkt, now, expires_at + 10**6)

    monkeypatch.setattr(SqlRequests, "save_pushed", never_expires)
    faulty = run(config, EXPIRED, slow=True, sleep=move_clock, clock=corridor.clock.now)
    assert faulty.status is Status.FAIL
    assert "after PAR" in faulty.reason


# -- the shared judgement of a refused request, on hand-made answers -------------------------------

ISSUER = "https://as.example"


def bare_context() -> Context:
    config = CheckConfig(path=Path("check.toml"), issuer=ISSUER, login=LoginConfig("manual"), clients=())
    server = Server(ISSUER, {}, ISSUER + "/.well-known/openid-configuration", "", {"keys": []})
    return Context(
        config,
        DEFAULT_VARIANT,
        server,
        Transcript(),
        lambda transcript: make_browser(
            config.login, transcript=transcript, allowed_hosts=config.allowed_hosts(), ca_file=config.ca_file
        ),
    )


def redirect(query: str, fragment: str = "") -> FrontChannelResult:
    url = "https://client.example/cb?" + query + (f"#{fragment}" if fragment else "")
    return outcome.callback(url, "https://client.example/cb")


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        (
            outcome.callback(
                "https://client.example/cb?code=x&state=s&iss=" + ISSUER, "https://client.example/cb"
            ),
            "FAIL",
        ),
        (redirect(f"error=invalid_request&state=s&iss={ISSUER}"), "PASS"),
        (redirect(f"error=invalid_request_uri&iss={ISSUER}"), "PASS"),  # state may go with the request_uri
        (redirect("error=invalid_request&state=s"), "FAIL"),  # RFC 9207: iss on errors too
        (redirect(f"error=invalid_request&state=other&iss={ISSUER}"), "FAIL"),
        (redirect(f"error=access_denied&state=s&iss={ISSUER}"), "FAIL"),
        (redirect("", f"error=invalid_request&state=s&iss={ISSUER}"), "FAIL"),  # never in the fragment
        (redirect(f"error=invalid_request&state=s&iss={ISSUER}&extra=1"), "WARNING"),
        (FrontChannelResult(Landing.ERROR_PAGE, ISSUER + "/authorize", status=400, text="refused"), "PASS"),
        (FrontChannelResult(Landing.SERVER_ERROR, ISSUER + "/authorize", status=500), "FAIL"),
        (FrontChannelResult(Landing.INTERACTION, ISSUER + "/interaction/1", status=200), "FAIL"),
    ],
)
def test_a_refusal_is_judged_as_the_suite_judges_it(answer: FrontChannelResult, verdict: str) -> None:
    ctx = bare_context()
    try:
        refusals.check_refused_at_authorization_endpoint(
            ctx, answer, errors={"invalid_request", "invalid_request_uri"}, state="s", what="a test"
        )
    except ModuleFailed:
        assert verdict == "FAIL"
        return
    assert verdict == ("WARNING" if ctx.warnings else "PASS")


def test_the_redirect_uris_own_query_must_come_back() -> None:
    """The suite's CheckMatchingCallbackParameters (RFC 6749 3.1.2)."""
    ctx = bare_context()
    own = "https://client.example/cb?dummy1=lorem&dummy2=ipsum"
    flows.check_matching_callback_parameters(ctx, own, outcome.callback(own + "&code=x&iss=" + ISSUER, own))
    with pytest.raises(ModuleFailed, match="dummy2=ipsum"):
        flows.check_matching_callback_parameters(
            ctx, own, outcome.callback("https://client.example/cb?dummy1=lorem&code=x", own)
        )
