"""MemoryService: the one place that decides what is stored and what is found.

REST, MCP tools and hooks all call this class, so scoping, deduplication, redaction and
scoring behave the same whichever door a memory came through.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, TypeVar

import numpy as np

from clarity.access import AccessTracker
from clarity.config import Settings
from clarity.embedding import EmbeddingProvider, LexicalEncoder, ModelNotReady
from clarity.models import (
    GLOBAL_SCOPE,
    MAX_SESSION_ID_CHARS,
    MAX_TAG_CHARS,
    MAX_TAGS,
    DeleteResult,
    ExportPage,
    ExportPageRequest,
    ForgetRequest,
    ForgetResult,
    ImportBatch,
    ImportSummary,
    ListRequest,
    ListResult,
    Memory,
    MemoryCreate,
    MemoryPatch,
    RetrieveRequest,
    RetrieveResult,
    ScoredMemory,
    Stats,
    StoreResult,
    UnreadableMemory,
    content_hash,
    new_memory_id,
    parse_memory_id,
    saturating_add,
    utcnow,
)
from clarity.redact import contains_secret, redact_record
from clarity.store.base import Hit, MemoryFilter, PointData, VectorStore, rrf_term
from clarity.store.space import InsufficientStorage
from clarity.transfer import page_oldest

log = logging.getLogger(__name__)

_FORGET_BATCH = 256
_UNREADABLE_REMEMBERED = 10_000  # ids kept to log each unreadable record once


class MemoryNotFound(LookupError):
    def __init__(self, memory_id: str) -> None:
        super().__init__(f"id: no memory with id {memory_id}")
        self.memory_id = memory_id


class ScopeRequired(ValueError):
    """A project scope was asked for but the caller did not say which project it is in."""


# Tokens that name something exactly: error codes (E4711, ERR_CONN_RESET), hashes, file names,
# flags. The dense model cannot tell one from another; the lexical index can.
_IDENTIFIER = re.compile(r"(?<![\w-])(?=[\w.\-/]*[0-9_./])(?=[\w.\-/]*[A-Za-z])[\w.\-/]{3,}")


_FACT_TOKEN = re.compile(r"[\w.\-/]*\d[\w.\-/]*")


def fact_tokens(text: str) -> set[str]:
    """Numbers, versions, codes and paths: two texts that differ in one of these state different facts."""
    return {token.strip(".-/").casefold() for token in _FACT_TOKEN.findall(text)} - {""}


def has_identifier(query: str) -> bool:
    return _IDENTIFIER.search(query) is not None


def index_text(memory: Memory) -> str:
    """What the lexical index sees: the content plus tags, so a tag is as findable as a word."""
    return " ".join([memory.content, *memory.tags])


def _new_memory(request: MemoryCreate, scope: str, content: str, now: datetime) -> Memory:
    """A memory as first stored, from a request ``_redacted`` has already been through."""
    return Memory(
        id=new_memory_id(),
        content=content,
        memory_type=request.memory_type,
        scope=scope,
        tags=request.tags,
        importance=request.importance,
        source=request.source,
        session_id=request.session_id,
        created_at=now,
        updated_at=now,
        metadata=request.metadata,
        content_hash=content_hash(content),
    )


_Record = TypeVar("_Record", MemoryCreate, MemoryPatch, Memory)


def _check_scope(scope: str) -> str:
    """A scope is an identifier, stored and shown in the clear: one that looks like a secret
    (a token pasted as a scope id, in a tool call or in X-Clarity-Project) is refused."""
    if contains_secret(scope):
        raise ValueError(
            "scope: looks like a secret; a scope is an identifier, stored and shown in the clear"
        )
    return scope


def _redacted(record: _Record) -> _Record:
    """``record`` with every string it stores redacted: the one place every write passes
    (store, store_many, put_memories, update), so no field and no door is missed, whatever
    fields a record gains. The full text is redacted before anything is cut to its input limit
    (a marker can be longer than the secret it replaces). A scope is an identifier, which a
    marker cannot replace: a whole record whose scope holds a secret is refused here (a new
    memory's scope is checked once resolved, in ``_store_scope``)."""
    if isinstance(record, Memory):
        _check_scope(record.scope)
    limits = {"tags": MAX_TAG_CHARS, "session_id": MAX_SESSION_ID_CHARS}
    clean = redact_record(record, skip=("id", "content_hash", "scope"), max_chars=limits)
    if isinstance(clean, Memory) and clean is not record:
        clean.content_hash = content_hash(clean.content)
    return clean


DEFAULT_IMPORTANCE: float = Memory.model_fields["importance"].default
BACKFILL_RETRY_SECONDS = 30.0  # how often a backfill stopped by a full disk tries again


def _updated_at(hit: Hit) -> float:
    """The payload keeps a timestamp; anything else is read the way ``Memory`` reads it."""
    value = hit.payload.get("updated_at")
    if isinstance(value, int | float):
        return float(value)
    try:
        return Memory.from_payload(hit.id, hit.payload).updated_at.timestamp()
    except UnreadableMemory:
        return 0.0  # scored last; left out, and reported, when results are built


def _importance(hit: Hit) -> float:
    value = hit.payload.get("importance")
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return DEFAULT_IMPORTANCE  # a damaged record: left out when results are built


class MemoryService:
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
        self._write_lock = threading.Lock()
        self._closed = False
        self.access = AccessTracker(store)
        self._unreadable: set[str] = set()
        self._unreadable_lock = threading.Lock()

    # -- scopes -------------------------------------------------------------------------------

    @staticmethod
    def resolve_scopes(scope: str, project: str | None) -> list[str] | None:
        """Turn a scope argument into the list of scopes to filter on (None means every scope)."""
        if scope == "all":
            return None
        if scope == "global":
            return [GLOBAL_SCOPE]
        if scope == "default":
            return [project, GLOBAL_SCOPE] if project else [GLOBAL_SCOPE]
        if scope == "project":
            if not project:
                raise ScopeRequired(
                    "scope: 'project' needs to know the caller's project (send X-Clarity-Project or use 'global')"
                )
            return [project]
        return [scope]

    @staticmethod
    def _store_scope(scope: str, project: str | None) -> str:
        if scope == "project":
            if not project:
                raise ScopeRequired(
                    "scope: 'project' needs to know the caller's project (send X-Clarity-Project or use 'global')"
                )
            return _check_scope(project)
        return _check_scope(scope)

    # -- writes -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def writes_paused(self) -> Iterator[None]:
        """Hold every write back (they wait, none fails) for a consistent copy of the store."""
        with self._write_lock:
            yield

    def store(self, request: MemoryCreate, project: str | None = None) -> StoreResult:
        """The embedding (the slow part) is computed before taking the write lock, so concurrent
        stores encode in parallel and only the duplicate checks and the upsert are serialised."""
        request = _redacted(request)
        scope = self._store_scope(request.scope, project)
        content = request.content
        digest = content_hash(content)
        same_text = MemoryFilter(scopes=[scope], content_hash=digest)
        dense = None if self.db.newest(same_text, limit=1) else self._embed_if_ready(content)
        now = utcnow()
        with self._write_lock:
            existing, _ = self._readable(self.db.newest(same_text, limit=1))
            if existing:
                memory = existing[0]
                return StoreResult(id=memory.id, status="duplicate", memory=self._bump(memory, request, now))
            if dense is None:  # deleted since the check above, or the model just became ready
                dense = self._embed_if_ready(content)
            memory = _new_memory(request, scope, content, now)
            near = (
                self.db.search(
                    dense,
                    None,
                    MemoryFilter(scopes=[scope], memory_types=[memory.memory_type.value]),
                    1,
                    mode="dense",
                )
                if dense is not None
                else []
            )
            threshold = self.settings.retrieval.near_duplicate_similarity
            close = [hit for hit in near[:1] if hit.score >= threshold]
            twins, _ = self._readable(close)
            if twins and fact_tokens(twins[0].content) == fact_tokens(content):
                twin = twins[0]
                return StoreResult(id=twin.id, status="merged", memory=self._bump(twin, request, now))
            self.db.upsert([self._point(memory, dense)])
        return StoreResult(id=memory.id, status="created", memory=memory)

    def store_many(self, requests: Sequence[MemoryCreate], project: str | None = None) -> list[StoreResult]:
        """Bulk store for imports: one embedding batch, one hash lookup, one upsert.

        Exact duplicates (by content hash, in the database or earlier in the batch) are counted,
        not stored; near-duplicate merging is left to single stores, where one memory at a time
        is compared, because a bulk import should keep what the source kept.
        """
        if not requests:
            return []
        requests = [_redacted(request) for request in requests]
        now = utcnow()
        drafts = [
            _new_memory(request, self._store_scope(request.scope, project), request.content, now)
            for request in requests
        ]
        vectors = self.embedder.embed_documents([d.content for d in drafts])
        results: list[StoreResult] = []
        with self._write_lock:
            known = self._by_hash(drafts)
            points = []
            for draft, request, vector in zip(drafts, requests, vectors, strict=True):
                twin = known.get((draft.scope, draft.content_hash))
                if twin is not None:
                    results.append(
                        StoreResult(id=twin.id, status="duplicate", memory=self._bump(twin, request, now))
                    )
                    continue
                known[(draft.scope, draft.content_hash)] = draft
                points.append(self._point(draft, vector))
                results.append(StoreResult(id=draft.id, status="created", memory=draft))
            self.db.upsert(points)
        return results

    def put_memories(
        self, memories: Sequence[Memory], vectors: Sequence[list[float] | None] | None = None
    ) -> dict[str, int]:
        """Write whole records with their ids (imports, restores, migrations).

        Idempotent: a record whose id exists replaces it; one whose content already exists in its
        scope under another id is skipped as a duplicate. Missing vectors are computed here.
        Returns counts by outcome: created, replaced, duplicate.
        """
        memories = [_redacted(memory) for memory in memories]
        vectors = list(vectors) if vectors is not None else [None] * len(memories)
        missing = [i for i, v in enumerate(vectors) if v is None]
        if missing:
            computed = self.embedder.embed_documents([memories[i].content for i in missing])
            for i, fresh in zip(missing, computed, strict=True):
                vectors[i] = fresh
        counts = {"created": 0, "replaced": 0, "duplicate": 0}
        with self._write_lock:
            existing = {hit.id for hit in self.db.get([m.id for m in memories])}
            known = self._by_hash(memories)
            points = []
            for memory, vector in zip(memories, vectors, strict=True):
                twin = known.get((memory.scope, memory.content_hash))
                if memory.id not in existing and twin is not None and twin.id != memory.id:
                    counts["duplicate"] += 1
                    continue
                known[(memory.scope, memory.content_hash)] = memory
                counts["replaced" if memory.id in existing else "created"] += 1
                points.append(self._point(memory, vector))
            self.db.upsert(points, replaces_existing=bool(existing))
        return counts

    def export_page(self, request: ExportPageRequest, project: str | None = None) -> ExportPage:
        """One page of an export, oldest first (see ``transfer.page_oldest``)."""
        flt = MemoryFilter(scopes=self.resolve_scopes(request.scope, project))
        hits, following = page_oldest(self.db, flt, request.cursor, request.limit)
        memories, unreadable = self._readable(hits)
        vectors: list[list[float] | None] | None = None
        if request.with_vectors and memories:
            found = {h.id: h.dense for h in self.db.get([m.id for m in memories], with_vectors=True)}
            vectors = [found.get(m.id) for m in memories]
        total = self.db.count(MemoryFilter(scopes=flt.scopes)) if request.cursor is None else None
        return ExportPage(
            memories=memories,
            vectors=vectors,
            next=following,
            total=total,
            model=self.embedder.name,
            dimension=self.embedder.dimension,
            unreadable=unreadable,
        )

    def import_batch(self, batch: ImportBatch) -> ImportSummary:
        """Whole records from an export; their vectors are reused only if our model made them."""
        reuse = batch.vectors is not None and batch.model == self.embedder.name
        vectors: list[list[float] | None] = [None] * len(batch.memories)
        if reuse and batch.vectors is not None:
            for i, vector in enumerate(batch.vectors):
                if vector is not None and len(vector) != self.embedder.dimension:
                    raise ValueError(
                        f"vectors[{i}]: {len(vector)} numbers, but {self.embedder.name} makes "
                        f"{self.embedder.dimension}; drop the vectors to have them recomputed"
                    )
                vectors[i] = vector
        records = []
        for record in batch.memories:
            memory = Memory.model_validate(record.model_dump())
            memory.content_hash = content_hash(memory.content)  # never trust a file's hash
            records.append(memory)
        reused = sum(v is not None for v in vectors)
        counts = self.put_memories(records, vectors)
        return ImportSummary(**counts, vectors_reused=reused, vectors_computed=len(records) - reused)

    def _by_hash(self, memories: Sequence[Memory]) -> dict[tuple[str, str], Memory]:
        """Stored memories sharing a scope and content hash with any of ``memories``."""
        flt = MemoryFilter(
            scopes=sorted({m.scope for m in memories}),
            content_hash=sorted({m.content_hash for m in memories}),
        )
        found, _ = self._readable(self.db.newest(flt, limit=len(memories) * 2))
        twins: dict[tuple[str, str], Memory] = {}
        for memory in found:
            twins.setdefault((memory.scope, memory.content_hash), memory)
        return twins

    def _readable(self, hits: Sequence[Hit]) -> tuple[list[Memory], list[str]]:
        """The memories of ``hits``, and a line for each stored record that fails the record
        schema (an older version's, or damaged): it is left out, so one bad record never fails a
        whole read, and logged once per id (``stats().unreadable`` counts them)."""
        memories: list[Memory] = []
        unreadable: list[str] = []
        for hit in hits:
            try:
                memories.append(Memory.from_payload(hit.id, hit.payload))
            except UnreadableMemory as exc:
                self._note_unreadable(exc)
                unreadable.append(f"{exc.memory_id}: {'; '.join(exc.problems)}")
        return memories, unreadable

    def _note_unreadable(self, exc: UnreadableMemory) -> None:
        with self._unreadable_lock:
            first = exc.memory_id not in self._unreadable
            if first and len(self._unreadable) < _UNREADABLE_REMEMBERED:
                self._unreadable.add(exc.memory_id)
        if first:
            log.warning("left out of reads: %s", exc)

    def _bump(self, memory: Memory, request: MemoryCreate, now: datetime) -> Memory:
        """Seeing a memory again makes it count more, never less: tags and importance only grow."""
        merged = list(dict.fromkeys([*memory.tags, *request.tags]))
        memory.tags = merged[: max(MAX_TAGS, len(memory.tags))]
        memory.importance = max(memory.importance, request.importance)
        memory.occurrences = saturating_add(memory.occurrences)
        memory.updated_at = now
        payload = memory.to_payload()
        self.db.set_payload(
            memory.id,
            {k: payload[k] for k in ("tags", "importance", "occurrences", "updated_at")},
        )
        return memory

    def _point(self, memory: Memory, dense: list[float] | None) -> PointData:
        """A memory without a dense vector is marked, so ``backfill_vectors`` finds it later."""
        payload = memory.to_payload()
        if dense is None:
            payload["vector_state"] = "pending"
        return PointData(memory.id, dense, self.lexical.document(index_text(memory)), payload)

    def _embed_if_ready(self, text: str) -> list[float] | None:
        """A single write never waits for the model: until it is loaded, memories are stored with
        their lexical vector only and get the dense one from ``backfill_vectors``."""
        if not self.embedder.ready:
            return None
        return self.embedder.embed_documents([text])[0]

    def backfill_vectors(self, batch: int = 64) -> int:
        """Give dense vectors to memories stored while the model was unavailable."""
        done = 0
        unreadable: list[str] = []  # left pending; excluded so they never stall the others
        while not self._closed:
            pending = self.db.newest(
                MemoryFilter(pending_vector=True, exclude_ids=unreadable), limit=batch, sort="oldest"
            )
            if not pending:
                break
            memories, _ = self._readable(pending)
            unreadable += sorted({h.id for h in pending} - {m.id for m in memories})
            vectors = self.embedder.embed_documents([m.content for m in memories])
            with self._write_lock:
                # Re-read under the lock: an update or delete meanwhile wins over this backfill.
                current = {m.id: m for m in self._readable(self.db.get([m.id for m in memories]))[0]}
                points = [
                    self._point(current[m.id], vector)
                    for m, vector in zip(memories, vectors, strict=True)
                    if m.id in current and current[m.id].content == m.content
                ]
                self.db.upsert(points, replaces_existing=True)
            done += len(points)
            if not points and len(memories) == len(pending):
                break
        if done:
            log.info("dense vectors backfilled for %d memories stored while the model was unavailable", done)
        return done

    def start_background(self) -> None:
        """Once the model is ready, backfill what was stored without it (a daemon thread)."""

        def run() -> None:
            try:
                self.embedder.wait_ready(timeout=None)
            except ModelNotReady:
                return  # the model failed: retrieval stays lexical-only and says so
            while True:  # short of disk space: wait for room rather than leave them lexical-only
                try:
                    self.backfill_vectors()
                    return
                except InsufficientStorage:
                    time.sleep(BACKFILL_RETRY_SECONDS)

        threading.Thread(target=run, name="clarity-backfill", daemon=True).start()

    def update(self, memory_id: str, patch: MemoryPatch) -> Memory:
        changes = _redacted(patch).model_dump(exclude_unset=True)
        # Read and write under one lock: a delete or a dedup bump in between must not be undone
        # by writing back what was read before it.
        with self._write_lock:
            memory = self.get(memory_id)
            content_changed = "content" in changes and changes["content"] != memory.content
            updated = memory.model_copy(update={**changes, "updated_at": utcnow()})
            updated.content_hash = content_hash(updated.content)
            if content_changed or "tags" in changes:
                if content_changed:
                    dense = self._embed_if_ready(updated.content)
                else:
                    stored = self.db.get([memory.id], with_vectors=True)
                    dense = stored[0].dense if stored else None
                self.db.upsert([self._point(updated, dense)], replaces_existing=True)
            else:
                self.db.set_payload(memory.id, updated.to_payload())
        return updated

    def delete(self, memory_id: str) -> DeleteResult:
        memory_id = parse_memory_id(memory_id)
        with self._write_lock:
            if not self.db.get([memory_id]):
                raise MemoryNotFound(memory_id)
            self.db.delete([memory_id])
        return DeleteResult(id=memory_id, deleted=True)

    # -- reads --------------------------------------------------------------------------------

    def get(self, memory_id: str) -> Memory:
        memory_id = parse_memory_id(memory_id)
        hits = self.db.get([memory_id])
        if not hits:
            raise MemoryNotFound(memory_id)
        try:
            return Memory.from_payload(hits[0].id, hits[0].payload)
        except UnreadableMemory as exc:
            self._note_unreadable(exc)
            raise

    def _filter(
        self,
        scopes: list[str] | None,
        types: Any,
        tags: Any,
        since: datetime | None = None,
        until: datetime | None = None,
        sources: Any = None,
        min_importance: float | None = None,
        max_importance: float | None = None,
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
        )

    def retrieve(
        self, request: RetrieveRequest, project: str | None = None, track_use: bool = True
    ) -> RetrieveResult:
        """Hybrid search; ``track_use=False`` (the dashboard) leaves use counts and last-used times alone."""
        scopes = self.resolve_scopes(request.scope, project)
        flt = self._filter(scopes, request.memory_types, request.tags, request.since, request.until)
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
            rrf_k=cfg.rrf_k,
            lexical_weight=lexical_weight,
        )
        scored = self._rescore(hits, mode, lexical_weight, lexical_used=bool(sparse and sparse[0]))
        floor = request.min_score if request.min_score is not None else cfg.min_score
        results: list[ScoredMemory] = []
        unreadable = 0
        for score, hit in scored:  # best first: build (and check) only the records kept
            if score < floor or len(results) == request.limit:
                break
            memories, skipped = self._readable([hit])
            unreadable += len(skipped)
            results.extend(
                ScoredMemory(
                    memory=memory,
                    score=score,
                    similarity=None if hit.similarity is None else round(hit.similarity, 4),
                )
                for memory in memories
            )
        if dense is not None and results:
            self._add_similarity(results, dense)
        if track_use:
            for result in results:
                self.access.touch(result.memory.id, result.memory.access_count)
        return RetrieveResult(
            results=results, mode=mode, scopes=scopes, degraded=degraded, unreadable=unreadable
        )

    def _add_similarity(self, results: list[ScoredMemory], query: list[float]) -> None:
        """Fused scores rank; only cosine says how close a memory really is, which hooks gate on.
        Results from the search's dense ranking already carry their cosine; the vectors of the
        rest (lexical-only results, an engine that fuses internally) are fetched, for the final
        few only: asking the search for every candidate's vector cost ~1 ms more."""
        missing = [result for result in results if result.similarity is None]
        if not missing:
            return
        vectors = {h.id: h.dense for h in self.db.get([r.memory.id for r in missing], with_vectors=True)}
        # A memory without a vector (still pending) gets no similarity.
        fetched = [result for result in missing if vectors.get(result.memory.id) is not None]
        if not fetched:
            return
        matrix = np.asarray([vectors[result.memory.id] for result in fetched], dtype=np.float32)
        for result, similarity in zip(
            fetched, (matrix @ np.asarray(query, dtype=np.float32)).tolist(), strict=True
        ):
            result.similarity = round(similarity, 4)

    def _rescore(
        self, hits: list[Hit], mode: str, lexical_weight: float = 1.0, lexical_used: bool = True
    ) -> list[tuple[float, Hit]]:
        """(score, hit) best first: relevance blended with recency and importance, relevance
        staying the dominant term.

        Relevance is put on 0..1 first: fused RRF scores are divided by their maximum
        (rank 0 in both lists), cosine is clipped at 0, BM25 is divided by the best hit. Scores
        need two payload fields only; the caller builds ``Memory`` objects (validated, ~30 µs
        each) for the few results it keeps, not for every candidate.
        """
        if not hits:
            return []
        cfg = self.settings.retrieval
        if mode == "hybrid":
            # The best possible fused score: rank 0 in every ranking that took part.
            ceiling = rrf_term(0, cfg.rrf_k) + (
                rrf_term(0, cfg.rrf_k, lexical_weight) if lexical_used else 0.0
            )
        elif mode == "lexical":
            ceiling = max(h.score for h in hits) or 1.0
        else:
            ceiling = 1.0
        now = time.time()
        half_life = cfg.recency_half_life_days * 86400.0
        relevance_weight = max(0.0, 1.0 - cfg.recency_weight - cfg.importance_weight)
        scored = []
        for hit in hits:
            relevance = min(1.0, max(0.0, hit.score / ceiling))
            age = max(0.0, now - _updated_at(hit))
            recency = math.pow(0.5, age / half_life)
            importance = _importance(hit)
            score = (
                relevance_weight * relevance
                + cfg.recency_weight * recency
                + cfg.importance_weight * importance
            )
            scored.append((round(score, 6), hit))
        scored.sort(key=itemgetter(0), reverse=True)
        return scored

    def list(self, request: ListRequest, project: str | None = None) -> ListResult:
        scopes = self.resolve_scopes(request.scope, project)
        flt = self._filter(
            scopes,
            request.memory_types,
            request.tags,
            request.since,
            request.until,
            request.sources,
            request.min_importance,
            request.max_importance,
        )
        hits = self.db.newest(flt, limit=request.limit, offset=request.offset, sort=request.sort)
        total = self.db.count(flt)
        memories, unreadable = self._readable(hits)
        following = request.offset + len(hits)
        return ListResult(
            memories=memories,
            total=total,
            offset=request.offset,
            limit=request.limit,
            next_offset=following if following < total else None,
            unreadable=len(unreadable),
        )

    def forget(
        self, request: ForgetRequest, project: str | None = None, dry_run: bool = False
    ) -> ForgetResult:
        """Bulk delete by filter, oldest first, one batch per lock hold so hooks keep being served."""
        until = None
        if request.older_than_days is not None:
            until = datetime.fromtimestamp(time.time() - request.older_than_days * 86400.0, UTC)
        flt = self._filter(
            self.resolve_scopes(request.scope, project),
            request.memory_types,
            request.tags,
            None,
            until,
            request.sources,
            None,
            request.max_importance,
        )
        matched = self.db.count(flt)
        sample, _ = self._readable(self.db.newest(flt, limit=5))
        if dry_run or not matched:
            return ForgetResult(matched=matched, deleted=0, dry_run=dry_run, sample=sample)
        deleted = self._delete_oldest(flt)
        return ForgetResult(matched=matched, deleted=deleted, dry_run=False, sample=sample)

    def evict_oldest(self, count: int, max_importance: float) -> int:
        """Delete up to ``count`` memories at or below an importance, oldest first (the size cap)."""
        return self._delete_oldest(MemoryFilter(importance_max=max_importance), count)

    def _delete_oldest(self, flt: MemoryFilter, count: int | None = None) -> int:
        """Delete matching memories oldest first, up to ``count`` (all if None), one batch per
        lock hold so hooks keep being served meanwhile."""
        deleted = 0
        previous: set[str] = set()
        while count is None or deleted < count:
            batch = _FORGET_BATCH if count is None else min(_FORGET_BATCH, count - deleted)
            with self._write_lock:
                ids = [hit.id for hit in self.db.newest(flt, limit=batch, sort="oldest")]
                if not ids or previous.issuperset(ids):
                    break  # nothing left, or the engine did not apply the last delete: never spin
                self.db.delete(ids)
            previous = set(ids)
            deleted += len(ids)
        return deleted

    def stats(self, project: str | None = None, scope: str = "all") -> Stats:
        flt = MemoryFilter(scopes=self.resolve_scopes(scope, project))
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
            unreadable=len(self._unreadable),
        )

    def close(self) -> None:
        self._closed = True
        self.access.close()
        self.db.close()
