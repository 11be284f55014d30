"""MCP tools. This module only registers tools; the work happens behind a ``MemoryBackend``.

The daemon serves these tools over streamable HTTP with a backend that calls the
MemoryService in-process; ``clarity mcp`` serves the very same tools over stdio with a backend
that forwards to the daemon's REST API. One tool definition, two transports.

The project a call is for comes from the ``X-Clarity-Project`` header, the stdio shim's
directory, or the client's MCP roots (``roots.py``); a call whose scope needs a project that no
one names lands in (or searches) ``global``, and its result carries a ``note`` saying so.

What the model reads of ``store_memory``, ``retrieve_memory``, ``list_memories`` and
``update_memory`` is short text (``results.py``). Claude Code 2.1.330 hands the model a result's
``structuredContent`` (as JSON) whenever there is one, and its text blocks only when there is
none (seen through the real CLI: ``tests/e2e/test_mcp_results_e2e.py``), so these tools declare
no output schema and send structured content only with ``detail``, which gives the reply every
earlier version gave (the same JSON in the text and in ``structuredContent``) to a caller that
parses it. ``delete_memory`` and ``memory_stats`` keep their output schemas (short already).
Limits are in the input schemas (``minimum``, ``maxLength``...), from the same constants the
service checks against.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import ListRoots, Resolve
from mcp_types import CallToolResult, InputRequiredResult, ListRootsResult, NotificationParams, TextContent
from pydantic import BaseModel, Field, ValidationError, WithJsonSchema

from clarity import __version__
from clarity.config import describe_validation_error
from clarity.mcp.backend import BackendError, MemoryBackend
from clarity.mcp.results import list_text, retrieve_text, store_text, update_text
from clarity.mcp.roots import (
    NO_PROJECT,
    PROJECT_HEADER,
    ROOTS_EVENT,
    Caller,
    ProjectFinder,
    header_project,
    settle,
)
from clarity.mcp.stats import public_stats
from clarity.models import (
    GLOBAL_SCOPE,
    MAX_CONTENT_CHARS,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_PAGE,
    MAX_QUERY_CHARS,
    MAX_RESULTS,
    MAX_TAGS,
    AnchorSpecs,
    MemoryCreate,
    MemoryPatch,
    MemoryType,
    Tag,
)
from clarity.requests import (
    DeleteResult,
    ListRequest,
    ListResult,
    RetrieveRequest,
    RetrieveResult,
    Stats,
    StoreResult,
)
from clarity.store.space import InsufficientStorage

__all__ = ["PROJECT_HEADER", "build_mcp_server"]
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
MAX_OFFSET = 1_000_000  # ListRequest.offset's limit (tests/test_mcp_results.py holds them equal)

INSTRUCTIONS = """Clarity is a long-term memory shared by every Claude Code session on this machine.
Before answering questions about this project's conventions, past decisions, commands or
earlier failures, call retrieve_memory. When the user states a preference, a decision is made,
or you learn a non-obvious fact about the project (how to build or test it, a fix for an
error), call store_memory with a short self-contained sentence."""


def _project(ctx: Context[Any, Any] | None) -> str | None:
    return header_project(ctx.headers if ctx is not None else None)


def _build(model: type[BaseModel], arguments: dict[str, Any]) -> Any:
    """The request a tool call makes: ``arguments`` are the tool's (its ``locals()`` before
    anything else), each named after a field of ``model``; one left as None keeps its default."""
    try:
        return model(**{k: v for k, v in arguments.items() if k in model.model_fields and v is not None})
    except ValidationError as exc:
        raise ToolError("invalid arguments: " + "; ".join(describe_validation_error(exc))) from None


async def _call(awaitable: Awaitable[T]) -> T:
    """The backend's answer; a refusal becomes a tool error whose message the model reads."""
    try:
        return await awaitable
    except ToolError:
        raise
    except (BackendError, LookupError, ValueError, InsufficientStorage) as exc:
        raise ToolError(str(exc)) from None


def _untitled(schema: Any) -> Any:
    """A JSON schema without pydantic's ``title`` annotations (``"title": "Memory Type"`` beside
    the argument ``memory_type``): 735 of the 6,889 characters of tool definitions the model reads
    every session (``scripts/bench/mcp_results.py``), saying nothing the names do not."""
    if isinstance(schema, list):
        return [_untitled(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    return {
        key: {name: _untitled(item) for name, item in value.items()}
        if key == "properties"
        else _untitled(value)
        for key, value in schema.items()
        if not (key == "title" and isinstance(value, str))
    }


def _tool(server: StrictToolServer) -> Callable[[F], F]:
    """``server.tool()`` with the docstring as the description minus its indentation (the SDK
    sends ``__doc__`` as it is: every line after the first began with eight spaces) and an
    input schema without titles."""

    def register(fn: F) -> F:
        server.tool(description=inspect.cleandoc(fn.__doc__ or ""))(fn)
        tool = server._tool_manager.get_tool(fn.__name__)
        assert tool is not None
        tool.parameters = _untitled(tool.parameters)
        return fn

    return register


def _answer(reply: BaseModel, detail: bool, text: str) -> CallToolResult:
    """``text`` alone, or with ``detail`` the whole reply: as JSON text and as structured content."""
    if not detail:
        return CallToolResult(content=[TextContent(type="text", text=text)])
    return CallToolResult(
        content=[TextContent(type="text", text=reply.model_dump_json())],
        structured_content=reply.model_dump(mode="json"),
    )


class StrictToolServer(MCPServer[Any]):
    """Checks a tool call's arguments before the SDK does: an unknown argument is refused by name
    (the SDK would drop it silently, so a misspelled filter would quietly match everything) and
    each problem reads as ``field=value: what is allowed``, the REST API's wording. Holds the
    ``ProjectFinder`` its tools ask for the caller's project."""

    def __init__(self, backend: MemoryBackend) -> None:
        super().__init__("clarity", version=__version__, instructions=INSTRUCTIONS)
        self.projects = ProjectFinder(backend.default_project)
        self._lowlevel_server.add_notification_handler(
            ROOTS_EVENT, NotificationParams, self.projects.roots_changed
        )

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        tool = self._tool_manager.get_tool(name)
        if tool is not None:
            known = set(tool.parameters.get("properties", {}))
            unknown = sorted(set(arguments) - known)
            if unknown:
                raise ToolError(
                    f"{name}: invalid arguments: "
                    + "; ".join(f"{key}: unknown argument" for key in unknown)
                    + f" (expected {', '.join(sorted(known)) or 'none'})"
                )
            try:
                tool.fn_metadata.validate_arguments(arguments)
            except ValidationError as exc:
                raise ToolError(
                    f"{name}: invalid arguments: " + "; ".join(describe_validation_error(exc))
                ) from None
        return await super().call_tool(name, arguments, context)


if TYPE_CHECKING:
    MemoryTypeName = str
else:
    # MemoryType's names, the one list: a Literal inlines them as the tools' enum in the schema.
    MemoryTypeName = Literal[tuple(kind.value for kind in MemoryType)]
Kinds = Annotated[list[MemoryTypeName] | None, Field(description="Only these kinds.")]
Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS)]
AnyOfTags = Annotated[Tags | None, Field(description="Only memories with any of these tags.")]
# Stated in the schema, checked by MemoryCreate/MemoryPatch: after stripping, in the REST API's words.
Content = Annotated[str, WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_CONTENT_CHARS})]
Importance = Annotated[float, Field(ge=0.0, le=1.0, examples=[0.5, 0.9])]
MemoryId = Annotated[str, Field(max_length=64, examples=["1a2b3c4d"])]
Anchors = Annotated[
    AnchorSpecs | None,
    Field(
        description="Files it is about, from the project root: path or path:start-end; "
        "flagged at recall when they change.",
        examples=[["src/cart.ts:12-30"]],
    ),
]
IncludeSuperseded = Annotated[
    bool, Field(description="Also memories a newer one replaced, kept as history (marked superseded).")
]
Detail = Annotated[
    bool,
    Field(
        description="Whole records as JSON (full ids, timestamps, scores, metadata) instead of short text."
    ),
]


async def _find_caller(ctx: Context[Any, Any], scope: str) -> Caller | ListRoots:
    """A resolver (the SDK runs it before the tool): the header, the backend's own project, the
    client's roots (asked, or on 2026-07-28 a ``ListRoots`` question), or no project."""
    server = ctx.mcp_server
    assert isinstance(server, StrictToolServer)
    return await server.projects.find(ctx, needs_project=scope in ("project", "default"))


# Filled by the SDK from _find_caller, never by the client: not part of the tools' input schema.
Where = Annotated[Caller | ListRootsResult, Resolve(_find_caller)]


class Noted(BaseModel):
    note: str | None = Field(
        None,
        description="Why the scope differs from the one asked for, when it does.",
        exclude_if=lambda value: value is None,
    )


class StoreReply(StoreResult, Noted):
    pass


class RetrieveReply(RetrieveResult, Noted):
    pass


class ListReply(ListResult, Noted):
    pass


def _without_project(request: Any, caller: Caller) -> Any:
    """Scope "project" with no project named: ``global`` instead of the service's refusal."""
    if request.scope == "project" and not caller.known:
        return request.model_copy(update={"scope": GLOBAL_SCOPE})
    return request


def _note(what: str, asked: str, caller: Caller, landed_global: bool) -> str | None:
    """``<what>: <why>`` (``stored in global: this client names no project ...``) when a call
    whose scope asked for the project got ``global``: none was named, or the directory named
    is not one on this machine (a client in a container, say)."""
    if asked not in ("project", "default"):
        return None
    if not caller.known:
        return f"{what}: {caller.why or 'no project is named'}"
    if landed_global and caller.project and caller.project.startswith(("/", "~")):
        return f"{what}: {caller.project} is not a directory on this machine"
    return None


def build_mcp_server(backend: MemoryBackend) -> MCPServer:
    server = StrictToolServer(backend)
    tool = _tool(server)

    @tool
    async def store_memory(
        content: Annotated[
            Content,
            Field(
                description="One self-contained statement worth remembering.",
                examples=["We deploy with `make ship`; CI pushes the image."],
            ),
        ],
        memory_type: Annotated[MemoryTypeName, Field(description="What kind of memory this is.")] = "fact",
        tags: Annotated[Tags | None, Field(description="Short labels.", examples=[["build", "ci"]])] = None,
        importance: Annotated[Importance, Field(description="0.5 is normal, 0.9 is critical.")] = 0.5,
        metadata: Annotated[
            dict[str, Any] | None,
            Field(
                description=f"Small JSON object: at most {MAX_METADATA_BYTES // 1024} KB as JSON, "
                f"nested at most {MAX_METADATA_DEPTH} deep."
            ),
        ] = None,
        scope: Annotated[
            Literal["project", "global"],
            Field(description="'project' (this repository only) or 'global' (every project)."),
        ] = "project",
        anchors: Anchors = None,
        shared: Annotated[
            bool,
            Field(description="Share with the team (a project memory); one holding a secret stays personal."),
        ] = False,
        detail: Detail = False,
        *,
        where: Where,
    ) -> CallToolResult:
        """Remember something for future sessions: a user preference, a decision and its reason,
        a project fact, the command that builds or tests the project, or an error and its fix.
        Exact duplicates are not stored twice; near duplicates are merged. A new value for what an
        older memory states (a port, a version, a tool switched) replaces it; the answer names it.
        With shared, teammates get it too; the answer says whether it was shared."""
        request = _build(MemoryCreate, locals())
        caller = settle(where)
        if request.anchors and scope == "project" and not caller.known:
            raise ToolError(
                f"anchors: {caller.why or NO_PROJECT}, so there are no project files to anchor to"
            )
        result = await _call(backend.store(_without_project(request, caller), caller.project))
        landed = result.memory.scope == GLOBAL_SCOPE
        said = [n for n in (_note("stored in global", scope, caller, landed), result.team) if n]
        reply = StoreReply(**dict(result), note="; ".join(said) or None)
        return _answer(reply, detail, store_text(reply, reply.note))

    @tool
    async def retrieve_memory(
        query: Annotated[
            str,
            Field(
                min_length=1,
                max_length=MAX_QUERY_CHARS,
                description="What you want to know, in words or exact identifiers.",
                examples=["how do we deploy", "ERR_PNPM_OUTDATED_LOCKFILE"],
            ),
        ],
        limit: Annotated[int, Field(ge=1, le=MAX_RESULTS, description="How many memories to return.")] = 5,
        memory_types: Kinds = None,
        tags: AnyOfTags = None,
        scope: Annotated[
            Literal["default", "project", "global", "all"],
            Field(description="'default' = this project + global; 'all' = every project."),
        ] = "default",
        min_score: Annotated[
            float | None, Field(ge=0.0, le=1.0, description="Drop results scoring below this.")
        ] = None,
        include_superseded: IncludeSuperseded = False,
        detail: Detail = False,
        *,
        where: Where,
    ) -> CallToolResult:
        """Search long-term memory by meaning and by exact words (error codes, file names, commands).
        Use it before answering questions about this project's history, conventions or past errors.
        Each hit reads `- [kind] text (age; where it came from; id <first 8 characters>)`, with a
        note before the id when its code changed or was deleted.
        "Nothing relevant" means no memory is close enough; the closest follow, marked weak."""
        request = _build(RetrieveRequest, locals())
        caller = settle(where)
        result = await _call(backend.retrieve(_without_project(request, caller), caller.project))
        landed = set(result.scopes or ()) == {GLOBAL_SCOPE}
        reply = RetrieveReply(**dict(result), note=_note("searched global only", scope, caller, landed))
        return _answer(reply, detail, retrieve_text(reply, reply.note, query, backend.min_similarity))

    @tool
    async def list_memories(
        limit: Annotated[int, Field(ge=1, le=MAX_PAGE, description="Page size.")] = 20,
        offset: Annotated[
            int, Field(ge=0, le=MAX_OFFSET, description="How many to skip (the next page's offset).")
        ] = 0,
        memory_types: Kinds = None,
        tags: AnyOfTags = None,
        scope: Annotated[
            Literal["default", "project", "global", "all"], Field(description="Which scopes.")
        ] = "default",
        include_superseded: IncludeSuperseded = False,
        detail: Detail = False,
        *,
        where: Where,
    ) -> CallToolResult:
        """List stored memories, newest first, a page at a time. Use it to review what is remembered."""
        request = _build(ListRequest, locals())
        caller = settle(where)
        result = await _call(backend.list(_without_project(request, caller), caller.project))
        reply = ListReply(**dict(result), note=_note("listed global only", scope, caller, False))
        return _answer(reply, detail, list_text(reply, reply.note))

    @tool
    async def update_memory(
        memory_id: Annotated[
            MemoryId, Field(description="The id returned by store/retrieve/list, or its first 8+ characters.")
        ],
        content: Annotated[Content | None, Field(description="New text (re-embedded).")] = None,
        memory_type: Annotated[MemoryTypeName | None, Field(description="New kind.")] = None,
        tags: Annotated[Tags | None, Field(description="New tags (replace the old ones).")] = None,
        importance: Annotated[Importance | None, Field(description="New importance.")] = None,
        metadata: Annotated[
            dict[str, Any] | None, Field(description="New metadata (replaces the old).")
        ] = None,
        shared: Annotated[
            bool | None,
            Field(
                description="true: share with the team (one that held a secret stays personal); "
                "false: stop sharing it (kept here)."
            ),
        ] = None,
        detail: Detail = False,
    ) -> CallToolResult:
        """Correct a memory that is wrong or outdated instead of storing a contradicting one.
        The text it had is kept with it (its last 5 versions). The answer says what became of
        its sharing when that was asked or changed."""
        memory = await _call(backend.update(memory_id, _build(MemoryPatch, locals())))
        return _answer(memory, detail, update_text(memory, memory.team))

    @tool
    async def delete_memory(
        memory_id: Annotated[
            MemoryId, Field(description="The id of the memory to delete, or its first 8+ characters.")
        ],
    ) -> DeleteResult:
        """Delete a memory that is wrong, obsolete or should never have been kept."""
        return await _call(backend.delete(memory_id))

    @tool
    async def memory_stats(ctx: Context[Any, Any] | None = None) -> Stats:
        """How many memories exist, by type and by project, and the state of the engine and model."""
        return public_stats(await _call(backend.stats(_project(ctx))))

    return server
