"""Every write to the engine, under one lock: stores, imports, edits, deletes and the dense backfill.

The slow part of a store (the embedding) is computed before the lock is taken, so concurrent
stores encode in parallel and only the duplicate checks and the upsert are serialised. Bulk
deletes take the lock one batch at a time, so hooks keep being served meanwhile.

A write the team tier must send is journaled (``journal``: an op into its durable outbox) under
the same lock and BEFORE the engine write: a process killed in between leaves an op for a write
that never happened (the sender drops a put whose memory is missing; a delete or a put of the old
state is harmless, the team applies each op id once), never a shared write the team never gets.
The sender reads what it sends under this lock (``paused``), so it never reads a journaled write
before it lands; the replica's pull decides what to leave alone under it too (``put_memories``'s
``skip``), so a local edit and a pull never interleave.

A memory with a session is linked to the memory before it, whose text (when short) its lexical
text takes in; every write here keeps those links true (``session_links.py``): a forgotten
memory's words must not keep finding the memory after it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from clarity.config import Settings
from clarity.embedding import EmbeddingProvider, LexicalEncoder, ModelNotReady
from clarity.exchange import ImportBatch, ImportSummary
from clarity.memory.lexical_upgrade import upgrade_lexical
from clarity.memory.records import (
    MemoryNotFound,
    RecordReader,
    fact_tokens,
    new_memory,
    redacted,
    store_scope,
)
from clarity.memory.session_links import NO_LINK, Link, SessionLinks
from clarity.memory.supersede import SUPERSEDABLE
from clarity.memory.supersede_step import SUPERSEDE_NEIGHBOURS, mark_superseded, replaced_by, shown
from clarity.memory.usage import UsageCounts, recorded_use
from clarity.models import (
    MAX_PREVIOUS_VERSIONS,
    MAX_TAGS,
    Memory,
    MemoryCreate,
    MemoryPatch,
    PreviousVersion,
    content_hash,
    parse_memory_id,
    saturating_add,
    utcnow,
)
from clarity.requests import DeleteResult, StoreResult
from clarity.store.base import Hit, MemoryFilter, PointData, VectorStore
from clarity.store.space import InsufficientStorage

log = logging.getLogger(__name__)

_FORGET_BATCH = 256
BACKFILL_RETRY_SECONDS = 30.0  # how often a backfill stopped by a full disk tries again
SUPERSEDE_CHECK = "supersede_check"  # "pending": stored alone without the model; checked at backfill
Vectors = Sequence[list[float] | None]  # a dense vector per record, None where it is to be computed
SkipIds = Callable[[list[str]], set[str]]  # of these ids, those a write must leave alone


def _created(hit: Hit) -> float:
    value = hit.payload.get("created_at")
    return float(value) if isinstance(value, int | float) else float("inf")


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
        self.links = SessionLinks(store, lexical, settings.retrieval.lexical_context_max_chars)
        self.closed = False
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Hold every write back (they wait, none fails) for a consistent copy of the store."""
        with self._lock:
            yield

    def store(
        self,
        request: MemoryCreate,
        project: str | None = None,
        anchors: list[dict[str, Any]] | None = None,
        journal: Callable[[Memory], None] | None = None,
    ) -> StoreResult:
        """``journal``: called with the memory as it is about to be written (new, or bumped as a
        duplicate), under the lock, before the engine write (see the module's docstring)."""
        request = redacted(request)
        scope = store_scope(request.scope, project)
        content = request.content
        digest = content_hash(content)
        # A superseded memory stated again is current again: stored anew, it supersedes in turn.
        same_text = MemoryFilter(scopes=[scope], content_hash=digest, exclude_superseded=True)
        dense = None if self.db.newest(same_text, limit=1) else self._embed_if_ready(content)
        with self._lock:
            now = utcnow()  # under the lock: stores are made in the order their session links them
            existing, _ = self.records.read(self.db.newest(same_text, limit=1))
            if existing:
                memory = existing[0]
                bumped = self._bump(memory, request, now, journal)
                return StoreResult(id=memory.id, status="duplicate", memory=bumped)
            if dense is None:  # deleted since the check above, or the model just became ready
                dense = self._embed_if_ready(content)
            memory = new_memory(request, scope, content, now)
            memory.anchors = anchors or []
            memory.shared = request.shared  # as the team tier's gate decided (``MemoryService.store``)
            near = self._neighbours(memory, dense)
            threshold = self.settings.retrieval.near_duplicate_similarity
            same_kind = [hit for hit in near if hit.payload.get("memory_type") == memory.memory_type.value]
            close = [hit for hit in same_kind[:1] if hit.score >= threshold]
            twins, _ = self.records.read(close)
            if twins and fact_tokens(twins[0].content) == fact_tokens(content):
                twin = twins[0]
                return StoreResult(
                    id=twin.id, status="merged", memory=self._bump(twin, request, now, journal)
                )
            replaced = replaced_by(self.records, memory, near)
            memory.supersedes = [old.id for old, _ in replaced]
            if journal is not None:
                journal(memory)
            self.db.upsert([self._point(memory, dense, self.links.for_batch([memory])[0], check_later=True)])
            # After the new one is in: a crash between leaves both current.
            mark_superseded(self.db, memory.id, replaced, now)
        return StoreResult(id=memory.id, status="created", memory=memory, superseded=shown(replaced))

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

    def store_many(
        self,
        requests: Sequence[MemoryCreate],
        project: str | None = None,
        anchors: Sequence[list[dict[str, Any]]] | None = None,
    ) -> list[StoreResult]:
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
        for draft, anchored in zip(drafts, anchors or (), strict=False):
            draft.anchors = anchored
        vectors = self.embedder.embed_documents([d.content for d in drafts])
        results: list[StoreResult] = []
        with self._lock:
            known = self._by_hash(drafts)
            kept: list[tuple[Memory, list[float]]] = []
            for draft, request, vector in zip(drafts, requests, vectors, strict=True):
                twin = known.get((draft.scope, draft.content_hash))
                if twin is not None:
                    results.append(
                        StoreResult(
                            id=twin.id, status="duplicate", memory=self._bump(twin, request, now, None)
                        )
                    )
                    continue
                known[(draft.scope, draft.content_hash)] = draft
                kept.append((draft, vector))
                results.append(StoreResult(id=draft.id, status="created", memory=draft))
            links = self.links.for_batch([draft for draft, _ in kept])
            self.db.upsert([self._point(d, v, link) for (d, v), link in zip(kept, links, strict=True)])
        return results

    def put_memories(
        self, memories: Sequence[Memory], vectors: Vectors | None = None, skip: SkipIds | None = None
    ) -> dict[str, int]:
        """Write whole records with their ids (imports, restores, migrations, the team replica).

        Idempotent: a record whose id exists replaces it; one whose content already exists in its
        scope under another id is skipped as a duplicate. Missing vectors are computed here. The
        records' use counts replace the sidecar's. ``skip``: asked under the lock which ids to
        leave alone (the replica's: those with a team op waiting, so a local edit or delete made
        while the pull ran is not overwritten). Returns counts by outcome: created, replaced,
        duplicate, skipped.
        """
        memories = [redacted(memory) for memory in memories]
        vectors = list(vectors) if vectors is not None else [None] * len(memories)
        missing = [i for i, v in enumerate(vectors) if v is None]
        if missing:
            computed = self.embedder.embed_documents([memories[i].content for i in missing])
            for i, fresh in zip(missing, computed, strict=True):
                vectors[i] = fresh
        counts = {"created": 0, "replaced": 0, "duplicate": 0, "skipped": 0}
        with self._lock:
            if skip is not None and (left := skip([m.id for m in memories])):
                kept = [(m, v) for m, v in zip(memories, vectors, strict=True) if m.id not in left]
                counts["skipped"] = len(memories) - len(kept)
                memories, vectors = [m for m, _ in kept], [v for _, v in kept]
                if not memories:
                    return counts
            existing = {hit.id for hit in self.db.get([m.id for m in memories])}
            known = self._by_hash(memories)
            written: list[tuple[Memory, list[float] | None]] = []
            for memory, vector in zip(memories, vectors, strict=True):
                twin = known.get((memory.scope, memory.content_hash))
                if memory.id not in existing and twin is not None and twin.id != memory.id:
                    counts["duplicate"] += 1
                    continue
                known[(memory.scope, memory.content_hash)] = memory
                counts["replaced" if memory.id in existing else "created"] += 1
                written.append((memory, vector))
            links = self.links.for_batch([memory for memory, _ in written])
            points = [self._point(m, v, link) for (m, v), link in zip(written, links, strict=True)]
            self.db.upsert(points, replaces_existing=bool(existing))
            # Records can land amid a session's stored memories, and a replaced one can change
            # text or session: the memories after them are linked again.
            self.links.check_sessions([memory for memory, _ in written])
            self.links.relink_next([memory.id for memory, _ in written if memory.id in existing])
            self.usage.set({memory.id: recorded_use(memory) for memory, _ in written})
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

    def update(
        self,
        memory_id: str,
        patch: MemoryPatch,
        sharing: dict[str, Any] | None = None,
        journal: Callable[[Memory, Memory], None] | None = None,
    ) -> Memory:
        """``sharing``: the ``shared`` and ``author`` the team tier decided (``clarity.team.share``);
        the patch's own ``shared`` is only the caller's wish. ``journal(before, after)``: under the
        lock, before the engine write (the module's docstring)."""
        changes = redacted(patch).model_dump(exclude_unset=True, exclude={"shared"}) | (sharing or {})
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
            if journal is not None:
                journal(memory, updated)
            if content_changed or "tags" in changes:
                stored = self.db.get([memory.id], with_vectors=not content_changed)
                link = Link.of(stored[0].payload) if stored else NO_LINK
                if content_changed:
                    dense = self._embed_if_ready(updated.content)
                else:
                    dense = stored[0].dense if stored else None
                self.db.upsert([self._point(updated, dense, link)], replaces_existing=True)
                if content_changed:  # the next memory's lexical text holds the old text
                    self.links.relink_next([memory.id])
            else:
                self.db.set_payload(memory.id, updated.to_payload())
        return updated

    def delete(self, memory_id: str, journal: Callable[[], None] | None = None) -> DeleteResult:
        """``journal``: under the lock, once the memory is known to exist, before the delete."""
        memory_id = parse_memory_id(memory_id)
        with self._lock:
            found = self.db.get([memory_id])
            if not found:
                raise MemoryNotFound(memory_id)
            if journal is not None:
                journal()
            self.db.delete([memory_id])
            self.usage.forget([memory_id])
            self.links.relink_next([memory_id], purge=True)
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
                hits = self.db.newest(flt, limit=batch, sort="oldest")
                ids = [hit.id for hit in hits]
                if not ids or previous.issuperset(ids):
                    break  # nothing left, or the engine did not apply the last delete: never spin
                self.db.delete(ids)
                self.usage.forget(ids)
                self.links.relink_next(ids, purge=True)
                for hit in hits:  # as one delete: what a forgotten memory replaced is current again
                    self._revive(hit.id, hit.payload.get("supersedes"))
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

    def _bump(
        self, memory: Memory, request: MemoryCreate, now: datetime, journal: Callable[[Memory], None] | None
    ) -> Memory:
        """Seeing a memory again makes it count more, never less: tags and importance only grow."""
        merged = list(dict.fromkeys([*memory.tags, *request.tags]))
        memory.tags = merged[: max(MAX_TAGS, len(memory.tags))]
        memory.importance = max(memory.importance, request.importance)
        memory.occurrences = saturating_add(memory.occurrences)
        memory.updated_at = now
        memory.shared = memory.shared or request.shared  # stored again to share it: now it is
        if journal is not None:
            journal(memory)
        payload = memory.to_payload()
        self.db.set_payload(
            memory.id,
            {k: payload[k] for k in ("tags", "importance", "occurrences", "updated_at", "shared")},
        )
        return memory

    def _point(
        self, memory: Memory, dense: list[float] | None, link: Link, check_later: bool = False
    ) -> PointData:
        """A memory without a dense vector is marked, so ``backfill_vectors`` finds it later;
        ``check_later``: and makes then the supersede check a single store makes."""
        payload = link.apply(memory.to_payload())
        if dense is None:
            payload["vector_state"] = "pending"
            if check_later and memory.memory_type in SUPERSEDABLE:
                payload[SUPERSEDE_CHECK] = "pending"
        return PointData(memory.id, dense, self.lexical.document(link.text(memory)), payload)

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
                kept = [
                    (current[m.id], vector)
                    for m, vector in zip(memories, vectors, strict=True)
                    if m.id in current and current[m.id].content == m.content
                ]
                points = [
                    self._point(memory, vector, Link.of(hits[memory.id].payload)) for memory, vector in kept
                ]
                self.db.upsert(points, replaces_existing=True)
                for memory, vector in sorted(kept, key=lambda pair: pair[0].created_at):
                    if hits[memory.id].payload.get(SUPERSEDE_CHECK) == "pending":
                        self._supersede_late(memory, vector)
            done += len(points)
            if not points and len(memories) == len(pending):
                break
        if done:
            log.info("dense vectors backfilled for %d memories stored while the model was unavailable", done)
        return done

    def _supersede_late(self, memory: Memory, dense: list[float] | None) -> None:
        """The supersede check a single store makes with its vector, made once the vector came
        (the memory was stored while the model was loading): against older memories only, as
        the store would have been."""
        near = [h for h in self._neighbours(memory, dense) if _created(h) < memory.created_at.timestamp()]
        olds = replaced_by(self.records, memory, near)
        if olds:
            self.db.set_payload(memory.id, {"supersedes": [old.id for old, _ in olds]})
            mark_superseded(self.db, memory.id, olds, utcnow())

    def upgrade_lexical(self) -> int:
        """Re-encode the lexical vectors an older encoder made (``lexical_upgrade.py``)."""
        return upgrade_lexical(self.db, self.lexical, self.paused, lambda: self.closed)

    def start_background(self) -> None:
        """Re-encode what an older lexical encoder made, and once the model is ready, backfill
        what was stored without it (daemon threads)."""
        threading.Thread(target=self.upgrade_lexical, name="clarity-lexical-upgrade", daemon=True).start()

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
