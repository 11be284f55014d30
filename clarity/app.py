"""The daemon's ASGI app: MCP at /mcp, REST at /api, health at /healthz and /readyz.

Everything blocking (the embedding model, the Qdrant engines) runs in worker threads so the
event loop keeps answering health checks and hooks while a request is being served.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clarity import __version__
from clarity.backup import create_backup
from clarity.config import Settings, describe_validation_error
from clarity.controls import DISABLED_HEADER, is_disabled
from clarity.dashboard import Dashboard
from clarity.dashboard import security as dashboard_security
from clarity.embedding import ModelNotReady
from clarity.hooks.events import EVENTS, HookEvent
from clarity.hooks.service import HookService
from clarity.mcp.server import PROJECT_HEADER, build_mcp_server
from clarity.memory import MemoryNotFound, MemoryService, ScopeRequired
from clarity.models import (
    SCOPE_PATTERN,
    DeleteResult,
    ExportPageRequest,
    ForgetRequest,
    ImportBatch,
    ListRequest,
    ListResult,
    Memory,
    MemoryCreate,
    MemoryPatch,
    RetrieveRequest,
    RetrieveResult,
    Stats,
    StoreBatch,
    StoreResult,
)
from clarity.project import project_scope
from clarity.retention import SizeGuard
from clarity.store.space import InsufficientStorage

log = logging.getLogger(__name__)
T = TypeVar("T")


class RequestError(ValueError):
    """A request the daemon refuses, with its HTTP status; a ValueError so that the MCP tools,
    which share ``resolve_project``, report it as a tool error."""

    def __init__(self, status: int, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.details = details or []


MAX_PROJECT_HEADER = 4096  # PATH_MAX: the longest directory the header can name (HookEvent.cwd's limit too)


def resolve_project(value: str | None) -> str | None:
    """X-Clarity-Project carries a directory (resolved to its repository) or a scope id.

    Whatever the header holds, the answer is a scope or a 400 naming the header: never an
    exception from the file system (a name too long, a home directory that does not exist)."""
    if not value:
        return None
    if len(value) > MAX_PROJECT_HEADER:
        raise RequestError(
            400,
            f"{PROJECT_HEADER}: {len(value)} characters is over the limit of {MAX_PROJECT_HEADER} "
            "(a directory path or a scope id)",
        )
    if value.startswith(("/", "~")):
        return _directory_scope(value)
    if re.match(SCOPE_PATTERN, value):
        return value
    raise RequestError(
        400,
        f"{PROJECT_HEADER}: {dashboard_security.shown(value)} is neither an absolute path nor a scope id "
        "(lowercase letters, digits, '.', '_' and '-', at most 128 characters)",
    )


def _directory_scope(value: str) -> str:
    path = os.path.expanduser(value)  # unlike Path.expanduser, leaves an unknown ~user as it is
    if path.startswith("~"):
        user = value[1:].split("/", 1)[0]
        raise RequestError(
            400,
            f"{PROJECT_HEADER}: {dashboard_security.shown(value)}: "
            + (f"no user {user!r} on this machine" if user else "the daemon has no home directory"),
        )
    try:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            os.stat(path)  # project_scope treats every unusable path as global: name the reason here
        return project_scope(path)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RequestError(400, f"{PROJECT_HEADER}: {dashboard_security.shown(value)}: {reason}") from None


async def _in_thread(func: Callable[..., T], *args: Any) -> T:
    return await anyio.to_thread.run_sync(func, *args)


class LocalBackend:
    """MCP backend for the daemon: the MemoryService in this process."""

    def __init__(self, service: MemoryService) -> None:
        self.service = service

    async def store(self, request: MemoryCreate, project: str | None) -> StoreResult:
        return await _in_thread(self.service.store, request, resolve_project(project))

    async def retrieve(self, request: RetrieveRequest, project: str | None) -> RetrieveResult:
        return await _in_thread(self.service.retrieve, request, resolve_project(project))

    async def list(self, request: ListRequest, project: str | None) -> ListResult:
        return await _in_thread(self.service.list, request, resolve_project(project))

    async def update(self, memory_id: str, patch: MemoryPatch) -> Memory:
        return await _in_thread(self.service.update, memory_id, patch)

    async def delete(self, memory_id: str) -> DeleteResult:
        return await _in_thread(self.service.delete, memory_id)

    async def stats(self, project: str | None) -> Stats:
        return await _in_thread(self.service.stats, resolve_project(project))


# -- REST ---------------------------------------------------------------------------------------


async def _json_body(request: Request) -> Any:
    """The body is already whole and within server.max_request_bytes: RequestGuard read it."""
    body = await request.body()
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite_float)
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"body: not valid UTF-8 (byte {exc.start})") from None
    except RecursionError:
        raise RequestError(400, f"body: JSON nested more than {MAX_BODY_DEPTH} levels deep") from None
    except ValueError as exc:
        raise RequestError(400, f"body: not valid JSON ({exc})") from None
    _check_depth(data)
    return data


MAX_BODY_DEPTH = 64


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is out of the range of a double")
    return value


def _check_depth(data: Any) -> None:
    """Iteratively, so a deep body costs a 400 and not a recursion error further down."""
    stack = [(data, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            if level > MAX_BODY_DEPTH:
                raise RequestError(400, f"body: JSON nested more than {MAX_BODY_DEPTH} levels deep")
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))


def _parse(model: type[BaseModel], data: Any) -> Any:
    if not isinstance(data, dict):
        raise RequestError(400, f"body: expected a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = describe_validation_error(exc)
        raise RequestError(400, "; ".join(details), details) from None


def _json(model: BaseModel, status: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status, media_type="application/json")


LIST_PARAMS = ("memory_types", "tags", "sources")


def _query_list(request: Request, key: str) -> list[str] | None:
    values = [v for raw in request.query_params.getlist(key) for v in raw.split(",") if v]
    return values or None


class RestApi:
    def __init__(self, service: MemoryService, settings: Settings) -> None:
        self.service = service
        self.settings = settings

    def routes(self) -> list[Route]:
        return [
            Route("/memories", self._guard(self.create), methods=["POST"]),
            Route("/memories", self._guard(self.list), methods=["GET"]),
            Route("/memories/{memory_id}", self._guard(self.get), methods=["GET"]),
            Route("/memories/{memory_id}", self._guard(self.update), methods=["PATCH"]),
            Route("/memories/{memory_id}", self._guard(self.delete), methods=["DELETE"]),
            Route("/search", self._guard(self.search), methods=["POST"]),
            Route("/stats", self._guard(self.stats), methods=["GET"]),
            Route("/memories/batch", self._guard(self.create_many), methods=["POST"]),
            Route("/forget", self._guard(self.forget), methods=["POST"]),
            Route("/export", self._guard(self.export), methods=["POST"]),
            Route("/import", self._guard(self.import_), methods=["POST"]),
            Route("/backup", self._guard(self.backup), methods=["POST"]),
        ]

    @staticmethod
    def _guard(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        """Every failure becomes JSON with a readable message; nothing leaks a traceback."""

        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestError as exc:
                return JSONResponse({"error": str(exc), "details": exc.details}, status_code=exc.status)
            except MemoryNotFound as exc:
                return JSONResponse({"error": str(exc)}, status_code=404)
            except (ScopeRequired, ValueError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            except ModelNotReady as exc:
                return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": "5"})
            except InsufficientStorage as exc:  # under storage.min_free_bytes: reads go on
                return JSONResponse(exc.as_json(), status_code=507)
            except Exception:
                log.exception("unexpected error on %s %s", request.method, request.url.path)
                return JSONResponse({"error": "internal error; see the daemon log"}, status_code=500)

        return endpoint

    def _project(self, request: Request) -> str | None:
        return resolve_project(request.headers.get(PROJECT_HEADER))

    async def create(self, request: Request) -> Response:
        payload = _parse(MemoryCreate, await _json_body(request))
        result = await _in_thread(self.service.store, payload, self._project(request))
        return _json(result, 201 if result.status == "created" else 200)

    async def list(self, request: Request) -> Response:
        # Every ListRequest field is a query parameter; an unknown one is refused by name
        # (extra="forbid"), never silently ignored.
        params = request.query_params
        data: dict[str, Any] = {k: params.getlist(k)[-1] for k in params if k not in LIST_PARAMS}
        for key in LIST_PARAMS:
            if (values := _query_list(request, key)) is not None:
                data[key] = values
        result = await _in_thread(self.service.list, _parse(ListRequest, data), self._project(request))
        return _json(result)

    async def get(self, request: Request) -> Response:
        return _json(await _in_thread(self.service.get, request.path_params["memory_id"]))

    async def update(self, request: Request) -> Response:
        patch = _parse(MemoryPatch, await _json_body(request))
        return _json(await _in_thread(self.service.update, request.path_params["memory_id"], patch))

    async def delete(self, request: Request) -> Response:
        return _json(await _in_thread(self.service.delete, request.path_params["memory_id"]))

    async def search(self, request: Request) -> Response:
        query = _parse(RetrieveRequest, await _json_body(request))
        return _json(await _in_thread(self.service.retrieve, query, self._project(request)))

    async def create_many(self, request: Request) -> Response:
        batch = _parse(StoreBatch, await _json_body(request))
        results = await _in_thread(self.service.store_many, batch.memories, self._project(request))
        return JSONResponse({"results": [r.model_dump(mode="json") for r in results]})

    async def forget(self, request: Request) -> Response:
        dry_run = request.query_params.get("dry_run", "false").lower() in ("1", "true", "yes")
        what = _parse(ForgetRequest, await _json_body(request))
        return _json(await _in_thread(self.service.forget, what, self._project(request), dry_run))

    async def export(self, request: Request) -> Response:
        page = _parse(ExportPageRequest, await _json_body(request))
        return _json(await _in_thread(self.service.export_page, page, self._project(request)))

    async def import_(self, request: Request) -> Response:
        batch = _parse(ImportBatch, await _json_body(request))
        return _json(await _in_thread(self.service.import_batch, batch))

    async def backup(self, request: Request) -> Response:
        """The archive is built in the storage's cache directory and streamed back, so the daemon
        never writes to a path a caller names."""
        cache = self.settings.storage.cache_dir
        cache.mkdir(parents=True, exist_ok=True, mode=0o700)
        archive = cache / f"backup-{uuid.uuid4().hex}.tar.gz"
        summary = await _in_thread(create_backup, self.service, self.settings, archive)
        return FileResponse(
            archive,
            media_type="application/gzip",
            headers={"X-Clarity-Backup": summary.model_dump_json()},
            background=BackgroundTask(archive.unlink, missing_ok=True),
        )

    async def stats(self, request: Request) -> Response:
        scope = request.query_params.get("scope", "all")
        if scope not in ("default", "project", "global", "all") and not re.match(SCOPE_PATTERN, scope):
            raise RequestError(400, f"scope={scope!r}: expected default, project, global, all or a scope id")
        return _json(await _in_thread(self.service.stats, self._project(request), scope))


# -- hooks --------------------------------------------------------------------------------------


class HookApi:
    """POST /hooks/<Event>: the JSON Claude Code sends in, Claude Code's hook output JSON out."""

    def __init__(self, hooks: HookService) -> None:
        self.hooks = hooks

    async def handle(self, request: Request) -> Response:
        """Counts every call and its latency per event (the dashboard's overview shows them)."""
        started = time.perf_counter()
        response = await self._handle(request)
        event = request.path_params["event"]
        if event in EVENTS:
            failed = response.status_code >= 400 or getattr(request.state, "hook_failed", False)
            self.hooks.injections.record_call(event, time.perf_counter() - started, failed)
        return response

    async def _handle(self, request: Request) -> Response:
        event = request.path_params["event"]
        if event not in EVENTS:
            return JSONResponse(
                {"error": f"event: unknown hook event {event!r}; expected one of {', '.join(EVENTS)}"},
                status_code=404,
            )
        if is_disabled(request.headers.get(DISABLED_HEADER)):
            return JSONResponse({})  # CLARITY_DISABLED=1 in that Claude Code session: a no-op
        try:
            body = await _json_body(request)
            if isinstance(body, dict):
                body.setdefault("hook_event_name", event)
            payload = _parse(HookEvent, body)
            if payload.hook_event_name != event:
                raise RequestError(
                    400, f"hook_event_name: {payload.hook_event_name!r} does not match the URL's {event!r}"
                )
            if self.hooks.reply_is_empty(payload):
                # Claude Code waits for nothing that handle() could add: reply now, and hand the
                # event over once the reply is sent (so that thread does not compete with sending).
                return JSONResponse({}, background=BackgroundTask(self._after_reply, payload))
            return JSONResponse(await _in_thread(self.hooks.handle, payload))
        except RequestError as exc:
            return JSONResponse({"error": str(exc), "details": exc.details}, status_code=exc.status)
        except InsufficientStorage:
            return JSONResponse({})  # nothing learned while the disk is short; the store logged it once
        except Exception:
            # A hook must never break Claude Code: log it and answer "nothing to add".
            log.exception("hook %s failed", event)
            request.state.hook_failed = True
            return JSONResponse({})

    async def _after_reply(self, payload: HookEvent) -> None:
        """Async so the background task runs it on the loop (it only queues) rather than paying
        the threadpool round trip it exists to avoid."""
        self.hooks.handle_after_reply(payload)


# -- auth ---------------------------------------------------------------------------------------


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
    def __init__(self, refusal: dashboard_security.Refusal, close: bool = False) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal
        self.close = close


class ClientGone(Exception):
    """The client hung up while its body was being read: there is no one left to answer."""


class RequestGuard:
    """The one gate in front of every route (/api, /hooks, /mcp, /readyz, the dashboard, /static).

    In this order, each refusal a JSON answer naming the header (docs/security.md):
    Host (421) and Origin / Sec-Fetch-Site (403) from ``dashboard_security.refuse_caller``; a
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
            dashboard_security.refuse_caller(method, path, headers, self.bound_host)
            or self._declared_too_large(headers)
            or dashboard_security.refuse_body_type(method, path, headers)
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

    def _over_limit(self, size: int | None = None) -> dashboard_security.Refusal:
        amount = f"{size} bytes is over" if size is not None else "over"
        return dashboard_security.Refusal(
            413, f"body: {amount} the limit of {self.limit} bytes (server.max_request_bytes)"
        )

    def _declared_too_large(self, headers: Headers) -> dashboard_security.Refusal | None:
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
                    dashboard_security.Refusal(
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


def _refusal_response(path: str, refusal: dashboard_security.Refusal, close: bool = False) -> Response:
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


# -- assembly -----------------------------------------------------------------------------------


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 and 405 (no route, wrong method) in the caller's language: JSON naming
    the path on the API and hook routes, whose clients parse every answer as JSON."""
    assert isinstance(exc, HTTPException)
    path = request.url.path
    if not path.startswith(("/api/", "/hooks/")):
        return Response(exc.detail, status_code=exc.status_code, headers=exc.headers)
    if exc.status_code == 405:
        message = f"method: {request.method} is not allowed on {dashboard_security.shown(path)}"
    else:
        message = f"path: no such route {dashboard_security.shown(path)}"
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


def create_app(settings: Settings, service: MemoryService) -> Starlette:
    """Mount MCP, REST and health on one Starlette app; the caller owns the service's lifetime."""
    mcp = build_mcp_server(LocalBackend(service))
    hooks = HookService(settings, service)
    # Host and Origin are RequestGuard's, for every route alike; the SDK's own copy of those checks
    # (on by default for a loopback host) would only disagree with it in details.
    mcp_app = mcp.streamable_http_app(
        streamable_http_path="/mcp",
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        max_request_body_size=settings.server.max_request_bytes,
        host=settings.server.host,
    )

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    size_guard = SizeGuard(settings, service)

    async def readyz(_: Request) -> Response:
        embedder = service.embedder
        body = {
            "ready": embedder.ready,
            "model": embedder.name,
            "model_error": embedder.error,
            "engine": service.db.engine,
            "location": service.db.location,
            "learning_backlog": hooks.backlog,
            "learning_dropped": hooks.learner.dropped,  # oldest-first, when the queue was full
            "storage": size_guard.last.model_dump() if size_guard.last else None,
        }
        return JSONResponse(body, status_code=200 if embedder.ready else 503)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        service.embedder.start_loading()
        service.start_background()
        size_guard.run_every(settings.storage.size_check_seconds, first_after=1.0)
        async with mcp.session_manager.run():
            try:
                yield
            finally:
                size_guard.stop()
                await _in_thread(hooks.close)

    app = Starlette(
        exception_handlers={HTTPException: _http_error},
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Mount("/api", routes=RestApi(service, settings).routes()),
            Route("/hooks/{event}", HookApi(hooks).handle, methods=["POST"]),
            *Dashboard(settings, service, hooks).routes(),  # "/" and its pages; before the MCP mount
            Mount("/", app=mcp_app),  # serves exactly /mcp; mounted last so it sees only the rest
        ],
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.hooks = hooks
    app.add_middleware(ServerTimingMiddleware)
    app.add_middleware(RequestGuard, settings=settings)  # added last: the outermost layer
    return app
