"""Every write to the engine, under one lock: stores, imports, edits, deletes and the dense backfill.

The slow part of a store (the embedding) is computed before the lock is taken, so concurrent
stores encode in parallel and only the duplicate checks and the upsert are serialised. Bulk
deletes take the lock one batch at a time, so hooks keep being served meanwhile.

With ``retrieval.lexical_context_chars`` set, a memory with a session gets, in its lexical text
only, the text of the previous memory of the same session and scope (its ``lexical_context``,
kept in the payload so every later rebuild of the lexical vector reproduces it): a question often
names what the turn before the answer said. It is off by default: on LoCoMo dev it raised
recall@10 by 3 points, on LongMemEval dev it lowered turn recall@10 by 5 (the turn after the
answer matches as well as the answer); in the embedded text it cost 5-10 points, so the dense
vector and the content stay the memory's own (docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from clarity.config import Settings
from clarity.embedding import EmbeddingProvider, LexicalEncoder, ModelNotReady
from clarity.exchange import ImportBatch, ImportSummary
from clarity.memory.records import (
    MemoryNotFound,
    RecordReader,
    fact_tokens,
    index_text,
    new_memory,
    redacted,
    store_scope,
)
from clarity.memory.supersede import SUPERSEDABLE, Verdict, candidates, eligible, supersedes
from clarity.memory.usage import UsageCounts, recorded_use
from clarity.models import (
    MAX_PREVIOUS_VERSIONS,
    MAX_TAGS,
    Memory,
    MemoryCreate,
    MemoryPatch,
    MemoryType,
    PreviousVersion,
    Source,
    content_hash,
    parse_memory_id,
    saturating_add,
    utcnow,
)
from clarity.requests import DeleteResult, StoreResult, Superseded
from clarity.store.base import Hit, MemoryFilter, PointData, VectorStore
from clarity.store.space import InsufficientStorage
from clarity.text import cut, one_line

log = logging.getLogger(__name__)

_FORGET_BATCH = 256
BACKFILL_RETRY_SECONDS = 30.0  # how often a backfill stopped by a full disk tries again
LEXICAL_CONTEXT = "lexical_context"  # the payload key of the previous memory's text
SUPERSEDED_SHOWN_CHARS = 200  # an older memory's text in a store's answer, on one line
_REASON_CHARS = 200
# Neighbours a single store checks for a value it replaces. Three (``supersede.MAX_CANDIDATES``)
# missed 33 of 200 new values where a project holds many lookalike statements ("ledger-47 listens
# on 30047" ranks under "ledger-55 ..."), ten none; the detector refuses those lookalikes (two
# values differ). At 10,000 memories the search and checks take 1.35 ms p50 (three: 1.13 ms), where
# the merge search alone took 0.44 ms, of a 5.7 ms store (scripts/bench/supersede_store.py).
SUPERSEDE_NEIGHBOURS = 10
_KINDS = frozenset(kind.value for kind in MemoryType)
_SOURCES = frozenset(source.value for source in Source)


def reason(verdict: Verdict) -> str:
    """What changed, as the dashboard and a store's answer show it: ``6543 -> 6544``."""
    if verdict.rule == "negation":
        return "no longer true"
    return cut(f"{verdict.old_value} -> {verdict.new_value or 'none'}", _REASON_CHARS)


def lexical_text(memory: Memory, context: str | None) -> str:
    """What the lexical index sees: the content and tags, then the session's previous memory."""
    text = index_text(memory)
    return f"{text} {context}" if context else text


def stored_context(payload: dict[str, Any]) -> str | None:
    value = payload.get(LEXICAL_CONTEXT)
    return value if isinstance(value, str) and value else None


class MemoryWriter:
    """Writes for ``MemoryService``: each one redacted, checked for duplicates, and serialised."""

    def __init__(
        self,
        settings: Settings,
        store: VectorStore,
        embedder: EmbeddingProvider,
        lexical: LexicalEncoder,
        records: RecordReader,
        usage: UsageCounts,
    ) -> None:
        self.settings = settings
        self.db = store
        self.embedder = embedder
        self.lexical = lexical
        self.records = records
        self.usage = usage
        self.closed = False
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Hold every write back (they wait, none fails) for a consistent copy of the store."""
        with self._lock:
            yield

    def store(self, request: MemoryCreate, project: str | None = None) -> StoreResult:
        request = redacted(request)
        scope = store_scope(request.scope, project)
        content = request.content
        digest = content_hash(content)
        # A superseded memory stated again is current again: stored anew, it supersedes in turn.
        same_text = MemoryFilter(scopes=[scope], content_hash=digest, exclude_superseded=True)
        dense = None if self.db.newest(same_text, limit=1) else self._embed_if_ready(content)
        now = utcnow()
        with self._lock:
            existing, _ = self.records.read(self.db.newest(same_text, limit=1))
            if existing:
                memory = existing[0]
                return StoreResult(id=memory.id, status="duplicate", memory=self._bump(memory, request, now))
            if dense is None:  # deleted since the check above, or the model just became ready
                dense = self._embed_if_ready(content)
            memory = new_memory(request, scope, content, now)
            near = self._neighbours(memory, dense)
            threshold = self.settings.retrieval.near_duplicate_similarity
            same_kind = [hit for hit in near if hit.payload.get("memory_type") == memory.memory_type.value]
            close = [hit for hit in same_kind[:1] if hit.score >= threshold]
            twins, _ = self.records.read(close)
            if twins and fact_tokens(twins[0].content) == fact_tokens(content):
                twin = twins[0]
                return StoreResult(id=twin.id, status="merged", memory=self._bump(twin, request, now))
            replaced = self._replaced(memory, near)
            memory.supersedes = [old.id for old, _ in replaced]
            self.db.upsert([self._point(memory, dense, self._contexts([memory])[0])])
            for old, verdict in replaced:  # after the new one is in: a crash between leaves both current
                self.db.set_payload(
                    old.id,
                    {
                        "superseded_by": memory.id,
                        "superseded_at": now.timestamp(),
                        "supersede_reason": reason(verdict),
                    },
                )
        superseded = [
            Superseded(
                id=old.id, content=one_line(old.content, SUPERSEDED_SHOWN_CHARS), reason=reason(verdict)
            )
            for old, verdict in replaced
        ]
        return StoreResult(id=memory.id, status="created", memory=memory, superseded=superseded)

    def _neighbours(self, memory: Memory, dense: list[float] | None) -> list[Hit]:
        """One dense search serves both checks of a single store: its best hit of the same kind for
        the near-duplicate merge, and the few closest statements for ``supersede`` (a kind that
        states nothing, such as an error, is compared with its own kind only, for the merge).
        Memories already superseded are history: neither merged into nor superseded again."""
        if dense is None:
            return []
        kinds, limit = [memory.memory_type.value], 1
        if memory.memory_type in SUPERSEDABLE:
            kinds, limit = sorted(kind.value for kind in SUPERSEDABLE), SUPERSEDE_NEIGHBOURS
        flt = MemoryFilter(scopes=[memory.scope], memory_types=kinds, exclude_superseded=True)
        return self.db.search(dense, None, flt, limit, mode="dense")

    def _replaced(self, memory: Memory, near: list[Hit]) -> list[tuple[Memory, Verdict]]:
        """The older memories among ``near`` (cosines, best first) that ``memory`` states a new
        value for: close enough to share a subject (``candidates``), kinds that can be replaced
        (``eligible``), and the detector's verdict (``supersedes``), run on the stored text so
        that only a memory it replaces is read into a record."""
        wanted = set(candidates([(hit.id, hit.score) for hit in near], SUPERSEDE_NEIGHBOURS))
        found = []
        for hit in near:
            text, kind, source = (hit.payload.get(key) for key in ("content", "memory_type", "source"))
            if (
                hit.id not in wanted
                or not isinstance(text, str)
                or kind not in _KINDS
                or source not in _SOURCES
            ):
                continue
            if not eligible(memory.memory_type, MemoryType(kind), memory.source, Source(source)):
                continue
            verdict = supersedes(memory.content, text)
            if verdict is not None:
                olds, _ = self.records.read([hit])
                found += [(old, verdict) for old in olds]
        return found

    def store_many(self, requests: Sequence[MemoryCreate], project: str | None = None) -> list[StoreResult]:
        """Bulk store for imports: one embedding batch, one hash lookup, one upsert.

        Exact duplicates (by content hash, in the database or earlier in the batch) are counted,
        not stored; near-duplicate merging is left to single stores, where one memory at a time
        is compared, because a bulk import should keep what the source kept.
        """
        if not requests:
            return []
        requests = [redacted(request) for request in requests]
        now = utcnow()
        # A microsecond apart, in the batch's order: the newest memory of a session is then its last
        # turn, which the next memory of that session takes as its lexical context.
        drafts = [
            new_memory(
                request, store_scope(request.scope, project), request.content, now + timedelta(microseconds=i)
            )
            for i, request in enumerate(requests)
        ]
        vectors = self.embedder.embed_documents([d.content for d in drafts])
        results: list[StoreResult] = []
        with self._lock:
            known = self._by_hash(drafts)
            contexts = self._contexts(drafts)
            points = []
            for draft, request, vector, context in zip(drafts, requests, vectors, contexts, strict=True):
                twin = known.get((draft.scope, draft.content_hash))
                if twin is not None:
                    results.append(
                        StoreResult(id=twin.id, status="duplicate", memory=self._bump(twin, request, now))
                    )
                    continue
                known[(draft.scope, draft.content_hash)] = draft
                points.append(self._point(draft, vector, context))
                results.append(StoreResult(id=draft.id, status="created", memory=draft))
            self.db.upsert(points)
        return results

    def put_memories(
        self, memories: Sequence[Memory], vectors: Sequence[list[float] | None] | None = None
    ) -> dict[str, int]:
        """Write whole records with their ids (imports, restores, migrations).

        Idempotent: a record whose id exists replaces it; one whose content already exists in its
        scope under another id is skipped as a duplicate. Missing vectors are computed here. The
        records' use counts replace the sidecar's. Returns counts by outcome: created, replaced,
        duplicate.
        """
        memories = [redacted(memory) for memory in memories]
        vectors = list(vectors) if vectors is not None else [None] * len(memories)
        missing = [i for i, v in enumerate(vectors) if v is None]
        if missing:
            computed = self.embedder.embed_documents([memories[i].content for i in missing])
            for i, fresh in zip(missing, computed, strict=True):
                vectors[i] = fresh
        counts = {"created": 0, "replaced": 0, "duplicate": 0}
        with self._lock:
            existing = {hit.id for hit in self.db.get([m.id for m in memories])}
            known = self._by_hash(memories)
            contexts = self._contexts(memories)
            points = []
            written: list[Memory] = []
            for memory, vector, context in zip(memories, vectors, contexts, strict=True):
                twin = known.get((memory.scope, memory.content_hash))
                if memory.id not in existing and twin is not None and twin.id != memory.id:
                    counts["duplicate"] += 1
                    continue
                known[(memory.scope, memory.content_hash)] = memory
                counts["replaced" if memory.id in existing else "created"] += 1
                points.append(self._point(memory, vector, context))
                written.append(memory)
            self.db.upsert(points, replaces_existing=bool(existing))
            self.usage.set({memory.id: recorded_use(memory) for memory in written})
        return counts

    def import_batch(self, batch: ImportBatch) -> ImportSummary:
        """Whole records from an export; their vectors are reused only if our model made them."""
        reuse = batch.vectors is not None and self.embedder.made(batch.model)
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

    def update(self, memory_id: str, patch: MemoryPatch) -> Memory:
        changes = redacted(patch).model_dump(exclude_unset=True)
        # Read and write under one lock: a delete or a dedup bump in between must not be undone
        # by writing back what was read before it.
        with self._lock:
            memory = self.records.stored(memory_id)
            content_changed = "content" in changes and changes["content"] != memory.content
            updated = memory.model_copy(update={**changes, "updated_at": utcnow()})
            updated.content_hash = content_hash(updated.content)
            if content_changed:  # the text it replaces stays readable (already redacted when stored)
                before = PreviousVersion(content=memory.content, updated_at=memory.updated_at)
                updated.previous_versions = [before, *memory.previous_versions][:MAX_PREVIOUS_VERSIONS]
            if content_changed or "tags" in changes:
                stored = self.db.get([memory.id], with_vectors=not content_changed)
                context = stored_context(stored[0].payload) if stored else None
                if content_changed:
                    dense = self._embed_if_ready(updated.content)
                else:
                    dense = stored[0].dense if stored else None
                self.db.upsert([self._point(updated, dense, context)], replaces_existing=True)
            else:
                self.db.set_payload(memory.id, updated.to_payload())
        return updated

    def delete(self, memory_id: str) -> DeleteResult:
        memory_id = parse_memory_id(memory_id)
        with self._lock:
            found = self.db.get([memory_id])
            if not found:
                raise MemoryNotFound(memory_id)
            self.db.delete([memory_id])
            self.usage.forget([memory_id])
            self._revive(memory_id, found[0].payload.get("supersedes"))
        return DeleteResult(id=memory_id, deleted=True)

    def _revive(self, memory_id: str, older: Any) -> None:
        """The memories a deleted one had superseded are current again: deleting the newer value
        says it was wrong, and the older one is then the best known."""
        if not isinstance(older, list) or not older:
            return
        for hit in self.db.get([i for i in older if isinstance(i, str)]):
            if hit.payload.get("superseded_by") == memory_id:
                self.db.set_payload(
                    hit.id, {"superseded_by": None, "superseded_at": None, "supersede_reason": None}
                )

    def delete_oldest(self, flt: MemoryFilter, count: int | None = None) -> int:
        """Delete matching memories oldest first, up to ``count`` (all if None), one batch per
        lock hold so hooks keep being served meanwhile."""
        deleted = 0
        previous: set[str] = set()
        while count is None or deleted < count:
            batch = _FORGET_BATCH if count is None else min(_FORGET_BATCH, count - deleted)
            with self._lock:
                ids = [hit.id for hit in self.db.newest(flt, limit=batch, sort="oldest")]
                if not ids or previous.issuperset(ids):
                    break  # nothing left, or the engine did not apply the last delete: never spin
                self.db.delete(ids)
                self.usage.forget(ids)
            previous = set(ids)
            deleted += len(ids)
        return deleted

    def _by_hash(self, memories: Sequence[Memory]) -> dict[tuple[str, str], Memory]:
        """Stored memories sharing a scope and content hash with any of ``memories``."""
        flt = MemoryFilter(
            scopes=sorted({m.scope for m in memories}),
            content_hash=sorted({m.content_hash for m in memories}),
        )
        found, _ = self.records.read(self.db.newest(flt, limit=len(memories) * 2))
        twins: dict[tuple[str, str], Memory] = {}
        for memory in found:
            twins.setdefault((memory.scope, memory.content_hash), memory)
        return twins

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

    def _point(self, memory: Memory, dense: list[float] | None, context: str | None) -> PointData:
        """A memory without a dense vector is marked, so ``backfill_vectors`` finds it later."""
        payload = memory.to_payload()
        if dense is None:
            payload["vector_state"] = "pending"
        if context:
            payload[LEXICAL_CONTEXT] = context
        return PointData(memory.id, dense, self.lexical.document(lexical_text(memory, context)), payload)

    def _cap(self, text: str) -> str | None:
        limit = self.settings.retrieval.lexical_context_chars
        return cut(text, limit) if limit and text else None

    def _previous(self, scope: str, session_id: str, before: datetime) -> str | None:
        """The capped text of the newest stored memory of the session in ``scope`` created before
        ``before`` (half a microsecond: a bulk store spaces its memories by one); one indexed lookup."""
        flt = MemoryFilter(scopes=[scope], session_id=session_id, created_to=before.timestamp() - 5e-7)
        hits = self.db.newest(flt, limit=1)
        content = hits[0].payload.get("content") if hits else None
        return self._cap(content) if isinstance(content, str) else None

    def _contexts(self, memories: Sequence[Memory]) -> list[str | None]:
        """Each memory's lexical context: the memory before it in its session (scope and session
        id), in creation order, from this batch (duplicates included: a turn repeated is still the
        turn before) or else the store."""
        contexts: list[str | None] = [None] * len(memories)
        if not self.settings.retrieval.lexical_context_chars:
            return contexts
        last: dict[tuple[str, str], str | None] = {}
        for i in sorted(range(len(memories)), key=lambda i: memories[i].created_at):
            memory = memories[i]
            if not memory.session_id:
                continue
            key = (memory.scope, memory.session_id)
            if key not in last:
                last[key] = self._previous(memory.scope, memory.session_id, memory.created_at)
            contexts[i] = last[key]
            last[key] = self._cap(memory.content)
        return contexts

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
        while not self.closed:
            pending = self.db.newest(
                MemoryFilter(pending_vector=True, exclude_ids=unreadable), limit=batch, sort="oldest"
            )
            if not pending:
                break
            memories, _ = self.records.read(pending)
            unreadable += sorted({h.id for h in pending} - {m.id for m in memories})
            vectors = self.embedder.embed_documents([m.content for m in memories])
            with self._lock:
                # Re-read under the lock: an update or delete meanwhile wins over this backfill.
                hits: dict[str, Hit] = {h.id: h for h in self.db.get([m.id for m in memories])}
                current = {m.id: m for m in self.records.read(list(hits.values()))[0]}
                points = [
                    self._point(current[m.id], vector, stored_context(hits[m.id].payload))
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
