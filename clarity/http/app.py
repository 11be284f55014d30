"""The daemon's ASGI app: MCP at /mcp, REST at /api, hooks at /hooks, the dashboard, health at
/healthz and /readyz, all behind ``RequestGuard``.

Assembly only: the routes are ``rest``, ``hook_routes`` and ``clarity.dashboard``; the MCP tools
run on ``mcp_backend``; the middlewares are ``middleware``. Everything blocking runs in worker
threads (starlette's ``run_in_threadpool``) so the event loop keeps answering health checks and
hooks while a request is being served.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from clarity import __version__
from clarity.config import Settings
from clarity.dashboard import Dashboard
from clarity.hooks.service import HookService
from clarity.http.guard_rules import shown
from clarity.http.hook_routes import HookApi
from clarity.http.mcp_backend import LocalBackend
from clarity.http.middleware import RequestGuard, ServerTimingMiddleware
from clarity.http.rest import RestApi
from clarity.lifecycle.retention import SizeGuard
from clarity.mcp.server import build_mcp_server
from clarity.memory import MemoryService


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 and 405 (no route, wrong method) in the caller's language: JSON naming
    the path on the API and hook routes, whose clients parse every answer as JSON."""
    assert isinstance(exc, HTTPException)
    path = request.url.path
    if not path.startswith(("/api/", "/hooks/")):
        return Response(exc.detail, status_code=exc.status_code, headers=exc.headers)
    if exc.status_code == 405:
        message = f"method: {request.method} is not allowed on {shown(path)}"
    else:
        message = f"path: no such route {shown(path)}"
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
            "runtime": getattr(embedder, "runtime", None),  # onnx, or torch when the export failed
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
                await run_in_threadpool(hooks.close)

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
