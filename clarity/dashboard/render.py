"""How a dashboard page is made: the templates and their filters, an error page for each failure,
CSRF on every POST and the security headers on every answer.

Templates are Jinja2, autoescaped whatever their name: memory content is untrusted text.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from clarity import __version__
from clarity.config import describe_validation_error
from clarity.dashboard.forms import PageError
from clarity.dashboard.security import CSRF_COOKIE, CSRF_FIELD, SECURITY_HEADERS, SESSION_COOKIE, Csrf
from clarity.dashboard.team_view import team_mark
from clarity.embedding import ModelNotReady
from clarity.memory import MemoryNotFound, ScopeRequired
from clarity.models import Memory
from clarity.requests import RankWhy
from clarity.store.space import InsufficientStorage
from clarity.text import one_line

log = logging.getLogger(__name__)
Handler = Callable[[Request], Awaitable[Response]]

INDEX_STATES = {
    # embedded engine (clarity/store/edge/): a build runs in a child process, off the serving path
    "idle": "ready",
    "building": "building",
    "failed": "build failed (retried)",
    # server engine: Qdrant's collection status
    "green": "ready",
    "yellow": "building (optimizing)",
    "grey": "pending optimization",
    "red": "failed",
}


# -- template filters -----------------------------------------------------------------------------


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


def _short_filter(text: object, limit: int = 240) -> str:
    return one_line(str(text), limit)


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


def _why(why: RankWhy | None) -> str:
    """A result's score in one line: where each side ranked it, and the three parts that sum to
    the score (``RankWhy``), so a user can see which side brought it and what recency added."""
    if why is None:
        return ""
    sides = []
    if why.dense_rank is not None:
        cosine = "" if why.dense_cosine is None else f", similarity {why.dense_cosine:.2f}"
        sides.append(f"meaning #{why.dense_rank}{cosine}")
    if why.lexical_rank is not None:
        weight = "" if why.lexical_weight is None else f" x{why.lexical_weight:g}"
        lexical = "" if why.lexical is None else f", {why.lexical:.2f}{weight}"
        sides.append(f"words #{why.lexical_rank}{lexical}")
    if why.next_turn:
        sides.append(f"its next turn +{why.next_turn:.2f}")
    if why.session is not None:
        sides.append(f"its session {why.session:.2f}")
    found = " + ".join(sides) or "no ranking"
    return (
        f"{found} -> relevance {why.relevance:.2f}; score {why.score:.3f} = {why.relevance_part:.3f} "
        f"relevance + {why.recency_part:.3f} recency + {why.importance_part:.3f} importance"
    )


def index_state(info: dict[str, Any]) -> str:
    state = str(info.get("index_state", "unknown"))
    return INDEX_STATES.get(state, state)


def provenance(memory: Memory) -> list[tuple[str, str]]:
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


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("clarity.dashboard", "templates"),
        autoescape=True,  # every template, whatever its name: memory content is untrusted text
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=_when, ago=_ago, short=_short_filter, bytes=_bytes, number=_number, why=_why, team_mark=team_mark
    )
    env.filters["json"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    return env


def https(request: Request) -> bool:
    return request.url.scheme == "https"


# -- pages ----------------------------------------------------------------------------------------


class Renderer:
    def __init__(self, token: str | None) -> None:
        self.env = _environment()
        self.csrf = Csrf()
        self.token = token

    def page(self, handler: Handler) -> Handler:
        """CSRF on every POST, readable error pages, security headers. Host, Origin, the form's
        Content-Type and the body's size were checked by clarity.http.middleware.RequestGuard,
        for every route."""

        async def endpoint(request: Request) -> Response:
            try:
                if request.method == "POST":
                    await self._check_post(request)
                response = await handler(request)
            except PageError as exc:
                response = self.render(request, "error.html", {"message": str(exc)}, exc.status)
            except MemoryNotFound as exc:
                response = self.render(request, "error.html", {"message": str(exc)}, 404)
            except ValidationError as exc:
                message = "; ".join(describe_validation_error(exc))
                response = self.render(request, "error.html", {"message": message}, 400)
            except (ScopeRequired, ValueError) as exc:
                response = self.render(request, "error.html", {"message": str(exc)}, 400)
            except ModelNotReady as exc:
                response = self.render(request, "error.html", {"message": str(exc)}, 503)
            except InsufficientStorage as exc:
                response = self.render(request, "error.html", {"message": str(exc)}, 507)
            except Exception:
                log.exception("dashboard error on %s %s", request.method, request.url.path)
                message = "internal error; see the daemon log"
                response = self.render(request, "error.html", {"message": message}, 500)
            for key, value in SECURITY_HEADERS.items():
                response.headers.setdefault(key, value)
            return response

        return endpoint

    async def _check_post(self, request: Request) -> None:
        try:
            # Parsed once here with the limits; the handlers' own request.form() get this same form.
            form = await request.form(max_files=0, max_fields=200)
        except HTTPException as exc:  # Starlette's parser refusing the form (too many fields, ...)
            raise PageError(400, f"form: {exc.detail}") from None
        supplied = form.get(CSRF_FIELD)
        nonce = request.cookies.get(CSRF_COOKIE)
        if not self.csrf.check(nonce, supplied if isinstance(supplied, str) else None):
            raise PageError(403, "CSRF check failed: reload the page and send the form again")

    def render(
        self,
        request: Request,
        template: str,
        context: dict[str, Any],
        status: int = 200,
        fragment: bool = False,
    ) -> Response:
        nonce = request.cookies.get(CSRF_COOKIE)
        fresh = nonce is None or not self.csrf.valid_nonce(nonce)
        if fresh or nonce is None:
            nonce = self.csrf.new_nonce()  # first visit: the cookie is set on this response
        base = {
            "request_path": request.url.path,
            "csrf_field": CSRF_FIELD,
            "csrf_token": self.csrf.token(nonce),
            "logged_in": bool(self.token) and request.cookies.get(SESSION_COOKIE) is not None,
            "token_required": bool(self.token),
            "version": __version__,
            "fragment": fragment,
            # The team tier's status line (``team_view.with_team`` read it before the handler
            # ran); None without a team server, and on pages that do not show it (log in).
            "team": getattr(request.state, "team", None),
        }
        html = self.env.get_template(template).render({**base, **context})
        response = HTMLResponse(html, status_code=status)
        if fresh:
            response.set_cookie(
                CSRF_COOKIE,
                nonce,
                httponly=True,
                samesite="strict",
                path="/",
                secure=https(request),
            )
        return response
