"""What callers ask ``MemoryService`` and what it answers: the same types for REST, MCP and hooks.

Retrieval takes the filters listing takes (``Filters``), applied in the engine's own filter, so a
filtered search ranks only what matches instead of dropping results after ranking.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from clarity.models import (
    MAX_PAGE,
    MAX_QUERY_CHARS,
    MAX_RESULTS,
    MAX_TAGS,
    CallerInput,
    Memory,
    MemoryCreate,
    MemoryType,
    ScopeChoice,
    Source,
    Tag,
)


class Filters(CallerInput):
    """Which memories a list or a search covers; every criterion is optional, all combine with AND."""

    memory_types: list[MemoryType] | None = None
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] | None = None
    sources: list[Source] | None = None
    scope: ScopeChoice = "default"
    since: datetime | None = Field(None, description="created at or after")
    until: datetime | None = Field(None, description="created at or before")
    min_importance: float | None = Field(None, ge=0.0, le=1.0)
    max_importance: float | None = Field(None, ge=0.0, le=1.0)
    include_superseded: bool = Field(
        False, description="also memories a newer one replaced (kept as history; hooks never show them)"
    )


class RetrieveRequest(Filters):
    query: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUERY_CHARS)]
    limit: int = Field(5, ge=1, le=MAX_RESULTS)
    min_score: float | None = Field(None, ge=0.0, le=1.0)
    mode: Literal["hybrid", "dense", "lexical"] = "hybrid"


class ListRequest(Filters):
    limit: int = Field(20, ge=1, le=MAX_PAGE)
    offset: int = Field(0, ge=0, le=1_000_000)
    sort: Literal["newest", "oldest", "importance", "updated"] = "newest"


class ForgetRequest(CallerInput):
    """Which memories to delete in bulk. Criteria combine with AND; at least one must be given,
    so forgetting everything in a scope is always a deliberate ``scope=...`` choice."""

    scope: ScopeChoice = "default"
    memory_types: list[MemoryType] | None = None
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] | None = None
    sources: list[Source] | None = None
    older_than_days: float | None = Field(None, gt=0, le=36_500, description="created more than N days ago")
    max_importance: float | None = Field(None, ge=0.0, le=1.0, description="importance at or below")

    @model_validator(mode="after")
    def _some_criterion(self) -> ForgetRequest:
        if not self.model_fields_set:
            raise ValueError(
                "give at least one of scope, memory_types, tags, sources, older_than_days, max_importance"
            )
        return self


class ForgetResult(BaseModel):
    matched: int
    deleted: int
    dry_run: bool
    sample: list[Memory] = Field(
        default_factory=list, description="a few of the matching memories, newest first"
    )


class RankWhy(BaseModel):
    """Why a result ranked where it did. ``relevance_part + recency_part + importance_part``
    is ``score`` (each rounded to 6 places, so the sum may differ in the last place)."""

    dense_cosine: float | None = Field(None, description="the query's cosine; None: not in the dense ranking")
    dense_rank: int | None = Field(None, description="1 = first of the dense ranking")
    lexical: float | None = Field(
        None, description="BM25 on 0..1 over the lexical ranking (best 1, last 0); None: no lexical match"
    )
    lexical_rank: int | None = Field(None, description="1 = first of the lexical ranking")
    lexical_weight: float | None = Field(None, description="the lexical side's weight in the fusion")
    session: float | None = Field(
        None, description="the best fused score of its session over the best of all, weighted; None: off"
    )
    next_turn: float | None = Field(
        None,
        description="the next memory of its session's lexical score, weighted, when that one was a "
        "candidate too (0: it was not); None: off",
    )
    relevance: float = Field(
        description="(dense on 0..1 + lexical weight x lexical + next turn + session) over its ceiling, 0..1"
    )
    relevance_part: float = Field(description="relevance times its weight")
    recency_part: float = Field(description="recency (halves every half-life) times its weight")
    importance_part: float = Field(description="importance times its weight")
    score: float = Field(description="the final score: the sum of the three parts")


class AnchorCheck(BaseModel):
    """One anchor as a check found it (``clarity.memory.anchors``)."""

    label: str = Field(description="src/cart.ts, src/cart.ts:12-30 or src/cart.ts (addItem)")
    state: Literal["unchanged", "moved", "changed", "gone"]
    detail: str = Field("", description="renamed from ..., symbol ... removed, file deleted, ...")
    change: float | None = Field(None, description="changed: the share of the anchored lines that differ")
    modified_at: float | None = Field(None, description="the file's mtime, seconds since the epoch")
    commit: str | None = Field(None, description="the commit checked out when it was captured")
    captured_at: str = Field(description="when it was captured (ISO 8601)")


class AnchorReport(BaseModel):
    """What a memory's anchors say about it now: whether it may reach Claude's context, and why not."""

    state: Literal["unchanged", "moved", "changed", "gone"] = Field(description="the worst of its anchors'")
    note: str = Field(description="for a reader: 'may be out of date: src/cart.ts changed 2 days ago', or ''")
    injectable: bool = Field(description="false when its file is gone or most of what it was about changed")
    anchors: list[AnchorCheck]


class ScoredMemory(BaseModel):
    memory: Memory
    score: float = Field(description="final score 0..1 after fusion and recency/importance rescoring")
    similarity: float | None = Field(None, description="cosine similarity of memory and query (dense modes)")
    why: RankWhy | None = Field(None, description="the parts of the score and the rankings they came from")
    anchors: AnchorReport | None = Field(
        None, description="its anchors re-checked against the project's working tree (none: not anchored)"
    )


class RetrieveResult(BaseModel):
    results: list[ScoredMemory]
    mode: str = Field(description="the mode that actually ran (lexical while the model is unavailable)")
    scopes: list[str] | None
    degraded: str | None = Field(
        None, description="why results come from the lexical index alone, if they do"
    )
    unreadable: int = Field(
        0, description="stored records left out because they fail the record schema (see the daemon log)"
    )


class Superseded(BaseModel):
    """An older memory a new one replaced: its id, its text (shortened), the value that changed."""

    id: str
    content: str
    reason: str


class StoreResult(BaseModel):
    id: str
    status: Literal["created", "duplicate", "merged"]
    memory: Memory
    superseded: list[Superseded] = Field(
        default_factory=list, description="older memories this one replaced: left out of reads from now on"
    )
    team: str | None = Field(
        None,
        description="when sharing was asked or configured: 'shared with the team' or why it was kept personal",
    )


class UpdatedMemory(Memory):
    """An updated memory as its record, plus what became of its sharing when that changed or was
    asked (``MemoryPatch.shared``, or an edit that brought a secret into a shared memory)."""

    team: str | None = Field(
        None,
        description="'shared with the team: queued ...', 'withdrawn from the team ...' or why it stays personal",
        exclude_if=lambda value: value is None,
    )


class ListResult(BaseModel):
    memories: list[Memory]
    total: int
    offset: int
    limit: int
    next_offset: int | None
    unreadable: int = Field(
        0, description="stored records left out because they fail the record schema (see the daemon log)"
    )


class DeleteResult(BaseModel):
    id: str
    deleted: bool


class Stats(BaseModel):
    total: int
    by_type: dict[str, int]
    by_scope: dict[str, int]
    engine: str
    location: str
    collection: str
    model: str
    model_ready: bool
    model_error: str | None = None
    index: dict[str, Any] = Field(default_factory=dict)
    unreadable: int = Field(
        0, description="distinct stored records found unreadable since the daemon started (see its log)"
    )


class StoreBatch(CallerInput):
    memories: list[MemoryCreate] = Field(min_length=1, max_length=2_000)
