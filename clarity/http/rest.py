"""The REST API at /api: memories, search, stats, forget, export, import and backup, as JSON.

A memory's anchors (``MemoryCreate.anchors``) are captured on ``POST /memories``; ``POST
/memories/{id}/reanchor`` captures them again (where the body's ``anchors`` say, or where they
are now) and ``POST /memories/{id}/confirm`` records that a user says the memory is still true.

Each route parses its request (``clarity.http.parsing``), calls the MemoryService in a worker
thread and answers JSON; every failure becomes JSON with a readable message and the status that
fits it, never a traceback.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, Field
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from clarity.config import Settings
from clarity.embedding import ModelNotReady
from clarity.exchange import ExportPageRequest, ImportBatch
from clarity.http.parsing import RequestError, json_body, parse, resolve_project
from clarity.lifecycle.backup import create_backup
from clarity.mcp.server import PROJECT_HEADER
from clarity.memory import MemoryNotFound, MemoryService, ScopeRequired
from clarity.memory.service import TeamRefusal
from clarity.models import (
    SCOPE_PATTERN,
    AnchorSpecs,
    CallerInput,
    MemoryCreate,
    MemoryPatch,
)
from clarity.requests import ForgetRequest, ListRequest, RetrieveRequest, StoreBatch
from clarity.store.space import InsufficientStorage

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]


def _json(model: BaseModel, status: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status, media_type="application/json")


LIST_PARAMS = ("memory_types", "tags", "sources")


def _query_list(request: Request, key: str) -> list[str] | None:
    values = [v for raw in request.query_params.getlist(key) for v in raw.split(",") if v]
    return values or None


class Reanchor(CallerInput):
    """``POST /memories/{id}/reanchor``'s body, all optional: where to anchor the memory now."""

    anchors: AnchorSpecs | None = Field(
        None, description="src/cart.ts or src/cart.ts:12-30; none: each anchor where it is now"
    )


async def _optional_body(request: Request) -> Any:
    """The JSON body, or an empty object when there is none (a bodiless POST declares no type)."""
    return await json_body(request) if await request.body() else {}


class RestApi:
    """The /api routes over one MemoryService (mounted at /api by ``clarity.http.app``)."""

    def __init__(self, service: MemoryService, settings: Settings) -> None:
        self.service = service
        self.settings = settings

    def routes(self) -> list[Route]:
        """One Route per path and method, in this order, each behind ``_guard``."""
        table: dict[str, dict[str, Handler]] = {
            "/memories": {"POST": self.create, "GET": self.list},
            "/memories/{memory_id}": {"GET": self.get, "PATCH": self.update, "DELETE": self.delete},
            "/memories/{memory_id}/reanchor": {"POST": self.reanchor},
            "/memories/{memory_id}/confirm": {"POST": self.confirm},
            "/search": {"POST": self.search},
            "/stats": {"GET": self.stats},
            "/team": {"GET": self.team},
            "/memories/batch": {"POST": self.create_many},
            "/forget": {"POST": self.forget},
            "/export": {"POST": self.export},
            "/import": {"POST": self.import_},
            "/backup": {"POST": self.backup},
        }
        return [
            Route(path, self._guard(handler), methods=[method])
            for path, handlers in table.items()
            for method, handler in handlers.items()
        ]

    @staticmethod
    def _guard(handler: Handler) -> Handler:
        """Every failure becomes JSON with a readable message; nothing leaks a traceback."""

        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestError as exc:
                return JSONResponse({"error": str(exc), "details": exc.details}, status_code=exc.status)
            except MemoryNotFound as exc:
                return JSONResponse({"error": str(exc)}, status_code=404)
            except TeamRefusal as exc:  # the team server would refuse it for this user: 403, as it does
                return JSONResponse({"error": str(exc)}, status_code=403)
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
        payload = parse(MemoryCreate, await json_body(request))
        result = await run_in_threadpool(self.service.store, payload, self._project(request))
        return _json(result, 201 if result.status == "created" else 200)

    async def list(self, request: Request) -> Response:
        # Every ListRequest field is a query parameter; an unknown one is refused by name
        # (extra="forbid"), never silently ignored.
        params = request.query_params
        data: dict[str, Any] = {k: params.getlist(k)[-1] for k in params if k not in LIST_PARAMS}
        for key in LIST_PARAMS:
            if (values := _query_list(request, key)) is not None:
                data[key] = values
        result = await run_in_threadpool(self.service.list, parse(ListRequest, data), self._project(request))
        return _json(result)

    async def get(self, request: Request) -> Response:
        return _json(await run_in_threadpool(self.service.get, request.path_params["memory_id"]))

    async def update(self, request: Request) -> Response:
        patch = parse(MemoryPatch, await json_body(request))
        return _json(await run_in_threadpool(self.service.update, request.path_params["memory_id"], patch))

    async def reanchor(self, request: Request) -> Response:
        body = parse(Reanchor, await _optional_body(request))
        memory_id = request.path_params["memory_id"]
        return _json(await run_in_threadpool(self.service.reanchor, memory_id, body.anchors))

    async def confirm(self, request: Request) -> Response:
        parse(CallerInput, await _optional_body(request))  # nothing to say but "still true"
        return _json(await run_in_threadpool(self.service.confirm, request.path_params["memory_id"]))

    async def delete(self, request: Request) -> Response:
        return _json(await run_in_threadpool(self.service.delete, request.path_params["memory_id"]))

    async def search(self, request: Request) -> Response:
        query = parse(RetrieveRequest, await json_body(request))
        return _json(await run_in_threadpool(self.service.retrieve, query, self._project(request)))

    async def create_many(self, request: Request) -> Response:
        batch = parse(StoreBatch, await json_body(request))
        results = await run_in_threadpool(self.service.store_many, batch.memories, self._project(request))
        return JSONResponse({"results": [r.model_dump(mode="json") for r in results]})

    async def forget(self, request: Request) -> Response:
        dry_run = request.query_params.get("dry_run", "false").lower() in ("1", "true", "yes")
        what = parse(ForgetRequest, await json_body(request))
        return _json(await run_in_threadpool(self.service.forget, what, self._project(request), dry_run))

    async def export(self, request: Request) -> Response:
        page = parse(ExportPageRequest, await json_body(request))
        return _json(await run_in_threadpool(self.service.export_page, page, self._project(request)))

    async def import_(self, request: Request) -> Response:
        batch = parse(ImportBatch, await json_body(request))
        return _json(await run_in_threadpool(self.service.import_batch, batch))

    async def backup(self, request: Request) -> Response:
        """The archive is built in the storage's cache directory and streamed back, so the daemon
        never writes to a path a caller names."""
        cache = self.settings.storage.cache_dir
        cache.mkdir(parents=True, exist_ok=True, mode=0o700)
        archive = cache / f"backup-{uuid.uuid4().hex}.tar.gz"
        summary = await run_in_threadpool(create_backup, self.service, self.settings, archive)
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
        stats = await run_in_threadpool(self.service.stats, self._project(request), scope)
        return JSONResponse({**stats.model_dump(mode="json"), "team": await self._team()})

    async def team(self, request: Request) -> Response:
        """The team tier's status (``clarity.team.sync``): null when no team server is set."""
        return JSONResponse({"team": await self._team()})

    async def _team(self) -> dict[str, Any] | None:
        team = self.service.team
        return None if team is None else await run_in_threadpool(team.status)
