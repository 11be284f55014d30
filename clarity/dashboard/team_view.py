"""The team tier on the dashboard: the status line under every page's header, the mark on shared
memories, and what a memory's page says of its sharing (docs/team.md, docs/dashboard.md).

The line is the one ``clarity status`` and REST ``/api/team`` print (``TeamSync.status``). It is
read in a worker thread before the page's handler runs: it counts the outbox in sqlite, whose
lock an enqueue holds through its fsync, and the event loop that reads it also serves the hooks.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from clarity.describe import origin
from clarity.memory import MemoryService
from clarity.models import GLOBAL_SCOPE, Memory
from clarity.team.share import SHARED

STOP = "Stop sharing"  # the button of a shared memory: withdrawn from the team, kept here

log = logging.getLogger(__name__)
Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class TeamView:
    """The team tier as a page shows it."""

    line: str  # "team: alice on https://team:8443, 3 writes waiting, last pull 12 s ago"
    warn: bool  # unreachable, asked to wait, refused, or writes not queued: worth a look
    user: str | None  # who this daemon shares as, once the team server has said it
    report: dict[str, Any]  # the whole status, for the overview


async def team_view(service: MemoryService) -> TeamView | None:
    """The team tier's status now; None when no team server is set (``team.url``)."""
    team = service.team
    if team is None:
        return None
    try:
        report = await run_in_threadpool(team.status)
    except Exception as exc:  # a page never fails for its status line
        log.exception("the team status for the dashboard")
        return TeamView(f"team: status unknown ({type(exc).__name__}: {exc})", True, None, {})
    warn = bool(
        report.get("unreachable_since")
        or report.get("refused")
        or report.get("lost")
        or report.get("busy_retry_after") is not None
    )
    return TeamView(str(report.get("line", "")), warn, report.get("user"), report)


def with_team(service: MemoryService, handler: Handler) -> Handler:
    """``handler`` with the team line in its page (``request.state.team``, read by the renderer)."""

    async def endpoint(request: Request) -> Response:
        request.state.team = await team_view(service)
        return await handler(request)

    return endpoint


def team_mark(memory: Memory) -> str:
    """A list row's mark: "shared by alice" for a memory that came back from the team with its
    author (worded as ``describe.origin`` words it for Claude), "shared with the team" for one
    of this developer's not back yet, nothing for a personal one."""
    if not memory.shared:
        return ""
    return origin(memory) if memory.author else SHARED


@dataclass(frozen=True)
class SharingWords:
    """What a memory's page says of its sharing."""

    shared: str  # "with the team", "no: personal, it stays on this machine", ...
    author: str | None  # "alice (you)", "bob"; None for a memory no team has seen or named
    on_edit: str | None  # what saving does at the team
    on_delete: str | None  # what deleting does at the team
    button: str | None = None  # "Share with the team" or "Stop sharing"; None without a team server
    editable: bool = True  # False: a teammate's shared memory, which only its author can change


def sharing(memory: Memory, team: TeamView | None) -> SharingWords:
    """Shared or personal, by whom, and what an edit or a delete here does at the team: the team
    server takes a change from the memory's author only, and a delete from its author or an admin
    (``clarity.team.writes``), so this daemon refuses an edit of a teammate's shared memory, and
    its delete without the admin role, before anything changes (``clarity.team.share``)."""
    author = memory.author
    if not memory.shared:
        held = f"no: made personal here (it was shared by {author})" if author else None
        button = "Share with the team" if team is not None and memory.scope != GLOBAL_SCOPE else None
        return SharingWords(held or "no: personal, it stays on this machine", author, None, None, button)
    if team is None:
        return SharingWords(
            "with the team",
            author,
            "No team server is set (team.url): a change stays on this machine.",
            "No team server is set (team.url): it is deleted on this machine only.",
        )
    you = team.user
    if author is None or author == you:
        return SharingWords(
            "with the team",
            f"{author} (you)" if author else "you (the team server adds your name when it sends it back)",
            "Saving sends the change to the team.",
            "Shared with the team: it is deleted at the team too.",
            STOP,
        )
    if you is None:  # the team server has not said yet who this daemon is
        return SharingWords(
            "with the team",
            author,
            f"Saving sends the change to the team, which takes it from {author} only.",
            f"Shared by {author}: it is deleted here, and at the team only if it is yours or your role is admin.",
            STOP,
        )
    admin = team.report.get("role") == "admin"
    return SharingWords(
        "with the team",
        author,
        f"Shared by {author}: only {author} can change it"
        + (" (Stop sharing makes it a personal copy you can edit)." if admin else "."),
        f"Shared by {author}: it is deleted here and at the team (your role is admin)."
        if admin
        else f"Shared by {author}: only {author} or a team admin can delete it.",
        STOP if admin else None,
        editable=False,
    )
