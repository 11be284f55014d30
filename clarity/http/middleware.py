"""The ASGI middlewares in front of every route: the request guard, the bearer token, Server-Timing.

``RequestGuard`` is the one gate (docs/security.md): it applies ``clarity.http.guard_rules`` to
the headers, runs ``BearerTokenMiddleware`` when a token is configured, and reads the body whole
before any route sees it. ``ServerTimingMiddleware`` times the app inside the guard.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

import anyio
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clarity.config import Settings
from clarity.dashboard import security as dashboard_security
from clarity.http.guard_rules import Refusal, refuse_body_type, refuse_caller


class ServerTimingMiddleware:
    """Adds ``Server-Timing: app;dur=<ms>`` so a slow call can be told apart from a slow network."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                elapsed = (time.perf_counter() - started) * 1000
                message["headers"] = [
                    *message.get("headers", []),
                    (b"server-timing", f"app;dur={elapsed:.1f}".encode()),
                ]
            await send(message)

        await self.app(scope, receive, timed_send)


BODY_IDLE_SECONDS = 10.0  # a body that stops arriving for this long is answered 408 and its connection closed


class Refused(Exception):
    def __init__(self, refusal: Refusal, close: bool = False) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal
        self.close = close


class ClientGone(Exception):
    """The client hung up while its body was being read: there is no one left to answer."""


class RequestGuard:
    """The one gate in front of every route (/api, /hooks, /mcp, /readyz, the dashboard, /static).

    In this order, each refusal a JSON answer naming the header (docs/security.md):
    Host (421) and Origin / Sec-Fetch-Site (403) from ``refuse_caller``; a
    declared body over server.max_request_bytes (413); a write's Content-Type (415); the bearer
    token when one is configured (BearerTokenMiddleware: 401/403, or the dashboard's login); then
    the body itself is read here, whole, with the size limit counted as it arrives and at most
    BODY_IDLE_SECONDS between two pieces (408, connection closed), and handed on in one piece.
    So no route reads a body of its own, and a Content-Length larger than what is sent cannot
    hold a connection open. No CORS header is ever sent: a page of another origin reads nothing.
    """

    def __init__(
        self, app: ASGIApp, settings: Settings, body_idle_seconds: float = BODY_IDLE_SECONDS
    ) -> None:
        self.app = app
        self.bound_host = settings.server.host
        self.limit = settings.server.max_request_bytes
        self.body_idle_seconds = body_idle_seconds
        token = settings.server.token.get_secret_value() if settings.server.token else None
        # After the header checks: the token (when there is one), then the body, then the app.
        self.admit: ASGIApp = BearerTokenMiddleware(self._with_body, token) if token else self._with_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            # No route speaks WebSocket, and browsers apply no CORS to it: close before the
            # handshake is accepted (uvicorn answers 403), whatever server extras are installed.
            await send({"type": "websocket.close", "code": 1008})
            return
        headers = Headers(scope=scope)
        method, path = scope["method"], scope["path"]
        refusal = (
            refuse_caller(method, path, headers, self.bound_host)
            or self._declared_too_large(headers)
            or refuse_body_type(method, path, headers)
        )
        if refusal is not None:
            await _refusal_response(path, refusal)(scope, receive, send)
            return
        await self.admit(scope, receive, send)

    async def _with_body(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the body whole, then hand it to the app in one piece."""
        try:
            body = await self._read_body(receive, Headers(scope=scope))
        except Refused as exc:
            await _refusal_response(scope["path"], exc.refusal, exc.close)(scope, receive, send)
            return
        except ClientGone:
            return
        await self.app(scope, _replay(body, receive), send)

    def _over_limit(self, size: int | None = None) -> Refusal:
        amount = f"{size} bytes is over" if size is not None else "over"
        return Refusal(413, f"body: {amount} the limit of {self.limit} bytes (server.max_request_bytes)")

    def _declared_too_large(self, headers: Headers) -> Refusal | None:
        declared = headers.get("content-length", "")
        return self._over_limit(int(declared)) if declared.isdigit() and int(declared) > self.limit else None

    async def _read_body(self, receive: Receive, headers: Headers) -> bytes:
        body = bytearray()
        while True:
            with anyio.move_on_after(self.body_idle_seconds) as waited:
                message = await receive()
            if waited.cancelled_caught:
                promised = headers.get("content-length")
                of = f" of the {promised} its Content-Length announced" if promised else ""
                raise Refused(
                    Refusal(
                        408,
                        f"body: nothing arrived for {self.body_idle_seconds:g} s after {len(body)} bytes{of}",
                    ),
                    close=True,
                )
            if message["type"] == "http.disconnect":
                raise ClientGone
            body += message.get("body", b"")
            if len(body) > self.limit:
                raise Refused(self._over_limit())
            if not message.get("more_body", False):
                return bytes(body)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The app's receive(): the whole body once, then the server's own (a disconnect)."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


def _refusal_response(path: str, refusal: Refusal, close: bool = False) -> Response:
    """JSON naming the header; on /mcp in JSON-RPC's error shape, which MCP clients show."""
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
    if close:
        headers["Connection"] = "close"
    content: dict[str, Any] = {"error": refusal.message}
    if path == "/mcp" or path.startswith("/mcp/"):
        content = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": refusal.message}}
    return JSONResponse(content, status_code=refusal.status, headers=headers)


class BearerTokenMiddleware:
    """With a token configured, every route but /healthz needs ``Authorization: Bearer <token>``.

    The dashboard's pages also take the login cookie (a browser cannot send the header); without
    either they redirect to /login, which with /static is the only dashboard path left open.
    RequestGuard runs it after its header checks and before reading any body, so a caller
    without the token cannot make the daemon buffer or wait for one.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path == "/healthz" or dashboard_security.is_public_path(path):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        supplied = headers.get(b"authorization")
        response: Response
        if supplied is None and dashboard_security.is_dashboard_path(path):
            cookie = dashboard_security.cookie_from_header(
                headers.get(b"cookie"), dashboard_security.SESSION_COOKIE
            )
            if dashboard_security.session_ok(cookie, self.token):
                await self.app(scope, receive, send)
                return
            login = dashboard_security.login_url(path, scope.get("query_string", b"").decode("latin-1"))
            if b"hx-request" in headers:  # a live-refresh call: send the whole page to the login
                response = Response(status_code=401, headers={"HX-Redirect": login})
            else:
                response = RedirectResponse(login, status_code=303)
        elif supplied is None:
            response = JSONResponse(
                {"error": "authorization: bearer token required"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        elif not hmac.compare_digest(supplied, self.expected):
            response = JSONResponse({"error": "authorization: wrong token"}, status_code=403)
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)
