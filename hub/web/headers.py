"""Security headers on every HTTP response of the web process: the policy (pure) and the ASGI
middleware that applies it.

The Content-Security-Policy is as tight as NiceGUI and Plotly allow: everything from this
origin only, no plugins, no framing, no foreign form targets. NiceGUI's page template carries
its elements in inline scripts and Vue compiles templates in the browser (`new Function`), and
`ui.run_javascript` evaluates code, so scripts need 'unsafe-inline' and 'unsafe-eval'; Quasar
and Plotly set inline styles. Plotly builds images from data: and blob: URLs. FastAPI's /docs
and /redoc load Swagger UI and ReDoc from the jsdelivr CDN; only those pages may.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DOCS_PATHS", "SecurityHeadersMiddleware", "content_security_policy", "security_headers"]

DOCS_PATHS: Final = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
_CDN: Final = "https://cdn.jsdelivr.net"
_HSTS: Final = "max-age=31536000"

_APP_POLICY: Final[Mapping[str, str]] = {
    "default-src": "'self'",
    "script-src": "'self' 'unsafe-inline' 'unsafe-eval'",
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data: blob:",
    "font-src": "'self' data:",
    "connect-src": "'self'",  # the page's own socket.io connection (ws: on the same origin)
    "worker-src": "'self' blob:",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
_DOCS_POLICY: Final[Mapping[str, str]] = {
    **_APP_POLICY,
    "script-src": f"'self' 'unsafe-inline' {_CDN}",
    "style-src": f"'self' 'unsafe-inline' {_CDN}",
    "img-src": "'self' data: https://fastapi.tiangolo.com",
    "worker-src": "'self' blob:",
}


def content_security_policy(path: str) -> str:
    policy = _DOCS_POLICY if path in DOCS_PATHS else _APP_POLICY
    return "; ".join(f"{name} {value}" for name, value in policy.items())


def security_headers(path: str, *, https: bool) -> dict[str, str]:
    """The headers for a response to ``path``; HSTS only over HTTPS (RFC 6797 section 7.2:
    a browser ignores it over plain HTTP, and it must not pin a plain-HTTP development setup)."""
    headers = {
        "Content-Security-Policy": content_security_policy(path),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    if https:
        headers["Strict-Transport-Security"] = _HSTS
    return headers


class SecurityHeadersMiddleware:
    """Pure ASGI, so it wraps every response (pages, static files, the API, errors) without
    buffering a body; a header a route set itself is left alone."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(scope.get("path", ""), https=scope.get("scheme") == "https")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", []))
                present = {name.lower() for name, _ in raw}
                for name, value in extra.items():
                    key = name.lower().encode("latin-1")
                    if key not in present:
                        raw.append((key, value.encode("latin-1")))
                message = {**message, "headers": raw}
            await send(message)

        await self.app(scope, receive, send_with_headers)
