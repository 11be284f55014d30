"""The dashboard's pages: server-rendered with Jinja2 (autoescaped), refreshed with vendored htmx.

Every read and write goes through MemoryService (list, retrieve, get, update, delete, forget,
stats, counts_by_type, uses); this module only hands the forms (``forms``) to it and its
answers to the templates (``render``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import anyio
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from clarity import __version__
from clarity.config import Settings, describe_validation_error
from clarity.dashboard.anchor_view import FIELD as ANCHOR_FIELD
from clarity.dashboard.anchor_view import anchor_context, reanchor_specs, service_error
from clarity.dashboard.forms import PAGE_SIZES, SORTS, Filters, PageError, patch_from
from clarity.dashboard.render import Handler, Renderer, https, index_state, provenance
from clarity.dashboard.security import SESSION_COOKIE, safe_next, session_value, token_ok
from clarity.dashboard.team_view import sharing, team_view, with_team
from clarity.hooks.service import HookService
from clarity.hooks.why_not import explain
from clarity.lifecycle.retention import disk_usage
from clarity.memory import MemoryService, ScopeRequired
from clarity.memory.service import TeamRefusal
from clarity.models import GLOBAL_SCOPE, MAX_QUERY_CHARS, MAX_RESULTS, Memory, MemoryPatch, MemoryType, Source
from clarity.project import known_root
from clarity.requests import AnchorReport, RankWhy

T = TypeVar("T")

HOOK_EVENTS = ("SessionStart", "UserPromptSubmit", "PreToolUse")
FACET_TTL = 10.0  # seconds the scope list is reused: it is read on every page and changes rarely
SIZE_TTL = 30.0
STATIC_DIR = Path(__file__).parent / "static"
TYPES = [t.value for t in MemoryType]
SOURCES = [s.value for s in Source]


def _directory_size(path: Path) -> int | None:
    """What the engine's files really take on disk (the blocks the size cap counts), not their
    apparent size: an empty shard's preallocated files look like 190 MB but use under 1 MB."""
    return disk_usage(path) if path.exists() else None


def _message(exc: Exception) -> str:
    return "; ".join(describe_validation_error(exc)) if isinstance(exc, ValidationError) else str(exc)


async def _unless_refused(change: Callable[..., T], *args: Any) -> T:
    """``change(*args)`` off the event loop; a change only a teammate (or an admin) may make is a
    403 page naming who can (``TeamRefusal``: an edit, an unshare or a delete of their memory)."""
    try:
        return await run_in_threadpool(change, *args)
    except TeamRefusal as exc:
        raise PageError(403, str(exc)) from None


class Dashboard:
    def __init__(self, settings: Settings, service: MemoryService, hooks: HookService) -> None:
        self.settings = settings
        self.service = service
        self.hooks = hooks
        self.injections = hooks.injections
        self.token = settings.server.token.get_secret_value() if settings.server.token else None
        self.pages = Renderer(self.token)
        self.render = self.pages.render
        self.started_at = time.time()
        self._scopes: tuple[float, dict[str, int]] = (0.0, {})
        self._size: tuple[float, int | None] = (0.0, None)

    def routes(self) -> list[BaseRoute]:
        def page(handler: Handler) -> Handler:  # a page with the header: the team's status line
            return self.pages.page(with_team(self.service, handler))

        bare = self.pages.page  # fragments, and the pages before log in: no team line
        return [
            Route("/", page(self.memories)),
            Route("/fragments/memories", bare(self.memories_fragment)),
            Route("/fragments/team", page(self.team_fragment)),
            Route("/memory/{memory_id}", page(self.memory), methods=["GET", "POST"]),
            Route("/memory/{memory_id}/delete", page(self.delete), methods=["GET", "POST"]),
            Route("/memory/{memory_id}/reanchor", page(self.reanchor), methods=["POST"]),
            Route("/memory/{memory_id}/confirm", page(self.confirm), methods=["POST"]),
            Route("/memory/{memory_id}/share", page(self.share), methods=["POST"]),
            Route("/injections", page(self.injection_log)),
            Route("/fragments/injections", bare(self.injections_fragment)),
            Route("/overview", page(self.overview)),
            Route("/forget", page(self.forget), methods=["GET", "POST"]),
            Route("/login", bare(self.login), methods=["GET", "POST"]),
            Route("/logout", bare(self.logout), methods=["POST"]),
            Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        ]

    # -- scopes -----------------------------------------------------------------------------

    def _scope_counts(self) -> dict[str, int]:
        stamp, counts = self._scopes
        if time.monotonic() - stamp > FACET_TTL:
            counts = self.service.stats(None, "all").by_scope
            self._scopes = (time.monotonic(), counts)
        return counts

    def _scope_options(self, counts: dict[str, int]) -> list[tuple[str, str]]:
        current = self.injections.last_scope()
        options = [("all", "all scopes")]
        if current and current != GLOBAL_SCOPE:
            options.append(("current", f"current project ({current})"))
        options.append((GLOBAL_SCOPE, f"global ({counts.get(GLOBAL_SCOPE, 0)})"))
        options += [(s, f"{s} ({n})") for s, n in sorted(counts.items()) if s != GLOBAL_SCOPE]
        return options

    def _scope(self, value: str) -> str:
        if value == "current":
            current = self.injections.last_scope()
            if not current:
                raise PageError(
                    400, "scope: no current project yet (no hook has run since the daemon started)"
                )
            return current
        return value

    # -- memories ---------------------------------------------------------------------------

    def _results(self, filters: Filters) -> dict[str, Any]:
        scope = self._scope(filters.scope)
        scores: dict[str, tuple[float, float | None, RankWhy | None]] = {}
        # Anchor states for the out-of-date marker: search results carry them (retrieve checks
        # its results); a plain list would need a check per row on every 5-second refresh.
        anchors: dict[str, AnchorReport] = {}
        if filters.q:
            # Search ranks by relevance; MAX_RESULTS is as deep as retrieval goes, so pages slice it.
            wanted = min(MAX_RESULTS, filters.offset + filters.limit)
            found = self.service.retrieve(filters.retrieve_request(scope, wanted), track_use=False)
            page = found.results[filters.offset : filters.offset + filters.limit]
            memories = [r.memory for r in page]
            scores = {r.memory.id: (r.score, r.similarity, r.why) for r in page}
            anchors = {r.memory.id: r.anchors for r in page if r.anchors is not None}
            total = len(found.results)
            more = total == wanted and wanted < MAX_RESULTS
            next_offset = (
                filters.offset + filters.limit if more or total > filters.offset + filters.limit else None
            )
        else:
            result = self.service.list(filters.list_request(scope))
            memories, total, next_offset = result.memories, result.total, result.next_offset
        previous = max(0, filters.offset - filters.limit) if filters.offset else None
        return {
            "memories": memories,
            "scores": scores,
            "anchors": anchors,
            "uses": self.service.uses(memories),
            "total": total,
            "searching": bool(filters.q),
            "filters": filters,
            "next_query": filters.query(offset=next_offset) if next_offset is not None else None,
            "prev_query": filters.query(offset=previous) if previous is not None else None,
            "rendered_at": time.time(),
        }

    async def memories(self, request: Request) -> Response:
        filters = Filters.parse(request.query_params)
        error = None
        try:
            results = await run_in_threadpool(self._results, filters)
        except (PageError, ValidationError, ScopeRequired) as exc:
            error = _message(exc)
            results = {"memories": [], "total": 0, "error": error}
        counts = await run_in_threadpool(self._scope_counts)
        context = {
            "filters": filters,
            "results": results,
            "error": error,
            "scope_options": self._scope_options(counts),
            "types": TYPES,
            "sources": SOURCES,
            "sorts": SORTS,
            "page_sizes": PAGE_SIZES,
            "deleted": request.query_params.get("deleted"),
        }
        return self.render(request, "memories.html", context)

    async def memories_fragment(self, request: Request) -> Response:
        filters = Filters.parse(request.query_params)
        results = await run_in_threadpool(self._results, filters)
        return self.render(request, "_results.html", {"results": results, "filters": filters}, fragment=True)

    # -- one memory -------------------------------------------------------------------------

    async def memory(self, request: Request) -> Response:
        memory_id = request.path_params["memory_id"]
        memory = await run_in_threadpool(self.service.get, memory_id)
        error = None
        if request.method == "POST":
            form = await request.form()
            try:
                patch = patch_from(memory, form)
            except (PageError, ValidationError) as exc:
                patch, error = None, _message(exc)
            if patch is None and error is None:
                return RedirectResponse(f"/memory/{memory.id}?saved=0", status_code=303)
            if patch is not None:
                updated = await _unless_refused(self.service.update, memory.id, patch)
                if updated.team:  # the edit brought a secret into a shared memory: it left the team
                    return await self._after_sharing(request, updated, updated.team)
                return RedirectResponse(f"/memory/{memory.id}?saved=1", status_code=303)
        return await self._memory_page(request, memory, error=error)

    async def share(self, request: Request) -> Response:
        """The "Share with the team" and "Stop sharing" button (``MemoryPatch.shared``): the page
        again, saying what became of it (queued, kept personal and why, withdrawn)."""
        memory = await run_in_threadpool(self.service.get, request.path_params["memory_id"])
        wanted = str((await request.form()).get("shared") or "")
        if wanted not in ("0", "1"):
            raise PageError(400, f"shared: {wanted!r} is not 1 (share with the team) or 0 (stop sharing)")
        try:
            updated = await _unless_refused(self.service.update, memory.id, MemoryPatch(shared=wanted == "1"))
        except ValueError as exc:  # a global memory
            return await self._memory_page(request, memory, error=_message(exc))
        return await self._after_sharing(request, updated, updated.team)

    async def _after_sharing(self, request: Request, memory: Memory, note: str | None) -> Response:
        """The memory's page after a change of its sharing, with the team's line read again (the
        one read before the change does not count the op it queued)."""
        request.state.team = await team_view(self.service)
        return await self._memory_page(request, memory, team_note=note)

    async def _memory_page(
        self,
        request: Request,
        memory: Memory,
        error: str | None = None,
        anchor_error: str | None = None,
        anchor_specs: str = "",
        team_note: str | None = None,
    ) -> Response:
        lookup = await self._why_not(request, memory)
        report = await run_in_threadpool(self.service.anchor_report, memory)
        context = {
            **lookup,
            "memory": memory,
            "uses": self.service.uses([memory])[memory.id],
            "types": TYPES,
            "saved": request.query_params.get("saved"),
            "anchored": request.query_params.get("anchored"),
            "error": error,
            "anchor": anchor_context(memory, report, known_root(memory.scope)),
            "anchor_error": anchor_error,
            "anchor_specs": anchor_specs,
            "injected_in": self.injections.recent(limit=20, memory_id=memory.id),
            "provenance": provenance(memory),
            "sharing": sharing(memory, request.state.team),
            "team_note": team_note,
        }
        return self.render(request, "memory.html", context, 400 if error or anchor_error else 200)

    async def reanchor(self, request: Request) -> Response:
        """Capture the memory's anchors again: where each is now, or at the places typed (one per
        line). A place that cannot be anchored is shown on the page by its line, with a 400."""
        memory = await run_in_threadpool(self.service.get, request.path_params["memory_id"])
        text = str((await request.form()).get(ANCHOR_FIELD) or "")
        lines: list[int] = []
        try:
            specs, lines = reanchor_specs(text)
            await run_in_threadpool(self.service.reanchor, memory.id, specs)
        except (PageError, ValueError) as exc:
            message = str(exc) if isinstance(exc, PageError) else service_error(_message(exc), lines)
            return await self._memory_page(request, memory, anchor_error=message, anchor_specs=text)
        return RedirectResponse(f"/memory/{memory.id}?anchored=1#anchors", status_code=303)

    async def confirm(self, request: Request) -> Response:
        """The "still true" button: the memory is right as it is, so its anchors are captured
        again where they are and the time of the confirmation is kept."""
        memory = await run_in_threadpool(self.service.get, request.path_params["memory_id"])
        try:
            await run_in_threadpool(self.service.confirm, memory.id)
        except ValueError as exc:
            return await self._memory_page(request, memory, anchor_error=_message(exc))
        return RedirectResponse(f"/memory/{memory.id}?anchored=confirmed#anchors", status_code=303)

    async def _why_not(self, request: Request, memory: Memory) -> dict[str, Any]:
        """The "why not" lookup of a memory page: the prompt hook replayed for a prompt typed
        there (``clarity.hooks.why_not``), in the project chosen (the memory's own by default)."""
        params = request.query_params
        prompt = (params.get("prompt") or "").strip()
        if len(prompt) > MAX_QUERY_CHARS:
            raise PageError(
                400,
                f"prompt: {len(prompt)} characters; at most {MAX_QUERY_CHARS} (what the prompt hook reads)",
            )
        # The scope list is reused for FACET_TTL seconds: a memory stored since is not in it yet,
        # so its own scope is always one of the choices.
        own = {memory.scope} - {GLOBAL_SCOPE}
        projects = sorted({s for s in self._scope_counts() if s != GLOBAL_SCOPE} | own)
        current = self.injections.last_scope()
        default = (
            memory.scope if memory.scope != GLOBAL_SCOPE else current or (projects[0] if projects else "")
        )
        project = (params.get("project") or default).strip()
        if project and project not in projects and project != current:
            raise PageError(400, f"project: {project!r} holds no memories and no hook has run in it")
        found = (
            await run_in_threadpool(explain, self.hooks, memory, prompt, project or None) if prompt else None
        )
        return {"why_prompt": prompt, "why_project": project, "why_projects": projects, "why_not": found}

    async def delete(self, request: Request) -> Response:
        memory = await run_in_threadpool(self.service.get, request.path_params["memory_id"])
        if request.method == "POST":
            await _unless_refused(self.service.delete, memory.id)
            self._scopes = (0.0, {})
            return RedirectResponse(f"/?deleted={memory.id}", status_code=303)
        return self.render(
            request, "delete.html", {"memory": memory, "sharing": sharing(memory, request.state.team)}
        )

    # -- injections -------------------------------------------------------------------------

    def _injection_context(self, request: Request) -> dict[str, Any]:
        event = request.query_params.get("event") or None
        if event and event not in HOOK_EVENTS:
            raise PageError(400, f"event: {event!r} is not one of {', '.join(HOOK_EVENTS)}")
        return {
            "entries": self.injections.recent(limit=100, event=event),
            "event": event or "",
            "events": HOOK_EVENTS,
            "kept": len(self.injections),
            "capacity": self.injections.capacity,
            "query": urlencode({"event": event}) if event else "",
        }

    async def injection_log(self, request: Request) -> Response:
        return self.render(request, "injections.html", self._injection_context(request))

    async def injections_fragment(self, request: Request) -> Response:
        return self.render(request, "_injections.html", self._injection_context(request), fragment=True)

    async def team_fragment(self, request: Request) -> Response:
        """The team's status line, polled by every page: empty once no team tier runs."""
        return self.render(request, "_team.html", {}, fragment=True)

    # -- overview ---------------------------------------------------------------------------

    def _store_size(self, engine: str) -> int | None:
        if engine != "embedded":
            return None
        stamp, size = self._size
        if time.monotonic() - stamp > SIZE_TTL:
            size = _directory_size(self.settings.storage.qdrant_dir)
            self._size = (time.monotonic(), size)
        return size

    def _overview(self) -> dict[str, Any]:
        stats = self.service.stats(None, "all")
        projects = [
            (scope, count, self.service.counts_by_type(scope))
            for scope, count in sorted(stats.by_scope.items(), key=lambda kv: -kv[1])[:12]
        ]
        return {
            "stats": stats,
            "projects": projects,
            "more_projects": max(0, len(stats.by_scope) - len(projects)),
            "store_size": self._store_size(stats.engine),
            "index_state": index_state(stats.index),
            "hook_stats": self.injections.hook_stats(),
            "health": {
                "version": __version__,
                "pid": os.getpid(),
                "uptime": time.time() - self.started_at,
                "model_ready": stats.model_ready,
                "model_error": stats.model_error,
                "learning_backlog": self.hooks.learner.backlog,
                "learning_dropped": self.hooks.learner.dropped,
                "injections_kept": len(self.injections),
                "bind": f"{self.settings.server.host}:{self.settings.server.port}",
                "token": bool(self.token),
            },
        }

    async def overview(self, request: Request) -> Response:
        return self.render(request, "overview.html", await run_in_threadpool(self._overview))

    # -- bulk forget ------------------------------------------------------------------------

    async def forget(self, request: Request) -> Response:
        counts = await run_in_threadpool(self._scope_counts)
        context: dict[str, Any] = {
            "scope_options": self._scope_options(counts),
            "types": TYPES,
            "sources": SOURCES,
            "preview": None,
            "done": None,
            "error": None,
        }
        if request.method == "POST":
            form = await request.form()
            filters = Filters.parse(form)
            forget = filters.forget_request(self._scope(filters.scope))
            result = await run_in_threadpool(self.service.forget, forget, None, False)
            self._scopes = (0.0, {})
            expected = str(form.get("expected") or "")
            context.update(
                filters=filters, done=result, expected=int(expected) if expected.isdigit() else None
            )
            return self.render(request, "forget.html", context)
        filters = Filters.parse(request.query_params)
        context["filters"] = filters
        if request.query_params.get("preview"):
            try:
                forget = filters.forget_request(self._scope(filters.scope))
                context["preview"] = await run_in_threadpool(self.service.forget, forget, None, True)
            except (PageError, ValidationError) as exc:
                context["error"] = _message(exc)
        return self.render(request, "forget.html", context)

    # -- login ------------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        target = safe_next(request.query_params.get("next"))
        if not self.token:
            return RedirectResponse(target, status_code=303)
        if request.method == "POST":
            form = await request.form()
            supplied = form.get("token")
            target = safe_next(str(form.get("next") or "/"))
            if isinstance(supplied, str) and token_ok(supplied, self.token):
                response = RedirectResponse(target, status_code=303)
                response.set_cookie(
                    SESSION_COOKIE,
                    session_value(self.token),
                    httponly=True,
                    samesite="strict",
                    path="/",
                    secure=https(request),
                )
                return response
            await anyio.sleep(0.5)  # a wrong guess costs the guesser time
            return self.render(request, "login.html", {"next": target, "error": "wrong token"}, 403)
        return self.render(request, "login.html", {"next": target, "error": None})

    async def logout(self, request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response
