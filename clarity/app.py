"""The daemon's ASGI app: MCP at /mcp, REST at /api, health at /healthz and /readyz.

Everything blocking (the embedding model, the Qdrant engines) runs in worker threads so the
event loop keeps answering health checks and hooks while a request is being served.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
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
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

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

log = logging.getLogger(__name__)
SIZE_CHECK_SECONDS = 60.0
T = TypeVar("T")


class RequestError(Exception):
    def __init__(self, status: int, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.details = details or []


def resolve_project(value: str | None) -> str | None:
    """X-Clarity-Project carries a directory (resolved to its repository) or a scope id."""
    if not value:
        return None
    if value.startswith(("/", "~")):
        return project_scope(value)
    if re.match(SCOPE_PATTERN, value):
        return value
    raise RequestError(400, f"{PROJECT_HEADER}: {value!r} is neither an absolute path nor a scope id")


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


async def _json_body(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestError(
            413, f"body: {declared} bytes is over the limit of {limit} bytes (server.max_request_bytes)"
        )
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise RequestError(413, f"body: over the limit of {limit} bytes (server.max_request_bytes)")
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
        self.limit = settings.server.max_request_bytes

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
            except Exception:
                log.exception("unexpected error on %s %s", request.method, request.url.path)
                return JSONResponse({"error": "internal error; see the daemon log"}, status_code=500)

        return endpoint

    def _project(self, request: Request) -> str | None:
        return resolve_project(request.headers.get(PROJECT_HEADER))

    async def create(self, request: Request) -> Response:
        payload = _parse(MemoryCreate, await _json_body(request, self.limit))
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
        patch = _parse(MemoryPatch, await _json_body(request, self.limit))
        return _json(await _in_thread(self.service.update, request.path_params["memory_id"], patch))

    async def delete(self, request: Request) -> Response:
        return _json(await _in_thread(self.service.delete, request.path_params["memory_id"]))

    async def search(self, request: Request) -> Response:
        query = _parse(RetrieveRequest, await _json_body(request, self.limit))
        return _json(await _in_thread(self.service.retrieve, query, self._project(request)))

    async def create_many(self, request: Request) -> Response:
        batch = _parse(StoreBatch, await _json_body(request, self.limit))
        results = await _in_thread(self.service.store_many, batch.memories, self._project(request))
        return JSONResponse({"results": [r.model_dump(mode="json") for r in results]})

    async def forget(self, request: Request) -> Response:
        dry_run = request.query_params.get("dry_run", "false").lower() in ("1", "true", "yes")
        what = _parse(ForgetRequest, await _json_body(request, self.limit))
        return _json(await _in_thread(self.service.forget, what, self._project(request), dry_run))

    async def export(self, request: Request) -> Response:
        page = _parse(ExportPageRequest, await _json_body(request, self.limit))
        return _json(await _in_thread(self.service.export_page, page, self._project(request)))

    async def import_(self, request: Request) -> Response:
        batch = _parse(ImportBatch, await _json_body(request, self.limit))
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

    def __init__(self, hooks: HookService, settings: Settings) -> None:
        self.hooks = hooks
        self.limit = settings.server.max_request_bytes

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
            body = await _json_body(request, self.limit)
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


class McpBodyLimit:
    """A declared oversized body gets a JSON-RPC error naming the limit before the MCP SDK reads it
    (the SDK's own check, still there for chunked bodies, answers in plain text)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            declared = dict(scope["headers"]).get(b"content-length", b"")
            if declared.isdigit() and int(declared) > self.limit:
                message = (
                    f"body: {int(declared)} bytes is over the limit of {self.limit} bytes "
                    "(server.max_request_bytes)"
                )
                response = JSONResponse(
                    {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": message}},
                    status_code=413,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BearerTokenMiddleware:
    """With a token configured, every route but /healthz needs ``Authorization: Bearer <token>``.

    The dashboard's pages also take the login cookie (a browser cannot send the header); without
    either they redirect to /login, which with /static is the only dashboard path left open.
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


def create_app(settings: Settings, service: MemoryService) -> Starlette:
    """Mount MCP, REST and health on one Starlette app; the caller owns the service's lifetime."""
    mcp = build_mcp_server(LocalBackend(service))
    hooks = HookService(settings, service)
    loopback = settings.server.host in ("127.0.0.1", "localhost", "::1")
    security = TransportSecuritySettings(
        # DNS-rebinding protection only means something on loopback; elsewhere the token guards.
        enable_dns_rebinding_protection=loopback,
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
    )
    mcp_app = mcp.streamable_http_app(
        streamable_http_path="/mcp",
        transport_security=security,
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
            "storage": size_guard.last.model_dump() if size_guard.last else None,
        }
        return JSONResponse(body, status_code=200 if embedder.ready else 503)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        service.embedder.start_loading()
        service.start_background()
        size_guard.run_every(SIZE_CHECK_SECONDS, first_after=1.0)
        async with mcp.session_manager.run():
            try:
                yield
            finally:
                size_guard.stop()
                await _in_thread(hooks.close)

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Mount("/api", routes=RestApi(service, settings).routes()),
            Route("/hooks/{event}", HookApi(hooks, settings).handle, methods=["POST"]),
            *Dashboard(settings, service, hooks).routes(),  # "/" and its pages; before the MCP mount
            Mount(
                "/", app=McpBodyLimit(mcp_app, settings.server.max_request_bytes)
            ),  # serves exactly /mcp; mounted last so it sees only the rest
        ],
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.hooks = hooks
    app.add_middleware(ServerTimingMiddleware)
    token = settings.server.token.get_secret_value() if settings.server.token else None
    if token:
        app.add_middleware(BearerTokenMiddleware, token=token)
    return app
