"""The AS's own router (server/app.py ``Routes``, issue 19): against Starlette's router on the same
route table (which template answers, which methods), and the answers around it: JSON 404 and
405, HEAD as GET, the security headers and request id on every answer, the 503 of an outage
(page or JSON by path), the lifespan protocol, and the forwarded-certificate source."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import OperationalError
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Match, Route
from starlette.types import Message

from corridor.core.request_context import current_facts
from corridor.server.app import Handler, Routes, SecurityHeaders
from corridor.server.metrics import Metrics

TEMPLATES = [
    "/healthz",
    "/.well-known/openid-configuration",
    "/par",
    "/token",
    "/userinfo",
    "/authorize",
    "/interaction/{interaction_id}",
    "/interaction/{interaction_id}/login",
    "/interaction/{interaction_id}/consent",
    "/interaction/{interaction_id}/passkey-enrol",
    "/enrol",
    "/admin/trace",
]
METHODS: dict[str, list[str]] = {
    "/userinfo": ["GET", "POST"],
    "/interaction/{interaction_id}/passkey-enrol": ["GET", "POST"],
    "/enrol": ["GET", "POST"],
    "/par": ["POST"],
    "/token": ["POST"],
    "/interaction/{interaction_id}/login": ["POST"],
    "/interaction/{interaction_id}/consent": ["POST"],
}


def answer(template: str) -> Handler:
    async def handler(request: Request) -> Response:
        facts = current_facts()
        label = facts.route if facts is not None else None
        return PlainTextResponse(f"{template}|{request.path_params}|{label}")

    return handler


class FakeServer:
    def __init__(self) -> None:
        self.metrics = Metrics()


@contextlib.asynccontextmanager
async def no_lifespan() -> AsyncIterator[None]:
    yield


def build(extra: dict[str, dict[str, Handler]] | None = None, trusted: tuple[str, ...] = ()) -> Any:
    routes = {t: {m: answer(t) for m in METHODS.get(t, ["GET"])} for t in TEMPLATES}
    routes.update(extra or {})
    server: Any = FakeServer()
    return SecurityHeaders(Routes(server, routes, no_lifespan, trusted), metrics=server.metrics), server


def starlette_match(path: str, method: str) -> tuple[str | None, bool, dict[str, Any]]:
    """What Starlette's router did with the same table: the first full match, else a partial."""
    routes = [Route(t, answer(t), methods=METHODS.get(t, ["GET"])) for t in TEMPLATES]
    scope = {"type": "http", "path": path, "root_path": "", "method": method}
    partial = None
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            return route.path, True, child["path_params"]
        if match is Match.PARTIAL and partial is None:
            partial = (route.path, False, child["path_params"])
    return partial or (None, False, {})


def ours(path: str, method: str) -> tuple[str | None, bool, dict[str, Any]]:
    app, _ = build()
    found = app.app.match(path)
    if found is None:
        return None, False, {}
    template, methods, params = found
    return template, method in methods, params


SEGMENT = st.sampled_from(
    ["interaction", "login", "consent", "passkey-enrol", "par", "token", "x", "", "a b", "%2F", "ü", "."]
)


@settings(max_examples=400, deadline=None)
@given(
    segments=st.lists(SEGMENT, min_size=0, max_size=4),
    trailing=st.booleans(),
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "OPTIONS"]),
)
def test_the_same_route_as_starlettes_router(segments: list[str], trailing: bool, method: str) -> None:
    path = "/" + "/".join(segments) + ("/" if trailing and segments else "")
    assert ours(path, method) == starlette_match(path, method)


@pytest.mark.parametrize(
    ("path", "method"),
    [(p.replace("{interaction_id}", "abc"), m) for p in TEMPLATES for m in METHODS.get(p, ["GET"])]
    + [("/interaction/abc/consent", "GET"), ("/par", "GET"), ("/interaction/", "GET"), ("/x", "GET")],
)
def test_every_template_matches_as_starlette_did(path: str, method: str) -> None:
    assert ours(path, method) == starlette_match(path, method)


def call(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="https://localhost") as http:
            return await http.request(method, path, **kwargs)

    return asyncio.run(go())


def assert_security_headers(response: httpx.Response) -> None:
    assert response.headers["strict-transport-security"].startswith("max-age=63072000")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert len(response.headers["x-request-id"]) == 32


def test_a_matched_route_gets_its_template_as_label_and_its_parameters() -> None:
    app, server = build()
    response = call(app, "GET", "/interaction/abc")
    assert response.status_code == 200
    assert (
        response.text
        == "/interaction/{interaction_id}|{'interaction_id': 'abc'}|/interaction/{interaction_id}"
    )
    assert_security_headers(response)
    metric = server.metrics.registry.get_sample_value(
        "corridor_http_requests_total",
        {"endpoint": "/interaction/{interaction_id}", "status": "200", "error": ""},
    )
    assert metric == 1


def test_head_is_answered_as_get_without_a_body() -> None:
    app, _ = build()
    response = call(app, "HEAD", "/healthz")
    assert response.status_code == 200 and response.text == ""


def test_unknown_paths_and_methods_are_json_404_and_405_with_the_headers() -> None:
    app, server = build()
    missing = call(app, "GET", "/interaction/abc/nothing")
    assert missing.status_code == 404 and missing.json() == {"error": "not_found"}
    assert_security_headers(missing)
    wrong = call(app, "PUT", "/token")
    assert wrong.status_code == 405 and wrong.json() == {"error": "method_not_allowed"}
    assert_security_headers(wrong)
    registry = server.metrics.registry
    assert registry.get_sample_value(
        "corridor_http_requests_total", {"endpoint": "unmatched", "status": "404", "error": ""}
    )
    assert registry.get_sample_value(
        "corridor_http_requests_total", {"endpoint": "/token", "status": "405", "error": ""}
    )


def unavailable(template: str) -> Handler:
    async def handler(request: Request) -> Response:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    return handler


@pytest.mark.parametrize(("path", "page"), [("/token", False), ("/interaction/abc/consent", True)])
def test_an_unavailable_database_is_503_with_retry_after(path: str, page: bool) -> None:
    template = path.replace("abc", "{interaction_id}")
    app, server = build({template: {"POST": unavailable(template)}})
    response = call(app, "POST", path)
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert_security_headers(response)
    if page:
        assert response.headers["content-type"].startswith("text/html")
        assert "temporarily_unavailable" in response.text
    else:
        assert response.json()["error"] == "temporarily_unavailable"
        assert response.headers["cache-control"] == "no-store"
    assert server.metrics.registry.get_sample_value("corridor_database_unavailable_responses_total") == 1


def test_the_lifespan_protocol_runs_the_lifespan() -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        events.append("start")
        yield
        events.append("stop")

    routes = Routes(FakeServer(), {}, lifespan)  # type: ignore[arg-type]

    async def go() -> list[Message]:
        inbox: list[Message] = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
        sent: list[Message] = []

        async def receive() -> Message:
            return inbox.pop(0)

        async def send(message: Message) -> None:
            sent.append(message)

        await SecurityHeaders(routes)({"type": "lifespan"}, receive, send)
        return sent

    sent = asyncio.run(go())
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert events == ["start", "stop"]


def test_a_certificate_header_is_stripped_from_an_untrusted_peer() -> None:
    seen: list[Any] = []

    async def handler(request: Request) -> Response:
        seen.append((request.headers.get("client-cert"), request.scope.get("extensions")))
        return PlainTextResponse("ok")

    app, _ = build({"/echo": {"GET": handler}}, trusted=("10.0.0.0/8",))
    call(app, "GET", "/echo", headers={"Client-Cert": ":AAAA:"})
    assert seen == [(None, None)]  # httpx's ASGI client is 127.0.0.1: not a trusted proxy


JSON_BODIES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(body=JSON_BODIES)
def test_fast_json_bodies_are_starlettes_bytes(body: Any) -> None:
    """server/responses.py: orjson's bytes are Starlette's compact json.dumps, byte for byte."""
    from starlette.responses import JSONResponse

    from corridor.server.responses import FastJSONResponse

    try:
        expected = JSONResponse(body).body
    except UnicodeEncodeError:  # a lone surrogate: no UTF-8 form, refused by both
        with pytest.raises(UnicodeEncodeError):
            FastJSONResponse(body)
        return
    assert FastJSONResponse(body).body == expected
