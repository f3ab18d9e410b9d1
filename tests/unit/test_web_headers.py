"""Security headers: the policy, and the middleware on a small Starlette app (driven as ASGI
directly: Starlette's TestClient warns about its httpx)."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Message

from hub.web.headers import SecurityHeadersMiddleware, content_security_policy, security_headers


def directives(policy: str) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in policy.split(";"))


def test_the_app_policy_allows_only_this_origin_and_forbids_framing() -> None:
    csp = directives(content_security_policy("/"))
    assert csp["default-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'"
    assert csp["object-src"] == "'none'"
    assert csp["base-uri"] == "'self'"
    assert csp["form-action"] == "'self'"
    assert csp["connect-src"] == "'self'"
    # Nothing from another host: no CDN, no wildcard.
    assert "http" not in content_security_policy("/device/cnc-01")
    assert "*" not in content_security_policy("/")


def test_only_the_api_docs_may_load_their_cdn() -> None:
    for path in ("/docs", "/redoc"):
        assert "https://cdn.jsdelivr.net" in directives(content_security_policy(path))["script-src"]
    assert "cdn.jsdelivr.net" not in content_security_policy("/docs/../")
    assert "cdn.jsdelivr.net" not in content_security_policy("/api/v1/devices")


@pytest.mark.parametrize("https", [True, False])
def test_every_header_and_hsts_only_over_https(https: bool) -> None:
    headers = security_headers("/", https=https)
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert ("Strict-Transport-Security" in headers) is https


def _app() -> Starlette:
    async def page(request: Request) -> Response:
        return PlainTextResponse("hello")

    async def framed(request: Request) -> Response:
        return PlainTextResponse("mine", headers={"X-Frame-Options": "SAMEORIGIN"})

    async def broken(request: Request) -> Response:
        return PlainTextResponse("nope", status_code=404)

    app = Starlette(routes=[Route("/", page), Route("/framed", framed), Route("/missing", broken)])
    app.add_middleware(SecurityHeadersMiddleware)
    return app


async def get(path: str, scheme: str = "http") -> tuple[int, dict[str, list[str]], bytes]:
    """The status, headers (lower-cased, every value) and body of one GET through the app."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": scheme,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"hub.example")],
        "client": ("10.0.0.1", 5000),
        "server": ("hub.example", 443 if scheme == "https" else 80),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await _app()(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers: dict[str, list[str]] = {}
    for name, value in start["headers"]:
        headers.setdefault(name.decode().lower(), []).append(value.decode())
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], headers, body


async def test_the_middleware_adds_the_headers_to_every_response() -> None:
    for path, status in (("/", 200), ("/missing", 404), ("/no-such-route", 404)):
        code, headers, _ = await get(path)
        assert code == status
        assert headers["content-security-policy"] == [content_security_policy(path)]
        assert headers["x-frame-options"] == ["DENY"]
        assert headers["x-content-type-options"] == ["nosniff"]
        assert headers["referrer-policy"] == ["no-referrer"]
        assert "strict-transport-security" not in headers
    assert (await get("/"))[2] == b"hello"


async def test_a_header_the_route_set_itself_is_kept_once() -> None:
    _, headers, _ = await get("/framed")
    assert headers["x-frame-options"] == ["SAMEORIGIN"]


async def test_hsts_when_the_request_came_over_https() -> None:
    _, headers, _ = await get("/", scheme="https")
    assert headers["strict-transport-security"][0].startswith("max-age=")
