"""The one interface both engines implement, and the helpers they share.

The memory service speaks only in these types; each engine translates them into its own
Qdrant client classes. Both engines fetch a dense and a lexical ranking and combine them here,
with ``fuse_scores``, so a query ranks the same way on either engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

DENSE = "dense"
LEXICAL = "lex"
SearchMode = Literal["hybrid", "dense", "lexical"]
Sparse = tuple[list[int], list[float]]

# Payload fields with an index, and the index kind. Keyword fields filter; floats filter,
# sort (list, recency) and range (since/until).
PAYLOAD_INDEXES: dict[str, Literal["keyword", "float"]] = {
    "scope": "keyword",
    "memory_type": "keyword",
    "tags": "keyword",
    "content_hash": "keyword",
    "source": "keyword",
    "created_at": "float",
    "updated_at": "float",
    "importance": "float",
    "vector_state": "keyword",  # "pending" until a memory stored without the model gets its dense vector
    "session_id": "keyword",  # a new memory's lexical context is the previous memory of its session
    "superseded_at": "float",  # set on a memory a newer one replaced: reads leave those out
    "anchor_paths": "keyword",  # the files a memory is anchored to: per-file recall (PreToolUse Read/Edit)
    "previous_id": "keyword",  # the memory before it in its session: found again when that one changes
    "lexical_version": "float",  # the encoding of its lexical vector: older ones are re-encoded
    "changed_at": "float",  # team server only (clarity/team/store.py): its change time, /changes scrolls by it
}

# Orders a page of memories can be listed in: (payload key, newest/highest first).
SortOrder = Literal["newest", "oldest", "importance", "updated", "changed"]
# Ids read per request by ``VectorStore.ids``: ids alone are small, so few round trips.
ID_PAGE = 10_000

SORT_KEYS: dict[str, tuple[str, bool]] = {
    "newest": ("created_at", True),
    "oldest": ("created_at", False),
    "importance": ("importance", True),
    "updated": ("updated_at", True),
    "changed": ("changed_at", False),  # the team server's changes, oldest first
}


class StoreLocked(RuntimeError):
    """Another process owns the embedded storage directory."""


@dataclass(slots=True)
class PointData:
    id: str
    dense: list[float] | None
    sparse: Sparse
    payload: dict[str, Any]


@dataclass(slots=True)
class Hit:
    id: str
    score: float
    payload: dict[str, Any]
    dense: list[float] | None = None
    similarity: float | None = None  # the query's cosine, when the search already knows it
    # Where the hit stood in each ranking (0 = first; None: not in that ranking, or the search
    # did not ask for it) and its lexical score on 0..1 (min_max): why it ranked where it did.
    dense_rank: int | None = None
    lexical: float | None = None
    lexical_rank: int | None = None


@dataclass(slots=True)
class MemoryFilter:
    scopes: list[str] | None = None
    memory_types: list[str] | None = None
    tags: list[str] | None = None
    created_from: float | None = None
    created_to: float | None = None
    content_hash: str | list[str] | None = None
    sources: list[str] | None = None
    importance_min: float | None = None
    importance_max: float | None = None
    pending_vector: bool | None = None
    session_id: str | None = None
    anchor_path: str | None = None  # memories anchored to this repository-relative path
    previous_ids: list[str] | None = None  # memories whose previous memory (``previous_id``) is one of these
    lexical_version_below: int | None = None  # memories whose lexical vector an older encoding made
    changed_from: float | None = None  # team server: points whose ``changed_at`` is at least this
    exclude_ids: list[str] = field(default_factory=list)
    # Leave out memories a newer one superseded (``superseded_at`` set). Off by default, as the
    # writes' own lookups (deletes, backfill, imports' duplicate checks) must see every record;
    # retrieval and lists turn it on unless a caller asks for them.
    exclude_superseded: bool = False

    def is_empty(self) -> bool:
        return not (
            self.scopes
            or self.memory_types
            or self.tags
            or self.created_from is not None
            or self.created_to is not None
            or self.content_hash
            or self.sources
            or self.importance_min is not None
            or self.importance_max is not None
            or self.pending_vector is not None
            or self.session_id is not None
            or self.anchor_path is not None
            or self.previous_ids is not None
            or self.lexical_version_below is not None
            or self.changed_from is not None
            or self.exclude_ids
            or self.exclude_superseded
        )


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """One search, as an engine receives it from ``VectorStore.search``."""

    dense: list[float] | None
    sparse: Sparse | None
    flt: MemoryFilter
    limit: int
    mode: SearchMode = "hybrid"
    prefetch_limit: int = 50
    exact: bool = False
    lexical_weight: float = 1.0


# Makes a stored record's lexical vector again from its payload: (the vector, the whole payload
# to keep). ``clarity.embedding.lexical.LexicalEncoder.reencode``.
Reencode = Callable[[dict[str, Any]], tuple[Sparse, dict[str, Any]]]


class VectorStore(Protocol):
    engine: str
    location: str

    def upsert(
        self, points: Sequence[PointData], replaces_existing: bool = False, purge_replaced: bool = False
    ) -> None:
        """Write whole points. ``purge_replaced``: the copies they replace hold text that must
        leave the disk (a deleted memory's, in its next memory's lexical context), as a delete's."""
        ...

    def delete(self, ids: Sequence[str]) -> None: ...

    def get(self, ids: Sequence[str], with_vectors: bool = False) -> list[Hit]: ...

    def set_payload(self, point_id: str, payload: dict[str, Any]) -> None: ...

    def search(
        self,
        dense: list[float] | None,
        sparse: Sparse | None,
        flt: MemoryFilter,
        limit: int,
        mode: SearchMode = "hybrid",
        prefetch_limit: int = 50,
        exact: bool = False,
        lexical_weight: float = 1.0,
    ) -> list[Hit]:
        """The memories that best match ``dense`` and/or ``sparse`` within ``flt``; ``mode`` picks
        one side or both (fused). The one signature every caller uses: engines implement
        ``run_search`` and receive it whole as a ``SearchQuery``."""
        return self.run_search(
            SearchQuery(dense, sparse, flt, limit, mode, prefetch_limit, exact, lexical_weight)
        )

    def run_search(self, query: SearchQuery) -> list[Hit]: ...

    def newest(self, flt: MemoryFilter, limit: int, offset: int = 0, sort: SortOrder = "newest") -> list[Hit]:
        """One page of memories in ``sort`` order (named for its default: newest first)."""
        ...

    def count(self, flt: MemoryFilter | None = None) -> int: ...

    def ids(self) -> Iterator[str]:
        """Every memory's id once, in no particular order, read without payloads or vectors:
        for what only the ids answer (which id starts with a typed prefix). At 10,000 memories
        on the embedded engine this takes 26 ms where paging through their payloads took 240 ms
        (p50, 2 cores, load 1.4; qdrant-client in-process: 33 ms against 1.5 s)."""
        ...

    def facet(self, key: str, flt: MemoryFilter | None = None, limit: int = 100) -> dict[str, int]: ...

    def reencode_lexical(self, reencode: Reencode, version: int, limit: int) -> int:
        """Re-encode, in place, up to ``limit`` records whose ``lexical_version`` is below
        ``version`` (``reencode`` makes the vector and payload from the payload); the number
        done, 0 when nothing is left for this call to do. The caller holds writes back meanwhile:
        an update between the read and the write would be undone. The embedded engine does its
        active shard so and has a build rewrite the segments that hold such records (a change in
        place moves a point out of its segment's index); ``count(MemoryFilter(
        lexical_version_below=version))`` says when all are done."""
        ...

    def info(self) -> dict[str, Any]: ...

    def snapshot(self, destination: Path) -> None:
        """Write a consistent copy of the engine's own files into ``destination`` (for backups)."""
        ...

    def close(self) -> None: ...


class Fused(NamedTuple):
    """One result of ``fuse_scores``: its id, fused score, and the parts it was made of."""

    id: Any
    score: float
    cosine: float | None  # None: not in the dense ranking
    dense_rank: int | None
    lexical: float | None  # BM25 put on 0..1 over its ranking (min_max)
    lexical_rank: int | None


def min_max(best: float, worst: float) -> tuple[float, float]:
    """(offset, spread) that put a ranking's scores on 0..1, ``(score - offset) / spread``: its best
    1, its last 0; a ranking whose scores are all equal (one match) is all 1."""
    spread = best - worst
    return (worst, spread) if spread > 0 else (best - 1.0, 1.0)


def on_unit_scale(ranking: Sequence[Any]) -> Iterator[tuple[float, Any]]:
    """A ranking of points best first (each with a ``.score``), its scores put on 0..1 by
    ``min_max``: what both engines do to a lexical ranking before ``fuse_scores``."""
    if not ranking:
        return iter(())
    offset, spread = min_max(ranking[0].score, ranking[-1].score)
    return (((point.score - offset) / spread, point) for point in ranking)


def fuse_scores(
    dense: Sequence[tuple[Any, float]],
    lexical: Sequence[tuple[Any, float]],
    mode: SearchMode,
    limit: int,
    lexical_weight: float,
) -> list[Fused]:
    """Score-level fusion of a dense ranking, (id, cosine) best first, and a lexical one, (id,
    BM25 already put on 0..1 by ``min_max``) best first, each without repeated ids.

    The cosines are put on 0..1 the same way over the dense ranking (its best 1, its last 0), and
    a candidate's fused score is ``dense + lexical_weight * lexical``, 0 for a side it is missing
    from. Chosen by nested cross-validation over the ten folds of both dev sets against weighted
    RRF (the fusion before), max-normalised sums and their mixes (scripts/bench/retrieval_cv.py,
    docs/benchmarks.md): RRF throws away how far apart two scores are, so a near-tie and a rout
    count the same. The dense and lexical modes return that side alone: raw cosines
    (near-duplicate checks compare them to a threshold) or the normalised BM25.
    """
    if mode == "dense":
        return [Fused(i, cos, cos, rank, None, None) for rank, (i, cos) in enumerate(dense[:limit])]
    if mode == "lexical":
        return [Fused(i, score, None, None, score, rank) for rank, (i, score) in enumerate(lexical[:limit])]
    offset, spread = min_max(dense[0][1], dense[-1][1]) if dense else (0.0, 1.0)
    parts: dict[Any, list[Any]] = {
        i: [(cos - offset) / spread, cos, rank, None, None] for rank, (i, cos) in enumerate(dense)
    }
    for rank, (i, score) in enumerate(lexical):
        entry = parts.get(i)
        if entry is None:
            parts[i] = [lexical_weight * score, None, None, score, rank]
        else:
            entry[0] += lexical_weight * score
            entry[3] = score
            entry[4] = rank
    ranked = sorted(parts.items(), key=lambda item: item[1][0], reverse=True)[:limit]
    return [Fused(i, *fields) for i, fields in ranked]


def hit_of(fused: Fused, point_id: str, payload: dict[str, Any]) -> Hit:
    """The ``Hit`` of a fused result, with the parts of its score."""
    return Hit(
        point_id,
        fused.score,
        payload,
        similarity=fused.cosine,
        dense_rank=fused.dense_rank,
        lexical=fused.lexical,
        lexical_rank=fused.lexical_rank,
    )
