"""The dashboard's pages: server-rendered with Jinja2 (autoescaped), refreshed with vendored htmx.

Every read and write goes through MemoryService (list, retrieve, get, update, delete, forget,
stats); this module only turns form fields into its requests and its answers into HTML.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from datetime import time as day_time
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import anyio
from jinja2 import Environment, PackageLoader, StrictUndefined
from pydantic import ValidationError
from starlette.datastructures import FormData, QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from clarity import __version__
from clarity.config import Settings, describe_validation_error
from clarity.dashboard import security
from clarity.embedding import ModelNotReady
from clarity.hooks.service import HookService
from clarity.memory import MemoryNotFound, MemoryService, ScopeRequired
from clarity.models import (
    GLOBAL_SCOPE,
    MAX_RESULTS,
    ForgetRequest,
    ListRequest,
    Memory,
    MemoryPatch,
    MemoryType,
    RetrieveRequest,
    Source,
)
from clarity.retention import disk_usage
from clarity.store.base import MemoryFilter
from clarity.store.space import InsufficientStorage

log = logging.getLogger(__name__)
T = TypeVar("T")
Handler = Callable[[Request], Awaitable[Response]]

PAGE_SIZES = (25, 50, 100)
SORTS = {
    "newest": "newest first",
    "oldest": "oldest first",
    "importance": "most important",
    "updated": "recently updated",
}
HOOK_EVENTS = ("SessionStart", "UserPromptSubmit", "PreToolUse")
FACET_TTL = 10.0  # seconds the scope list is reused: it is read on every page and changes rarely
SIZE_TTL = 30.0
STATIC_DIR = Path(__file__).parent / "static"


class PageError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _in_thread(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await anyio.to_thread.run_sync(lambda: func(*args, **kwargs))


# -- formatting -------------------------------------------------------------------------------


def _when(moment: datetime | float | None) -> str:
    if moment is None:
        return "never"
    if isinstance(moment, int | float):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(moment: datetime | float | None) -> str:
    if moment is None:
        return "never"
    stamp = moment if isinstance(moment, int | float) else moment.timestamp()
    seconds = max(0.0, time.time() - stamp)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"


def _short(text: str, limit: int = 240) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bytes(size: int | None) -> str:
    if size is None:
        return "n/a"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def _number(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


INDEX_STATES = {
    # embedded engine (clarity/store/edge.py): a build runs in a child process, off the serving path
    "idle": "ready",
    "building": "building",
    "failed": "build failed (retried)",
    # server engine: Qdrant's collection status
    "green": "ready",
    "yellow": "building (optimizing)",
    "grey": "pending optimization",
    "red": "failed",
}


def _index_state(info: dict[str, Any]) -> str:
    state = str(info.get("index_state", "unknown"))
    return INDEX_STATES.get(state, state)


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("clarity.dashboard", "templates"),
        autoescape=True,  # every template, whatever its name: memory content is untrusted text
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=_when, ago=_ago, short=_short, bytes=_bytes, number=_number)
    env.filters["json"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    return env


def _directory_size(path: Path) -> int | None:
    """What the engine's files really take on disk (the blocks the size cap counts), not their
    apparent size: an empty shard's preallocated files look like 190 MB but use under 1 MB."""
    return disk_usage(path) if path.exists() else None


# -- filters ----------------------------------------------------------------------------------


def _day(value: str, end: bool = False) -> datetime | None:
    value = value.strip()
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise PageError(400, f"date: {value!r} is not a date (YYYY-MM-DD)") from None
    return datetime.combine(day, day_time.max if end else day_time.min, tzinfo=UTC)


def _fraction(value: str, name: str) -> float | None:
    value = value.strip()
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise PageError(400, f"{name}: {value!r} is not a number") from None
    if not 0.0 <= number <= 1.0:
        raise PageError(400, f"{name}: {number} is outside 0..1")
    return number


def _choices(params: QueryParams | FormData, key: str, allowed: type[MemoryType] | type[Source]) -> list[str]:
    values = [str(v) for raw in params.getlist(key) for v in str(raw).split(",") if v.strip()]
    known = {item.value for item in allowed}
    for value in values:
        if value not in known:
            raise PageError(400, f"{key}: {value!r} is not one of {', '.join(sorted(known))}")
    return list(dict.fromkeys(values))


def _tags(value: str) -> list[str]:
    return list(dict.fromkeys(t.strip() for t in value.split(",") if t.strip()))


def _int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        number = int(value) if value not in (None, "") else default
    except ValueError:
        return default
    return min(high, max(low, number))


@dataclass
class Filters:
    """The memory list's and bulk forget's form, parsed once; ``query`` rebuilds the URL."""

    q: str = ""
    scope: str = "all"
    types: list[str] = field(default_factory=list)
    tags: str = ""
    sources: list[str] = field(default_factory=list)
    since: str = ""
    until: str = ""
    min_importance: str = ""
    max_importance: str = ""
    sort: str = "newest"
    limit: int = PAGE_SIZES[0]
    offset: int = 0
    older_than_days: str = ""

    @classmethod
    def parse(cls, params: QueryParams | FormData) -> Filters:
        def text(key: str) -> str:
            value = params.get(key)
            return value.strip() if isinstance(value, str) else ""

        sort = text("sort") or "newest"
        if sort not in SORTS:
            raise PageError(400, f"sort: {sort!r} is not one of {', '.join(SORTS)}")
        return cls(
            q=text("q")[:1000],
            scope=text("scope") or "all",
            types=_choices(params, "type", MemoryType),
            tags=text("tags"),
            sources=_choices(params, "source", Source),
            since=text("since"),
            until=text("until"),
            min_importance=text("min_importance"),
            max_importance=text("max_importance"),
            sort=sort,
            limit=_int(text("limit"), PAGE_SIZES[0], 1, MAX_RESULTS),
            offset=_int(text("offset"), 0, 0, 1_000_000),
            older_than_days=text("older_than_days"),
        )

    def query(self, **changes: Any) -> str:
        data = {**self.__dict__, **changes}
        pairs: list[tuple[str, Any]] = []
        for key in (
            "q",
            "scope",
            "tags",
            "since",
            "until",
            "min_importance",
            "max_importance",
            "older_than_days",
        ):
            if data[key] and not (key == "scope" and data[key] == "all"):
                pairs.append((key, data[key]))
        pairs += [("type", t) for t in data["types"]] + [("source", s) for s in data["sources"]]
        if data["sort"] != "newest":
            pairs.append(("sort", data["sort"]))
        if data["limit"] != PAGE_SIZES[0]:
            pairs.append(("limit", data["limit"]))
        if data["offset"]:
            pairs.append(("offset", data["offset"]))
        return urlencode(pairs)

    @property
    def active(self) -> bool:
        return bool(
            self.q
            or self.scope != "all"
            or self.types
            or self.tags
            or self.sources
            or self.since
            or self.until
            or self.min_importance
            or self.max_importance
        )


# -- the app ----------------------------------------------------------------------------------


class Dashboard:
    def __init__(self, settings: Settings, service: MemoryService, hooks: HookService) -> None:
        self.settings = settings
        self.service = service
        self.hooks = hooks
        self.injections = hooks.injections
        self.env = _environment()
        self.csrf = security.Csrf()
        self.token = settings.server.token.get_secret_value() if settings.server.token else None
        self.started_at = time.time()
        self._scopes: tuple[float, dict[str, int]] = (0.0, {})
        self._size: tuple[float, int | None] = (0.0, None)

    def routes(self) -> list[BaseRoute]:
        page = self._page
        return [
            Route("/", page(self.memories)),
            Route("/fragments/memories", page(self.memories_fragment)),
            Route("/memory/{memory_id}", page(self.memory), methods=["GET", "POST"]),
            Route("/memory/{memory_id}/delete", page(self.delete), methods=["GET", "POST"]),
            Route("/injections", page(self.injection_log)),
            Route("/fragments/injections", page(self.injections_fragment)),
            Route("/overview", page(self.overview)),
            Route("/forget", page(self.forget), methods=["GET", "POST"]),
            Route("/login", page(self.login), methods=["GET", "POST"]),
            Route("/logout", page(self.logout), methods=["POST"]),
            Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        ]

    # -- plumbing ---------------------------------------------------------------------------

    def _page(self, handler: Handler) -> Handler:
        """CSRF on every POST, readable error pages, security headers. Host, Origin, the form's
        Content-Type and the body's size were checked by clarity.app.RequestGuard, for every route."""

        async def endpoint(request: Request) -> Response:
            try:
                if request.method == "POST":
                    await self._check_post(request)
                response = await handler(request)
            except PageError as exc:
                response = self._render(request, "error.html", {"message": str(exc)}, exc.status)
            except MemoryNotFound as exc:
                response = self._render(request, "error.html", {"message": str(exc)}, 404)
            except ValidationError as exc:
                message = "; ".join(describe_validation_error(exc))
                response = self._render(request, "error.html", {"message": message}, 400)
            except (ScopeRequired, ValueError) as exc:
                response = self._render(request, "error.html", {"message": str(exc)}, 400)
            except ModelNotReady as exc:
                response = self._render(request, "error.html", {"message": str(exc)}, 503)
            except InsufficientStorage as exc:
                response = self._render(request, "error.html", {"message": str(exc)}, 507)
            except Exception:
                log.exception("dashboard error on %s %s", request.method, request.url.path)
                message = "internal error; see the daemon log"
                response = self._render(request, "error.html", {"message": message}, 500)
            for key, value in security.SECURITY_HEADERS.items():
                response.headers.setdefault(key, value)
            return response

        return endpoint

    async def _check_post(self, request: Request) -> None:
        try:
            # Parsed once here with the limits; the handlers' own request.form() get this same form.
            form = await request.form(max_files=0, max_fields=200)
        except HTTPException as exc:  # Starlette's parser refusing the form (too many fields, ...)
            raise PageError(400, f"form: {exc.detail}") from None
        supplied = form.get(security.CSRF_FIELD)
        nonce = request.cookies.get(security.CSRF_COOKIE)
        if not self.csrf.check(nonce, supplied if isinstance(supplied, str) else None):
            raise PageError(403, "CSRF check failed: reload the page and send the form again")

    def _render(
        self,
        request: Request,
        template: str,
        context: dict[str, Any],
        status: int = 200,
        fragment: bool = False,
    ) -> Response:
        nonce = request.cookies.get(security.CSRF_COOKIE)
        fresh = nonce is None or not self.csrf.valid_nonce(nonce)
        if fresh or nonce is None:
            nonce = self.csrf.new_nonce()  # first visit: the cookie is set on this response
        base = {
            "request_path": request.url.path,
            "csrf_field": security.CSRF_FIELD,
            "csrf_token": self.csrf.token(nonce),
            "logged_in": bool(self.token) and request.cookies.get(security.SESSION_COOKIE) is not None,
            "token_required": bool(self.token),
            "version": __version__,
            "fragment": fragment,
        }
        html = self.env.get_template(template).render({**base, **context})
        response = HTMLResponse(html, status_code=status)
        if fresh:
            response.set_cookie(
                security.CSRF_COOKIE,
                nonce,
                httponly=True,
                samesite="strict",
                path="/",
                secure=self._https(request),
            )
        return response

    @staticmethod
    def _https(request: Request) -> bool:
        return request.url.scheme == "https"

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
        tags = _tags(filters.tags) or None
        since, until = _day(filters.since), _day(filters.until, end=True)
        low = _fraction(filters.min_importance, "min_importance")
        high = _fraction(filters.max_importance, "max_importance")
        types = [MemoryType(t) for t in filters.types] or None
        sources = [Source(s) for s in filters.sources] or None
        scores: dict[str, tuple[float, float | None]] = {}
        if filters.q:
            # Search ranks by relevance; MAX_RESULTS is as deep as retrieval goes, so pages slice it.
            wanted = min(MAX_RESULTS, filters.offset + filters.limit)
            found = self.service.retrieve(
                RetrieveRequest(
                    query=filters.q,
                    limit=wanted,
                    scope=scope,
                    memory_types=types,
                    tags=tags,
                    since=since,
                    until=until,
                ),
                track_use=False,
            )
            hits = [
                r
                for r in found.results
                if (not sources or r.memory.source in sources)
                and (low is None or r.memory.importance >= low)
                and (high is None or r.memory.importance <= high)
            ]
            page = hits[filters.offset : filters.offset + filters.limit]
            memories = [r.memory for r in page]
            scores = {r.memory.id: (r.score, r.similarity) for r in page}
            total = len(hits)
            more = len(found.results) == wanted and wanted < MAX_RESULTS
            next_offset = (
                filters.offset + filters.limit if more or total > filters.offset + filters.limit else None
            )
        else:
            result = self.service.list(
                ListRequest(
                    limit=filters.limit,
                    offset=filters.offset,
                    memory_types=types,
                    tags=tags,
                    sources=sources,
                    scope=scope,
                    since=since,
                    until=until,
                    min_importance=low,
                    max_importance=high,
                    sort=filters.sort,
                )
            )
            memories, total, next_offset = result.memories, result.total, result.next_offset
        uses = {m.id: m.access_count + self.service.access.pending_uses(m.id) for m in memories}
        previous = max(0, filters.offset - filters.limit) if filters.offset else None
        return {
            "memories": memories,
            "scores": scores,
            "uses": uses,
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
            results = await _in_thread(self._results, filters)
        except (PageError, ValidationError, ScopeRequired) as exc:
            error = (
                "; ".join(describe_validation_error(exc)) if isinstance(exc, ValidationError) else str(exc)
            )
            results = {"memories": [], "total": 0, "error": error}
        counts = await _in_thread(self._scope_counts)
        context = {
            "filters": filters,
            "results": results,
            "error": error,
            "scope_options": self._scope_options(counts),
            "types": [t.value for t in MemoryType],
            "sources": [s.value for s in Source],
            "sorts": SORTS,
            "page_sizes": PAGE_SIZES,
            "deleted": request.query_params.get("deleted"),
        }
        return self._render(request, "memories.html", context)

    async def memories_fragment(self, request: Request) -> Response:
        filters = Filters.parse(request.query_params)
        results = await _in_thread(self._results, filters)
        return self._render(request, "_results.html", {"results": results, "filters": filters}, fragment=True)

    # -- one memory -------------------------------------------------------------------------

    async def memory(self, request: Request) -> Response:
        memory_id = request.path_params["memory_id"]
        memory = await _in_thread(self.service.get, memory_id)
        error = None
        if request.method == "POST":
            form = await request.form()
            try:
                patch = self._patch(memory, form)
            except PageError as exc:
                patch, error = None, str(exc)
            except ValidationError as exc:
                patch, error = None, "; ".join(describe_validation_error(exc))
            if patch is None and error is None:
                return RedirectResponse(f"/memory/{memory.id}?saved=0", status_code=303)
            if patch is not None:
                await _in_thread(self.service.update, memory.id, patch)
                return RedirectResponse(f"/memory/{memory.id}?saved=1", status_code=303)
        context = {
            "memory": memory,
            "uses": memory.access_count + self.service.access.pending_uses(memory.id),
            "types": [t.value for t in MemoryType],
            "saved": request.query_params.get("saved"),
            "error": error,
            "injected_in": self.injections.recent(limit=20, memory_id=memory.id),
            "provenance": _provenance(memory),
        }
        return self._render(request, "memory.html", context, 400 if error else 200)

    @staticmethod
    def _patch(memory: Memory, form: FormData) -> MemoryPatch | None:
        """Only what changed: an untouched content field must not cost a re-embedding."""
        changes: dict[str, Any] = {}
        content = str(form.get("content") or "").replace("\r\n", "\n").strip()
        if content != memory.content:
            changes["content"] = content
        kind = str(form.get("memory_type") or memory.memory_type.value)
        if kind != memory.memory_type.value:
            changes["memory_type"] = kind
        tags = _tags(str(form.get("tags") or ""))
        if tags != memory.tags:
            changes["tags"] = tags
        importance = _fraction(str(form.get("importance") or ""), "importance")
        if importance is not None and abs(importance - memory.importance) > 1e-9:
            changes["importance"] = importance
        return MemoryPatch.model_validate(changes) if changes else None

    async def delete(self, request: Request) -> Response:
        memory = await _in_thread(self.service.get, request.path_params["memory_id"])
        if request.method == "POST":
            await _in_thread(self.service.delete, memory.id)
            self._scopes = (0.0, {})
            return RedirectResponse(f"/?deleted={memory.id}", status_code=303)
        return self._render(request, "delete.html", {"memory": memory})

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
        return self._render(request, "injections.html", self._injection_context(request))

    async def injections_fragment(self, request: Request) -> Response:
        return self._render(request, "_injections.html", self._injection_context(request), fragment=True)

    # -- overview ---------------------------------------------------------------------------

    def _store_size(self) -> int | None:
        if self.service.db.engine != "embedded":
            return None
        stamp, size = self._size
        if time.monotonic() - stamp > SIZE_TTL:
            size = _directory_size(self.settings.storage.qdrant_dir)
            self._size = (time.monotonic(), size)
        return size

    def _overview(self) -> dict[str, Any]:
        stats = self.service.stats(None, "all")
        projects = []
        for scope, count in sorted(stats.by_scope.items(), key=lambda kv: -kv[1])[:12]:
            # One facet per project (payload index), not a whole stats() call each.
            by_type = self.service.db.facet("memory_type", MemoryFilter(scopes=[scope]))
            projects.append((scope, count, by_type))
        return {
            "stats": stats,
            "projects": projects,
            "more_projects": max(0, len(stats.by_scope) - len(projects)),
            "store_size": self._store_size(),
            "index_state": _index_state(stats.index),
            "hook_stats": self.injections.hook_stats(),
            "health": {
                "version": __version__,
                "pid": os.getpid(),
                "uptime": time.time() - self.started_at,
                "model_ready": self.service.embedder.ready,
                "model_error": self.service.embedder.error,
                "learning_backlog": self.hooks.learner.backlog,
                "learning_dropped": self.hooks.learner.dropped,
                "injections_kept": len(self.injections),
                "bind": f"{self.settings.server.host}:{self.settings.server.port}",
                "token": bool(self.token),
            },
        }

    async def overview(self, request: Request) -> Response:
        return self._render(request, "overview.html", await _in_thread(self._overview))

    # -- bulk forget ------------------------------------------------------------------------

    def _forget_request(self, filters: Filters) -> ForgetRequest:
        data: dict[str, Any] = {"scope": self._scope(filters.scope)}
        if filters.types:
            data["memory_types"] = filters.types
        if tags := _tags(filters.tags):
            data["tags"] = tags
        if filters.sources:
            data["sources"] = filters.sources
        if filters.older_than_days:
            try:
                data["older_than_days"] = float(filters.older_than_days)
            except ValueError:
                raise PageError(
                    400, f"older_than_days: {filters.older_than_days!r} is not a number"
                ) from None
        if (high := _fraction(filters.max_importance, "max_importance")) is not None:
            data["max_importance"] = high
        return ForgetRequest.model_validate(data)

    async def forget(self, request: Request) -> Response:
        counts = await _in_thread(self._scope_counts)
        context: dict[str, Any] = {
            "scope_options": self._scope_options(counts),
            "types": [t.value for t in MemoryType],
            "sources": [s.value for s in Source],
            "preview": None,
            "done": None,
            "error": None,
        }
        if request.method == "POST":
            form = await request.form()
            filters = Filters.parse(form)
            forget = self._forget_request(filters)
            result = await _in_thread(self.service.forget, forget, None, False)
            self._scopes = (0.0, {})
            expected = str(form.get("expected") or "")
            context.update(
                filters=filters, done=result, expected=int(expected) if expected.isdigit() else None
            )
            return self._render(request, "forget.html", context)
        filters = Filters.parse(request.query_params)
        context["filters"] = filters
        if request.query_params.get("preview"):
            try:
                forget = self._forget_request(filters)
                context["preview"] = await _in_thread(self.service.forget, forget, None, True)
            except (PageError, ValidationError) as exc:
                context["error"] = (
                    "; ".join(describe_validation_error(exc))
                    if isinstance(exc, ValidationError)
                    else str(exc)
                )
        return self._render(request, "forget.html", context)

    # -- login ------------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        target = security.safe_next(request.query_params.get("next"))
        if not self.token:
            return RedirectResponse(target, status_code=303)
        if request.method == "POST":
            form = await request.form()
            supplied = form.get("token")
            target = security.safe_next(str(form.get("next") or "/"))
            if isinstance(supplied, str) and security.token_ok(supplied, self.token):
                response = RedirectResponse(target, status_code=303)
                response.set_cookie(
                    security.SESSION_COOKIE,
                    security.session_value(self.token),
                    httponly=True,
                    samesite="strict",
                    path="/",
                    secure=self._https(request),
                )
                return response
            await anyio.sleep(0.5)  # a wrong guess costs the guesser time
            return self._render(request, "login.html", {"next": target, "error": "wrong token"}, 403)
        return self._render(request, "login.html", {"next": target, "error": None})

    async def logout(self, request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(security.SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response


def _provenance(memory: Memory) -> list[tuple[str, str]]:
    """Where a memory came from, in words: the source, the hook event and the tool call."""
    meta = memory.metadata or {}
    rows = [("source", memory.source.value)]
    for key, label in (
        ("hook_event", "hook event"),
        ("tool_name", "tool"),
        ("command", "command"),
        ("failed_command", "failed command"),
        ("fix_command", "fixed by"),
        ("tool_use_id", "tool call id"),
        ("prompt_id", "prompt id"),
    ):
        if meta.get(key):
            rows.append((label, str(meta[key])))
    if memory.session_id:
        rows.append(("session", memory.session_id))
    return rows
