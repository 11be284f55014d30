"""Which project an MCP tool call is for when no ``X-Clarity-Project`` header names it: the client's roots.

A project or local install (and the plugin) sends the header with every request, and the stdio
shim (``clarity mcp``) runs in the project directory and names it itself. Any other client, such
as Claude Code registered in user scope over HTTP or a generic MCP client, is asked for its MCP
roots when a call's scope needs the project: the first ``file://`` root is the project
directory, handed to the backend like a header value, so ``clarity/project.py`` resolves both
the same way. Roots are asked only of a client that declared the capability:

* on a handshake-era connection (protocol up to 2025-11-25) with ``roots/list`` on the call's own
  stream, once per MCP session (cached by session id; ``notifications/roots/list_changed``
  drops the entry, so the next call asks again);
* on a 2026-07-28 connection, which has neither a session nor server-to-client requests, through
  the SDK's resolver: the call answers ``input_required`` with a ``roots/list`` question and the
  client repeats it with the answer (Claude Code 2.1.330 speaks this era to this server).

A client that names no project gets ``global``, and the tool result says so in a note the model
reads: the README's promise, where the service alone would refuse (``ScopeRequired``).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import anyio
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import ListRoots
from mcp.shared.message import ServerMessageMetadata
from mcp_types import ListRootsRequest, ListRootsResult, NotificationParams
from mcp_types.version import is_version_at_least

log = logging.getLogger(__name__)

PROJECT_HEADER = "x-clarity-project"
SESSION_HEADER = "mcp-session-id"
ROOTS_EVENT = "notifications/roots/list_changed"
# The first protocol revision without server-to-client requests: roots come in an input round.
INPUT_ROUND_VERSION = "2026-07-28"
ROOTS_TIMEOUT = 5.0  # seconds a client gets to answer roots/list; Claude Code answers at once
MAX_SESSIONS = 1024  # sessions whose answer is remembered, least recently used dropped first
NO_PROJECT = "this client names no project (no X-Clarity-Project header, no MCP roots)"

Headers = Mapping[str, str] | None


@dataclass(frozen=True)
class Caller:
    """Where a tool call comes from, as far as scopes go.

    ``project`` is what the backend is given (a directory or a scope id; None leaves it to the
    backend: the stdio shim's own directory, or no project); ``known`` says whether any project
    is named at all; ``why`` is, when none is, the reason the note gives."""

    project: str | None
    known: bool
    why: str = ""


def header_project(headers: Headers) -> str | None:
    if headers:
        return headers.get(PROJECT_HEADER) or headers.get("X-Clarity-Project") or None
    return None


def root_directory(roots: ListRootsResult) -> str | None:
    """The directory of the first ``file://`` root naming one on this machine's file system
    (no host, or ``localhost``), as an absolute path; None if there is none."""
    for root in roots.roots:
        try:
            parts = urlsplit(str(root.uri))
        except ValueError:
            continue
        if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            continue
        path = unquote(parts.path)
        if path.startswith("/") and "\x00" not in path:
            return path.rstrip("/") or "/"
    return None


def settle(found: Caller | ListRootsResult) -> Caller:
    """The caller a resolver found: as it is, or from the roots a 2026-07-28 client answered."""
    if isinstance(found, Caller):
        return found
    return _from_roots(found)


def _from_roots(roots: ListRootsResult) -> Caller:
    directory = root_directory(roots)
    if directory is None:
        return Caller(None, False, "this client's MCP roots name no local directory")
    return Caller(directory, True)


class ProjectFinder:
    """Finds the project of a tool call; one per server, shared by every session it serves."""

    def __init__(self, default_project: str | None) -> None:
        self.default_project = default_project
        self._known: OrderedDict[str, Caller] = OrderedDict()
        self._asking: dict[str, anyio.Event] = {}

    async def find(self, ctx: Context[Any, Any], needs_project: bool) -> Caller | ListRoots:
        """The caller, or (2026-07-28) the ``ListRoots`` question the SDK asks in an input round."""
        header = header_project(ctx.headers)
        if header:
            return Caller(header, True)
        if self.default_project:
            return Caller(None, True)  # the backend names it (the stdio shim's directory)
        if not needs_project:
            return Caller(None, False)
        capabilities = ctx.client_capabilities
        if capabilities is None or capabilities.roots is None:
            return Caller(None, False, NO_PROJECT)
        version = ctx.protocol_version
        if version is not None and is_version_at_least(version, INPUT_ROUND_VERSION):
            return ListRoots()
        session = (ctx.headers or {}).get(SESSION_HEADER)
        if not session:
            return await self._ask(ctx)
        return await self._for_session(ctx, session)

    async def _for_session(self, ctx: Context[Any, Any], session: str) -> Caller:
        """One roots/list per session, however many calls arrive at once."""
        while True:
            if session in self._known:
                self._known.move_to_end(session)
                return self._known[session]
            waiting = self._asking.get(session)
            if waiting is None:
                break
            await waiting.wait()
        done = self._asking[session] = anyio.Event()
        try:
            caller = await self._ask(ctx)
            self._known[session] = caller
            while len(self._known) > MAX_SESSIONS:
                self._known.popitem(last=False)
        finally:
            del self._asking[session]
            done.set()
        return caller

    async def _ask(self, ctx: Context[Any, Any]) -> Caller:
        session = ctx.request_context.session
        if not session.can_send_request:
            return Caller(None, False, NO_PROJECT)
        try:
            roots = await session.send_request(
                ListRootsRequest(),
                ListRootsResult,
                request_read_timeout_seconds=ROOTS_TIMEOUT,
                metadata=ServerMessageMetadata(related_request_id=ctx.request_context.request_id),
            )
        except Exception as exc:  # the client's failure: a note, never a failed tool call
            log.info("roots/list failed: %r", exc)
            return Caller(None, False, f"this client's roots/list failed ({str(exc) or type(exc).__name__})")
        return _from_roots(roots)

    async def roots_changed(self, ctx: ServerRequestContext[Any, Any], _: NotificationParams) -> None:
        """``notifications/roots/list_changed``: the session's next call asks again."""
        session = (getattr(ctx.request, "headers", None) or {}).get(SESSION_HEADER)
        if session:
            self._known.pop(session, None)
