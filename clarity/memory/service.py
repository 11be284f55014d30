"""MemoryService: the one place that decides what is stored and what is found.

REST, MCP tools, hooks and the dashboard all call this class, so scoping, deduplication,
redaction, scoring and use counts behave the same whichever door a memory came through. Writes
are carried out by ``MemoryWriter`` (writes.py), ranking by ``scoring``; this module is the face
and the reads.
"""

from __future__ import annotations

import builtins
import contextlib
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, Protocol

from clarity.config import Settings
from clarity.embedding import EmbeddingProvider, LexicalEncoder
from clarity.exchange import ExportPage, ExportPageRequest, ImportBatch, ImportSummary
from clarity.memory.anchor_checks import AnchorKeeper
from clarity.memory.ids import resolve_id
from clarity.memory.records import RecordReader, resolve_scopes
from clarity.memory.scoring import add_similarity, rescore, why
from clarity.memory.usage import UsageCounts, sidecar_path
from clarity.memory.usage_upgrade import adopt_legacy_touches
from clarity.memory.writes import MemoryWriter, SkipIds, Vectors
from clarity.models import GLOBAL_SCOPE, Memory, MemoryCreate, MemoryPatch, UnreadableMemory, saturating_add
from clarity.project import remember_roots
from clarity.relevance import has_identifier
from clarity.requests import (
    AnchorReport,
    DeleteResult,
    Filters,
    ForgetRequest,
    ForgetResult,
    ListRequest,
    ListResult,
    RetrieveRequest,
    RetrieveResult,
    ScoredMemory,
    Stats,
    StoreResult,
    UpdatedMemory,
)
from clarity.store.base import MemoryFilter, VectorStore
from clarity.store.paging import page_oldest


def _filter(
    scopes: list[str] | None,
    types: Any,
    tags: Any,
    since: datetime | None = None,
    until: datetime | None = None,
    sources: Any = None,
    min_importance: float | None = None,
    max_importance: float | None = None,
    exclude_superseded: bool = False,
) -> MemoryFilter:
    return MemoryFilter(
        scopes=scopes,
        memory_types=[t.value for t in types] if types else None,
        tags=list(tags) if tags else None,
        created_from=since.timestamp() if since else None,
        created_to=until.timestamp() if until else None,
        sources=[s.value for s in sources] if sources else None,
        importance_min=min_importance,
        importance_max=max_importance,
        exclude_superseded=exclude_superseded,
    )


def _selected(scopes: list[str] | None, request: Filters) -> MemoryFilter:
    """What a list or a search covers, as the engine filters it (never after ranking): memories a
    newer one superseded only when asked for."""
    return _filter(
        scopes,
        request.memory_types,
        request.tags,
        request.since,
        request.until,
        request.sources,
        request.min_importance,
        request.max_importance,
        exclude_superseded=not request.include_superseded,
    )


ROOTS_FILE = "project-roots.json"  # where each project is checked out, for anchor checks
NO_TEAM = "kept personal: no team server is set (team.url)"


class TeamRefusal(ValueError):
    """A write the team server would refuse for this daemon's user, refused before it is made here."""


class TeamHook(Protocol):
    """The team tier's side of writes (``clarity.team.share.Sharing``), set by the daemon when
    ``team.url`` is: the share decision before a store, and an op in its outbox for a shared
    write, journaled under the writer's lock just before the write (``writes.py``)."""

    def gate(self, request: MemoryCreate) -> tuple[MemoryCreate, str | None]: ...
    def storing(self, memory: Memory) -> None: ...
    def patched(self, patch: MemoryPatch, memory: Memory) -> tuple[dict[str, Any], str | None]: ...
    def updating(self, before: Memory, memory: Memory) -> None: ...
    def refuses_delete(self, memory: Memory) -> str | None: ...
    def deleting(self, memory: Memory) -> None: ...
    def status(self) -> dict[str, Any]: ...


class MemoryService:
    """The one door to the memories; use counts are kept beside the engine (``clarity.memory.usage``)."""

    def __init__(
        self,
        settings: Settings,
        store: VectorStore,
        embedder: EmbeddingProvider,
        lexical: LexicalEncoder | None = None,
    ) -> None:
        self.settings = settings
        self.db = store
        self.embedder = embedder
        self.lexical = lexical or LexicalEncoder()
        self.usage = UsageCounts(sidecar_path(settings.storage.root))
        adopt_legacy_touches(self.usage, settings.storage.qdrant_dir)
        self.records = RecordReader(store)
        self._writer = MemoryWriter(settings, store, embedder, self.lexical, self.records, self.usage)
        self.anchors = AnchorKeeper(store, self.records, self._writer)
        self.team: TeamHook | None = None  # the team tier, when the daemon runs one
        remember_roots(settings.storage.app_data_dir / ROOTS_FILE)

    # -- writes (writes.py) -------------------------------------------------------------------

    def writes_paused(self) -> AbstractContextManager[None]:
        """Hold every write back (they wait, none fails) for a consistent copy of the store."""
        return self._writer.paused()

    def store(
        self, request: MemoryCreate, project: str | None = None, anchors: list[dict[str, Any]] | None = None
    ) -> StoreResult:
        """``anchors`` as a hook captured them from its event; None: the caller's specs and the
        project files the text mentions (``clarity.memory.anchor_checks``)."""
        request, said = self._share(request)
        if anchors is None:
            anchors = self.anchors.for_store(request, project)
        team = self.team
        result = self._writer.store(request, project, anchors, team.storing if team is not None else None)
        result.team = said
        if result.status != "created":
            # Stored again with places named (or found in its text where it had none): they are kept.
            if anchors and (request.anchors or not result.memory.anchors):
                result.memory = self.anchors.replace(result.id, anchors)
            self.usage.apply([result.memory])
        return result

    def _share(self, request: MemoryCreate) -> tuple[MemoryCreate, str | None]:
        """Shared or personal, decided on the caller's text before the writer redacts it (the team
        tier's gate), and what the caller is told of it."""
        if self.team is not None:
            return self.team.gate(request)
        return (request.model_copy(update={"shared": False}), NO_TEAM) if request.shared else (request, None)

    def store_many(self, requests: Sequence[MemoryCreate], project: str | None = None) -> list[StoreResult]:
        """Bulk stores anchor only what a caller named: a scan of every text for paths would cost
        a batch of imported turns a ``stat`` per word that looks like one."""
        anchors = [self.anchors.for_store(r, project, mentions=False) for r in requests]
        requests = [r.model_copy(update={"shared": False}) if r.shared else r for r in requests]  # personal
        results = self._writer.store_many(requests, project, anchors)
        self.usage.apply([r.memory for r in results if r.status != "created"])
        return results

    def put_memories(
        self, memories: Sequence[Memory], vectors: Vectors | None = None, skip: SkipIds | None = None
    ) -> dict[str, int]:
        """``skip``: which ids to leave alone, asked under the writer's lock (the team replica's)."""
        return self._writer.put_memories(memories, vectors, skip)

    def import_batch(self, batch: ImportBatch) -> ImportSummary:
        return self._writer.import_batch(batch)

    def update(self, memory_id: str, patch: MemoryPatch) -> UpdatedMemory:
        """``patch.shared`` shares a personal project memory with the team or withdraws a shared
        one, and a patch that brings a secret into a shared memory makes it personal
        (``clarity.team.share``); the answer's ``team`` says what became of its sharing."""
        memory_id = self.resolve_id(memory_id)
        team = self.team
        sharing: dict[str, Any] = {}
        said = None
        before = None
        if team is not None or patch.shared is not None:
            before = self.records.stored(memory_id)
            if patch.shared and before.scope == GLOBAL_SCOPE:
                raise ValueError(
                    f"shared: memory {memory_id[:8]} is a global memory, about you rather than a "
                    "project: a global memory is never shared with a team"
                )
            if team is not None:
                sharing, said = team.patched(patch, before)
            elif patch.shared:
                said = NO_TEAM
            elif patch.shared is False and before.shared:  # shared while a team server was set
                sharing = {"shared": False}
        if before is not None and not sharing and patch.model_fields_set <= {"shared"}:
            updated = before  # nothing to write: sharing it again, or withdrawing a personal one
        else:
            journal = team.updating if team is not None else None
            updated = self._writer.update(memory_id, patch, sharing, journal)
        updated = self.usage.apply([updated])[0]
        return UpdatedMemory.model_construct(**dict(updated), team=said)

    def delete(self, memory_id: str, replicate: bool = True) -> DeleteResult:
        """``replicate=False``: a delete the team tier's replica makes, not sent back to it."""
        memory_id = self.resolve_id(memory_id)
        team = self.team if replicate else None
        gone = None
        if team is not None:
            with contextlib.suppress(UnreadableMemory):  # deleted all the same; the team keeps its copy
                gone = self.records.stored(memory_id)
            refusal = team.refuses_delete(gone) if gone is not None else None
            if refusal is not None:
                raise TeamRefusal(refusal)
        if team is None or gone is None:
            return self._writer.delete(memory_id)
        shared_copy = gone
        return self._writer.delete(memory_id, lambda: team.deleting(shared_copy))

    def evict_oldest(self, count: int, max_importance: float) -> int:
        """Delete up to ``count`` memories at or below an importance, oldest first (the size cap)."""
        return self._writer.delete_oldest(MemoryFilter(importance_max=max_importance), count)

    def backfill_vectors(self, batch: int = 64) -> int:
        return self._writer.backfill_vectors(batch)

    def start_background(self) -> None:
        self._writer.start_background()

    def upgrade_lexical(self) -> int:
        """Re-encode the lexical vectors an older encoder made (the daemon does it at start)."""
        return self._writer.upgrade_lexical()

    # -- reads --------------------------------------------------------------------------------

    def resolve_id(self, text: str) -> str:
        """The one place an id a caller typed is read: a UUID as it is (no lookup), or a unique
        prefix of at least 8 hex characters (a scan of the ids; see ``clarity.memory.ids``)."""
        return resolve_id(self.db, text)

    def get(self, memory_id: str) -> Memory:
        return self.usage.apply([self.records.stored(self.resolve_id(memory_id))])[0]

    def record_with_vector(self, memory_id: str) -> tuple[Memory, list[float] | None] | None:
        """A memory as stored and its dense vector (None until the model made it), or None if it
        is gone or unreadable: what the team tier sends of a shared memory."""
        hits = self.db.get([memory_id], with_vectors=True)
        memories, _ = self.records.read(hits)
        return (memories[0], hits[0].dense) if memories else None

    def retrieve(
        self, request: RetrieveRequest, project: str | None = None, track_use: bool = True
    ) -> RetrieveResult:
        """Hybrid search; ``track_use=False`` (the dashboard) leaves use counts and last-used times alone."""
        scopes = resolve_scopes(request.scope, project)
        flt = _selected(scopes, request)
        cfg = self.settings.retrieval
        mode = request.mode
        degraded = None
        if mode != "lexical" and not self.embedder.ready:
            degraded = self.embedder.error or "the embedding model is still loading"
            mode = "lexical"
        dense = self.embedder.embed_query(request.query) if mode != "lexical" else None
        sparse = self.lexical.query(request.query) if mode != "dense" else None
        candidates = max(request.limit * 3, 20)
        lexical_weight = (
            cfg.identifier_lexical_weight if has_identifier(request.query) else cfg.lexical_weight
        )
        hits = self.db.search(
            dense,
            sparse,
            flt,
            candidates,
            mode=mode,
            prefetch_limit=cfg.prefetch_limit,
            lexical_weight=lexical_weight,
        )
        lexical_used = bool(sparse and sparse[0])
        scored = rescore(hits, cfg, mode, lexical_weight, lexical_used=lexical_used)
        weight = lexical_weight if mode == "hybrid" and lexical_used else None
        floor = request.min_score if request.min_score is not None else cfg.min_score
        results: list[ScoredMemory] = []
        unreadable = 0
        for score, hit, parts in scored:  # best first: build (and check) only the records kept
            if score < floor or len(results) == request.limit:
                break
            memories, skipped = self.records.read([hit])
            unreadable += len(skipped)
            results.extend(
                ScoredMemory(
                    memory=memory,
                    score=score,
                    similarity=None if hit.similarity is None else round(hit.similarity, 4),
                    why=why(score, hit, parts, weight),
                )
                for memory in memories
            )
        if dense is not None and results:
            add_similarity(self.db, results, dense)
        self.usage.apply([result.memory for result in results])
        self.anchors.attach(results)
        if track_use:
            for result in results:
                self.usage.touch(result.memory.id, result.memory.access_count)
        return RetrieveResult(
            results=results, mode=mode, scopes=scopes, degraded=degraded, unreadable=unreadable
        )

    def list(self, request: ListRequest, project: str | None = None) -> ListResult:
        flt = _selected(resolve_scopes(request.scope, project), request)
        hits = self.db.newest(flt, limit=request.limit, offset=request.offset, sort=request.sort)
        total = self.db.count(flt)
        memories, unreadable = self.records.read(hits)
        following = request.offset + len(hits)
        return ListResult(
            memories=self.usage.apply(memories),
            total=total,
            offset=request.offset,
            limit=request.limit,
            next_offset=following if following < total else None,
            unreadable=len(unreadable),
        )

    def export_page(self, request: ExportPageRequest, project: str | None = None) -> ExportPage:
        """One page of an export, oldest first (see ``store.paging.page_oldest``), with use counts."""
        flt = MemoryFilter(scopes=resolve_scopes(request.scope, project))
        hits, following = page_oldest(self.db, flt, request.cursor, request.limit)
        memories, unreadable = self.records.read(hits)
        vectors: list[list[float] | None] | None = None
        if request.with_vectors and memories:
            found = {h.id: h.dense for h in self.db.get([m.id for m in memories], with_vectors=True)}
            vectors = [found.get(m.id) for m in memories]
        total = self.db.count(MemoryFilter(scopes=flt.scopes)) if request.cursor is None else None
        return ExportPage(
            memories=self.usage.apply(memories),
            vectors=vectors,
            next=following,
            total=total,
            model=self.embedder.identity,
            dimension=self.embedder.dimension,
            unreadable=unreadable,
        )

    def forget(
        self, request: ForgetRequest, project: str | None = None, dry_run: bool = False
    ) -> ForgetResult:
        """Bulk delete by filter, oldest first, one batch per lock hold so hooks keep being served."""
        until = None
        if request.older_than_days is not None:
            until = datetime.fromtimestamp(time.time() - request.older_than_days * 86400.0, UTC)
        flt = _filter(
            resolve_scopes(request.scope, project),
            request.memory_types,
            request.tags,
            None,
            until,
            request.sources,
            None,
            request.max_importance,
        )
        matched = self.db.count(flt)
        sample = self.usage.apply(self.records.read(self.db.newest(flt, limit=5))[0])
        if dry_run or not matched:
            return ForgetResult(matched=matched, deleted=0, dry_run=dry_run, sample=sample)
        deleted = self._writer.delete_oldest(flt)
        return ForgetResult(matched=matched, deleted=deleted, dry_run=False, sample=sample)

    def stats(self, project: str | None = None, scope: str = "all") -> Stats:
        flt = MemoryFilter(scopes=resolve_scopes(scope, project))
        info = self.db.info()
        return Stats(
            total=self.db.count(flt),
            by_type=self.db.facet("memory_type", flt),
            by_scope=self.db.facet("scope", flt),
            engine=self.db.engine,
            location=self.db.location,
            collection=self.settings.qdrant.collection,
            model=self.embedder.name,
            model_ready=self.embedder.ready,
            model_error=self.embedder.error,
            index=info,
            unreadable=len(self.records),
        )

    def counts_by_type(self, scope: str) -> dict[str, int]:
        """Memories by type in one stored scope: one facet on the payload index, not a whole
        ``stats()`` (the dashboard's overview asks it per project)."""
        return self.db.facet("memory_type", MemoryFilter(scopes=[scope]))

    def uses(self, memories: Sequence[Memory]) -> dict[str, int]:
        """Each memory's use count as the dashboard shows it: the written count its record was
        read with, plus the uses still waiting to be written (no query: they are in memory)."""
        waiting = self.usage.waiting(m.id for m in memories)
        return {m.id: saturating_add(m.access_count, waiting.get(m.id, 0)) for m in memories}

    def close(self) -> None:
        self._writer.closed = True
        self.anchors.close()
        self.usage.close()
        self.db.close()

    # -- anchors (anchor_checks.py) ----------------------------------------------------------

    def anchor_report(self, memory: Memory) -> AnchorReport | None:
        """``memory``'s anchors checked against its project's working tree now; None when it has
        none or this daemon has not seen where the project is checked out."""
        return self.anchors.report(memory)

    def about_file(self, project: str, path: str, limit: int = 5) -> builtins.list[ScoredMemory]:
        """What is known about one file (a repository-relative path): current memories of the
        project anchored to it, most important first, each with its anchor report."""
        found = self.anchors.about_file(project, path, limit)
        self.usage.apply([f.memory for f in found])
        return found

    def reanchor(self, memory_id: str, specs: Sequence[str] | None = None) -> Memory:
        """Capture a memory's anchors again: where ``specs`` say, or (None) where they are now."""
        return self.usage.apply([self.anchors.reanchor(self.resolve_id(memory_id), specs)])[0]

    def confirm(self, memory_id: str) -> Memory:
        """A user says the memory is still true: its anchors are captured as the code is now."""
        return self.usage.apply([self.anchors.reanchor(self.resolve_id(memory_id), None, confirm=True)])[0]

    def mark_used(self, memories: Sequence[Memory]) -> None:
        """Count one use of each memory that reached the model. Hooks retrieve more than they
        show (then gate, drop what the session was already given, and cut to the budget), so
        they retrieve with ``track_use=False`` and count here only what went into the reply."""
        for memory in memories:
            self.usage.touch(memory.id, memory.access_count)
