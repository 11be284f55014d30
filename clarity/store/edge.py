"""Embedded engine: Qdrant Edge shards under ``<root>/qdrant``.

Layout, recorded in ``manifest.json`` (written atomically, validated before it is trusted:
``edge_manifest.py``):

- ``active``: the shard every write goes to; it stays small, so brute-force search is fast.
- ``sealing``: at most one former active shard whose index is being built.
- ``segments``: indexed shards, and active shards that filled up while a build ran (set aside
  as they are until the next build merges them). They take deletes and payload updates in
  place, except those listed in ``merging``, and except use counts: those wait in
  ``touches.jsonl`` for the segment's next build (``pending_touches.py``), which also starts
  when enough of them wait.
- ``merging``: segments being rebuilt together with the sealing shard (or on their own) into one
  segment of at most ``segment_max_points``.

The sealing shard and the merging segments are *frozen*: immutable while copies of them are
combined and optimized in a child process (``edge_build``). Deletes that touch them meanwhile are
kept as tombstones (persisted in the manifest) and replayed on the result; payload updates move
the point to the active shard.

Purge: a deleted point's text stays in its shard's WAL and payload pages. A delete therefore
marks the shards that held it ``dirty``, and a build rewrites them into a new shard that never
held it; the old directories are removed after the swap (``retired`` until then). The build
waits until deletes pause for ``purge_delay_seconds`` (at most ``PURGE_DEADLINE_FACTOR`` times
that after the first one waiting), and then takes every dirty shard that fits in one segment: a
rebuild costs up to a minute of CPU per 100k points, and a run of deletes (one by one from the
dashboard, retention's batches) used to chain one each. ``info()["purge_pending"]`` counts the
shards still holding deleted text, ``info()["purge_starts_in"]`` when their rebuild starts.

Why merge: every shard costs a search a fixed ~0.3-0.5 ms per ranking whatever its size, while
an HNSW search grows with the log of the points. Twenty-thousand-point segments made a 100k store
six shards and a 1M store fifty; merged, 100k is one segment plus the active shard.

Why not one shard: ``optimize()`` holds the GIL for a minute at 100k points, which would freeze
the daemon. With this layout the serving process never builds an index, and nothing written is
invisible at any moment: reads fan out over every shard and fuse the rankings.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any, cast

from qdrant_edge import (
    CountRequest,
    Direction,
    EdgeConfig,
    EdgeShard,
    FacetRequest,
    FieldCondition,
    Filter,
    Fusion,
    HasIdCondition,
    MatchAny,
    MatchValue,
    OrderBy,
    Point,
    Prefetch,
    QuantizationSearchParams,
    Query,
    QueryBatchRequest,
    QueryRequest,
    RangeFloat,
    ScrollRequest,
    SearchParams,
    SparseVector,
    UpdateOperation,
)

from clarity.config import IndexParams
from clarity.store.base import (
    DENSE,
    LEXICAL,
    SORT_KEYS,
    Hit,
    MemoryFilter,
    PointData,
    SearchMode,
    SortOrder,
    Sparse,
    StoreLocked,
    rrf_term,
)
from clarity.store.durable import write_atomically
from clarity.store.edge_build import Quantization, builder_command, ensure_payload_indexes, shard_config
from clarity.store.edge_manifest import (
    SHARD_PREFIX,
    VERSION,
    Manifest,
    StoreDamaged,
    missing_shard,
    read_manifest,
)
from clarity.store.pending_touches import PendingTouches
from clarity.store.space import SpaceGuard, build_room, copy_sparse

log = logging.getLogger(__name__)

RETIRE_GRACE_SECONDS = 2.0
BUILD_RETRY_SECONDS = 60.0  # a failed build or seal is tried again after this, not at every write
# A purge starts at the latest this many purge delays after the first delete waiting for it, so a
# steady trickle of deletes (one every 20 s against a 30 s delay) cannot put it off for ever.
PURGE_DEADLINE_FACTOR = 10
PURGE_RECHECK_SECONDS = 1.0  # a due purge that a running build holds up is looked at again after this
QUARANTINE = "quarantine"  # where a start moves directories the manifest does not name
# int8 candidates per result that the float32 originals rescore. At 95k points and ef 64: no
# rescoring found 0.96 of the exact top 10; 1x 0.99; 2x 0.996, at 0.33 ms a dense query against
# 0.57 ms on the originals alone. A hybrid search asks each shard for its dense top 50 (the fusion
# depth), where 2x walked with ef 100 and rescored 100: 1.5x kept recall@50 at 0.999 and recall@10
# at 0.9997, 0.08 ms sooner (docs/benchmarks.md, sixth round).
RESCORE_OVERSAMPLING = 1.5


def edge_filter(flt: MemoryFilter | None, exclude: AbstractSet[str] | None = None) -> Filter | None:
    if flt is None and not exclude:
        return None
    must: list[Any] = []
    must_not: list[Any] = []
    if flt is not None:
        if flt.scopes:
            must.append(FieldCondition(key="scope", match=MatchAny(list(flt.scopes))))
        if flt.memory_types:
            must.append(FieldCondition(key="memory_type", match=MatchAny(list(flt.memory_types))))
        if flt.tags:
            must.append(FieldCondition(key="tags", match=MatchAny(list(flt.tags))))
        if isinstance(flt.content_hash, list):
            must.append(FieldCondition(key="content_hash", match=MatchAny(flt.content_hash)))
        elif flt.content_hash:
            must.append(FieldCondition(key="content_hash", match=MatchValue(flt.content_hash)))
        if flt.created_from is not None or flt.created_to is not None:
            must.append(
                FieldCondition(key="created_at", range=RangeFloat(gte=flt.created_from, lte=flt.created_to))
            )
        if flt.sources:
            must.append(FieldCondition(key="source", match=MatchAny(list(flt.sources))))
        if flt.importance_min is not None or flt.importance_max is not None:
            must.append(
                FieldCondition(
                    key="importance", range=RangeFloat(gte=flt.importance_min, lte=flt.importance_max)
                )
            )
        if flt.pending_vector:
            must.append(FieldCondition(key="vector_state", match=MatchValue("pending")))
        if flt.exclude_ids:
            must_not.append(HasIdCondition(set(flt.exclude_ids)))
    if exclude:
        must_not.append(HasIdCondition(set(exclude)))
    if not must and not must_not:
        return None
    return Filter(must=must or None, must_not=must_not or None)


def live_shards(directory: Path) -> set[str] | None:
    """The shard directories the manifest in ``directory`` lists, or None without a valid one.
    Disk accounting counts only these: retired shards linger for a grace period after a swap, and
    counted next to the segment merged from them they would look like twice the data."""
    try:
        manifest = read_manifest(directory / "manifest.json")
    except StoreDamaged:
        return None
    return set(manifest.live) if manifest is not None else None


def build_copies(name: str) -> tuple[str, str]:
    """The scratch directories of the build whose result is the shard ``name`` (``_build``): the
    shard being built, and the copies of the shards it reads. Named after a reserved name, so a
    start knows them as the engine's own (``_settle_directory``)."""
    return f"build-{name}", f"build-{name}-sources"


def _ids(ids: Iterable[str]) -> list[Any]:
    """The stubs want list[int | UUID | str]; our ids are always UUID strings."""
    return list(ids)


def _dense(record: Any) -> list[float] | None:
    vector = record.vector
    return vector.get(DENSE) if isinstance(vector, dict) else None


def _hit(point: Any) -> Hit:
    return Hit(str(point.id), float(getattr(point, "score", 0.0) or 0.0), point.payload or {})


def fuse_shard_answers(
    dense_points: Sequence[Any],
    lexical_rankings: Sequence[Sequence[Any]],
    mode: SearchMode,
    k: int,
    depth: int,
    limit: int,
    lexical_weight: float,
) -> list[tuple[Any, float, float | None]]:
    """(id, score, cosine) best first, from every shard's ScoredPoints; ``tests/test_fusion.py`` pins it to
    the plain formulation of the same formulas.

    Dense scores are cosines, comparable across shards, so the dense ranking is one merge by
    score. BM25 with IDF is computed against each shard's own statistics, so raw lexical scores of
    a small shard and a big one do not compare: their rankings are interleaved by rank (RRF). A
    point that two shards return (a crash can leave two copies until the next start reconciles)
    counts once, at its best place, in both; for the few milliseconds an update of a memory has
    its new copy in the active shard and the old one not yet deleted, the cosine may be the old
    copy's while the payload is the new one's. Ids stay the engine's own objects, and are read only
    for points that can still matter: each ``.id`` makes the binding build a ``uuid.UUID``
    (~1 us), which cost more than the fusion arithmetic. The cosine, for points in the dense
    ranking (None for the others), spares the caller a vector fetch to tell how close a result is.
    """
    dense: list[tuple[Any, float]] = []
    seen: set[Any] = set()
    for point in sorted(dense_points, key=attrgetter("score"), reverse=True):
        point_id = point.id
        if point_id not in seen:
            seen.add(point_id)
            dense.append((point_id, point.score))
            if len(dense) == depth:
                break
    if mode == "dense":
        return [(point_id, cosine, cosine) for point_id, cosine in dense[:limit]]
    lexical: list[tuple[Any, float]] = []
    taken: set[Any] = set()
    for rank in range(max(map(len, lexical_rankings), default=0)):
        term = rrf_term(rank, k)
        for ranking in lexical_rankings:
            if rank < len(ranking) and len(lexical) < depth:
                point_id = ranking[rank].id
                if point_id not in taken:
                    taken.add(point_id)
                    lexical.append((point_id, term))
        if len(lexical) == depth:
            break
    if mode == "lexical":
        return [(point_id, score, None) for point_id, score in lexical[:limit]]
    fused = {point_id: rrf_term(rank, k) for rank, (point_id, _) in enumerate(dense)}
    for rank, (point_id, _) in enumerate(lexical):
        fused[point_id] = fused.get(point_id, 0.0) + rrf_term(rank, k, lexical_weight)
    cosines = dict(dense)
    best = sorted(fused.items(), key=itemgetter(1), reverse=True)[:limit]
    return [(point_id, score, cosines.get(point_id)) for point_id, score in best]


class _Shard:
    """One Edge shard directory and the handle that owns it."""

    def __init__(self, name: str, path: Path, handle: EdgeShard) -> None:
        self.name = name
        self.path = path
        self.handle = handle


@dataclass(frozen=True)
class _View:
    """What readers see, swapped as a whole: a reader takes one view and never a half-changed layout."""

    shards: tuple[_Shard, ...]  # active first, so the newest copy of a point wins
    frozen: frozenset[str]  # names of the shards a build is reading: the sealing one and merging ones
    tombstones: frozenset[str]

    def exclude(self, shard: _Shard) -> frozenset[str] | None:
        return self.tombstones if self.tombstones and shard.name in self.frozen else None


class EdgeStore:
    engine = "embedded"

    def __init__(
        self,
        directory: Path,
        dimension: int,
        index_params: IndexParams,
        active_max_points: int = 5_000,
        hnsw_ef: int = 64,
        segment_max_points: int = 200_000,
        build_in_background: bool = True,
        quantization: Quantization = "int8",
        min_free_bytes: int = 0,
        purge_delay_seconds: float = 30.0,
    ) -> None:
        self.directory = directory
        self.location = str(directory)
        self.dimension = dimension
        self._index = index_params
        self._active_max = active_max_points
        self._segment_max = segment_max_points
        self._hnsw_ef = hnsw_ef
        self._quantization: Quantization = quantization
        self._build_in_background = build_in_background
        self._write_lock = threading.RLock()
        self._build_thread: threading.Thread | None = None
        self._build_proc: subprocess.Popen[str] | None = None
        self._build_state = "idle"
        self._build_error: str | None = None
        self._last_build_seconds: float | None = None
        self._builds_started = 0
        self._seal_failed_at: float | None = None  # a seal that could not make its new shard
        self._closed = False
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.space = SpaceGuard(directory, min_free_bytes)  # every write checks it (space.py)
        self._manifest_path = directory / "manifest.json"
        manifest = self._read_manifest()
        self._next = manifest.next if manifest else 1
        self._tombstones: set[str] = set(manifest.tombstones) if manifest else set()
        # Shards whose files may still hold text of deleted memories, until a build rewrites them
        # ("purge" below); retired shards whose directories are still on disk; names handed out
        # for a shard not yet in the layout. All three are in the manifest, so a crash loses none.
        self._dirty: set[str] = set(manifest.dirty) if manifest else set()
        self._retired: set[str] = set()
        self._reserved: set[str] = set()
        self._quarantined: Path | None = None
        # Use counts of memories outside the active shard: written in place, each would move its
        # point out of the HNSW index (pending_touches.py). Folded in by the segment's next build.
        self._pending = PendingTouches(directory / "touches.jsonl")
        # Counts a finished build wrote into its points, left in the log until the retired shards'
        # grace period ends: no reason for another build.
        self._folded: frozenset[str] = frozenset()
        self._failed_at = 0.0
        # The debounced purge (module docstring): when the oldest and the newest delete waiting
        # for it came, and the thread that starts it once they are far enough behind.
        self._purge_delay = purge_delay_seconds
        self._purge_first: float | None = None
        self._purge_last = 0.0
        self._purge_wake = threading.Event()
        self._purge_thread: threading.Thread | None = None
        self._settle_directory(manifest)
        if manifest is not None:  # what could not be removed stays listed, for the next start
            self._retired = {name for name in manifest.retired if (directory / name).exists()}
            self._reserved = {
                name
                for name in manifest.reserved
                if any((directory / entry).exists() for entry in (name, *build_copies(name)))
            }
        self._open_layout(manifest)
        self._save_manifest()
        self._publish()
        self._reconcile()
        if self._dirty:  # deletes from before this start have waited long enough: purge now
            self._purge_first = self._purge_last = (
                time.monotonic() - PURGE_DEADLINE_FACTOR * self._purge_delay
            )
        if self._frozen():
            self._start_build()  # a build that a stop or crash interrupted
        else:
            self._housekeep()  # the threshold may have been lowered since the last run
        if self._dirty:
            self._wake_purge()  # if a build held the purge up, its end starts it; this is the backstop

    # -- directory and manifest -------------------------------------------------------------

    def _read_manifest(self) -> Manifest | None:
        """The validated manifest (edge_manifest.py), after checking that every shard it names is
        there: a missing one stops the start (StoreDamaged) instead of coming back empty."""
        manifest = read_manifest(self._manifest_path)
        if manifest is None:
            if any(entry.name.startswith(SHARD_PREFIX) for entry in self.directory.iterdir()):
                raise StoreDamaged(
                    f"{self._manifest_path} is missing but shard directories exist; refusing to guess which "
                    "hold live data: restore it from a backup, or move the directory away to start empty"
                )
            return None
        if manifest.dimension != self.dimension:
            raise StoreDamaged(
                f"{self._manifest_path}: the store holds {manifest.dimension}-dimension vectors but "
                f"embedding.dimension is {self.dimension}. Nothing was changed; configure the model "
                "the store was made with, or export the memories and import them into a new store"
            )
        roles = [
            (manifest.active, "active"),
            *([(manifest.sealing, "sealing")] if manifest.sealing else []),
            *((name, "segment") for name in manifest.segments),
        ]
        for name, role in roles:
            if not (self.directory / name / "edge_config.json").is_file():
                raise missing_shard(self._manifest_path, self.directory / name, role)
        return manifest

    def _open_layout(self, manifest: Manifest | None) -> None:
        """Open the shards the manifest names (a new empty active shard for a new store). If one
        fails to open, the ones already open are closed again: they hold locks."""
        opened: list[_Shard] = []

        def load(name: str) -> _Shard:
            opened.append(self._open(name))
            return opened[-1]

        try:
            if manifest is None:
                self.active = self._open(self._new_name(), create=True)
                self.sealing, self.segments, self.merging = None, [], []
                return
            self.active = load(manifest.active)
            self.sealing = load(manifest.sealing) if manifest.sealing else None
            self.segments = [load(name) for name in manifest.segments]
            self.merging = [shard for shard in self.segments if shard.name in set(manifest.merging)]
        except BaseException:
            for shard in opened:
                shard.handle.close()
            raise

    def _save_manifest(self) -> None:
        """Written from the in-memory layout, never read back while running. The lists that must
        name shards in use, or must not, are cut to what holds: a manifest that fails validation
        would stop the next start."""
        live = {
            self.active.name,
            *([self.sealing.name] if self.sealing else []),
            *(s.name for s in self.segments),
        }
        manifest = Manifest.model_construct(
            version=VERSION,
            next=self._next,
            active=self.active.name,
            sealing=self.sealing.name if self.sealing else None,
            segments=[shard.name for shard in self.segments],
            merging=[shard.name for shard in self.merging],
            tombstones=sorted(self._tombstones),
            dimension=self.dimension,
            retired=sorted(self._retired - live),
            reserved=sorted(self._reserved - live),
            dirty=sorted(self._dirty & live),
        )
        write_atomically(self._manifest_path, manifest.model_dump_json())

    def _publish(self) -> None:
        """Called under the write lock after every change of layout or tombstones."""
        shards = [self.active, *([self.sealing] if self.sealing else []), *self.segments]
        frozen = frozenset(shard.name for shard in self._frozen())
        self._view = _View(tuple(shards), frozen, frozenset(self._tombstones))

    def _frozen(self) -> list[_Shard]:
        """What the running (or interrupted) build reads, oldest first: a point written twice is
        upserted last from its newest copy."""
        return [*self.merging, *([self.sealing] if self.sealing else [])]

    def _mutable(self) -> list[_Shard]:
        """Shards that take deletes and payload updates in place."""
        return [self.active, *(shard for shard in self.segments if shard not in self.merging)]

    def _reconcile(self) -> None:
        """A crash between writing a point's new copy and retiring its old one leaves two copies;
        the one in the active shard is the newer, so older shards drop theirs."""
        if not self._frozen() and not self.segments:
            return
        total = self.active.handle.count(CountRequest(exact=True))
        if total:
            records, _ = self.active.handle.scroll(ScrollRequest(limit=total, with_payload=False))
            with self._write_lock:
                self._remove_from_older([str(r.id) for r in records])

    def _settle_directory(self, manifest: Manifest | None) -> None:
        """Before any shard opens: remove what the engine itself left half-done, and move aside
        every other directory the manifest does not name.

        Removed, by exact name only: shards a swap retired (``retired``), names reserved for a
        shard that never joined the layout (``reserved``: a build's result or a new active shard
        a crash left before the manifest took it in), and the scratch copies of a build whose
        result's name is reserved (``build_copies``), which copy shards that stay listed until
        the swap. A name that merely looks like one of these was not recorded, so it is not the
        engine's to judge: like anything else it goes to ``quarantine/<time>/``, with a warning
        saying what to do. Files are left alone."""
        live = set(manifest.live) if manifest else set()
        own = set(manifest.retired + manifest.reserved) if manifest else set()
        own |= {copy for name in (manifest.reserved if manifest else []) for copy in build_copies(name)}
        strangers = []
        for entry in sorted(self.directory.iterdir()):
            if entry.name in live or entry.name == QUARANTINE or not entry.is_dir():
                continue
            if not entry.is_symlink() and entry.name in own:
                shutil.rmtree(entry, ignore_errors=True)
            else:
                strangers.append(entry)
        if strangers:
            self._quarantine(strangers)

    def _quarantine(self, entries: list[Path]) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.directory / QUARANTINE / stamp
        suffix = 0
        while target.exists():
            suffix += 1
            target = self.directory / QUARANTINE / f"{stamp}-{suffix}"
        target.mkdir(parents=True, mode=0o700)
        for entry in entries:
            os.replace(entry, target / entry.name)
        self._quarantined = target
        log.warning(
            "moved %s into %s: %s does not name them, so they are not part of the store (a shard left "
            "by an older version or another copy, or files put there by hand). Nothing was deleted. If "
            "one holds memories you need, stop Clarity and restore a backup; otherwise delete %s",
            ", ".join(entry.name for entry in entries),
            target,
            self._manifest_path,
            target,
        )

    def _new_name(self) -> str:
        name = f"{SHARD_PREFIX}{self._next:05d}"
        self._next += 1
        return name

    def _fresh_shard(self) -> _Shard:
        """A new empty shard under a reserved name (``_reserve_name``); the caller adopts it."""
        return self._open(self._reserve_name(), create=True)

    def _config(self) -> EdgeConfig:
        index = self._index
        return shard_config(
            self.dimension,
            index.m,
            index.ef_construct,
            index.full_scan_threshold,
            quantization=self._quantization,
        )

    def _open(self, name: str, create: bool = False) -> _Shard:
        """A shard that exists (``_read_manifest`` checked it), or a new one: never a new empty
        shard in place of one that went missing."""
        path = self.directory / name
        try:
            if create:
                handle = EdgeShard.create(str(path), self._config())
            else:
                # The current config, so a shard made by an older version adopts its settings
                # (max_search_threads). What it leaves unset, such as a sealed segment's
                # optimizer settings, is kept from the shard; its vectors must match.
                handle = EdgeShard.load(str(path), self._config())
            # Shards made by an older version may lack an index added since; create what is missing.
            ensure_payload_indexes(handle)
        except Exception as exc:
            if "WouldBlock" in str(exc) or "lock" in str(exc).lower():
                raise StoreLocked(
                    f"storage {path} is held by another process (another Clarity daemon?): {exc}"
                ) from exc
            raise
        return _Shard(name, path, handle)

    # -- writes -------------------------------------------------------------------------------

    def upsert(self, points: Sequence[PointData], replaces_existing: bool = False) -> None:
        if not points:
            return
        self.space.check("store")
        with self._write_lock:
            if len(self._pending):
                # Under the lock, with the drop below: a touch landing in between would be lost.
                points = [self._keep_counts(p) for p in points]
            edge_points = [
                Point(
                    p.id,
                    {DENSE: p.dense, LEXICAL: SparseVector(p.sparse[0], p.sparse[1])}
                    if p.dense is not None
                    else {LEXICAL: SparseVector(p.sparse[0], p.sparse[1])},
                    p.payload,
                )
                for p in points
            ]
            # New copy first, old copies after: a crash in between leaves a duplicate that
            # _reconcile settles at the next start, never a memory with no copy at all.
            self.active.handle.update(UpdateOperation.upsert_points(edge_points))
            if replaces_existing:
                self._remove_from_older([p.id for p in points])
            if len(self._pending):
                self._pending.drop(p.id for p in points)  # the new copy carries them (_keep_counts)
        self._housekeep()

    def _keep_counts(self, point: PointData) -> PointData:
        """A memory written anew (an edit, an import) keeps waiting use counts that are higher
        than its new payload's: a use recorded between the writer's read and its write must not
        be lost, and counts never go backwards."""
        pending = self._pending.get(point.id)
        if not pending:
            return point
        kept = {k: v for k, v in pending.items() if (point.payload.get(k) or 0) < (v or 0)}
        return replace(point, payload={**point.payload, **kept}) if kept else point

    def _remove_from_older(self, ids: list[str]) -> None:
        for shard in self._mutable()[1:]:
            shard.handle.update(UpdateOperation.delete_points(_ids(ids)))
        self._tombstone_frozen(ids)

    def _tombstone_frozen(self, ids: list[str]) -> None:
        """Frozen shards are immutable while a build copies them: what they hold of ``ids`` is
        hidden from reads and left out of (or deleted from) the build's result."""
        present = {
            str(r.id)
            for shard in self._frozen()
            for r in shard.handle.retrieve(_ids(ids), with_payload=False, with_vector=False)
        }
        if present - self._tombstones:
            self._tombstones |= present
            self._save_manifest()
            self._publish()

    def delete(self, ids: Sequence[str]) -> None:
        """Delete, then purge: a deleted point's text stays in its shard's WAL and payload pages,
        so every shard that held one is marked dirty and rebuilt without it by a build that
        starts once deletes pause (``_purge_due_in``); see ``info()["purge_pending"]``."""
        self.space.check("delete")
        ids = list(ids)
        with self._write_lock:
            held = set()
            for shard in self._mutable():
                found = shard.handle.retrieve(_ids(ids), with_payload=False, with_vector=False)
                if found:
                    shard.handle.update(UpdateOperation.delete_points([record.id for record in found]))
                    held.add(shard.name)
            self._tombstone_frozen(ids)  # purged by the running build, or after it (late tombstones)
            self._pending.drop(ids)
            if held:
                self._note_delete()
            if held - self._dirty:
                self._dirty |= held
                self._save_manifest()
        self._housekeep()

    def set_payload(self, point_id: str, payload: dict[str, Any]) -> None:
        """An edit (importance, tags) rewrites the point anyway: waiting use counts go with it."""
        self.space.check("update")
        with self._write_lock:
            merged_update = {**(self._pending.get(point_id) or {}), **payload}
            if not self._apply_in_place({point_id: merged_update}):
                self._pending.drop([point_id])
                return
            if point_id in self._tombstones:
                return
            for shard in self._frozen():
                # A frozen shard is immutable: move the point to the active shard instead.
                records = shard.handle.retrieve(_ids([point_id]), with_payload=True, with_vector=True)
                vector = records[0].vector if records else None
                if vector is not None:
                    merged = {**(records[0].payload or {}), **merged_update}
                    self.active.handle.update(
                        UpdateOperation.upsert_points([Point(point_id, vector, merged)])
                    )
                    self._pending.drop([point_id])
                    self._tombstones.add(point_id)
                    self._save_manifest()
                    self._publish()
                    return

    def touch(self, updates: dict[str, dict[str, Any]]) -> set[str]:
        """Bookkeeping updates, applied in small batches so searches keep getting the GIL.

        Only the active shard takes them in place. Elsewhere they wait in ``touches.jsonl`` for
        the next build of their segment (pending_touches.py): written into an indexed segment,
        each would move its point out of the HNSW index.
        """
        if not self.space.has_room():
            return set(updates)  # kept in memory by the access tracker until space returns
        items = list(updates.items())
        for start in range(0, len(items), 64):
            chunk = dict(items[start : start + 64])
            with self._write_lock:
                elsewhere = self._apply_in_place(chunk, [self.active])
                self._pending.add({point_id: chunk[point_id] for point_id in elsewhere})
            time.sleep(0)  # let a waiting request thread run between batches
        self._housekeep()  # enough of them waiting: fold them in (_fold_candidate)
        return set()

    def _apply_in_place(
        self, updates: dict[str, dict[str, Any]], shards: Sequence[_Shard] | None = None
    ) -> set[str]:
        """Set each payload on its point in ``shards`` (default: every mutable one); returns the
        ids found in none of them."""
        remaining = set(updates)
        for shard in self._mutable() if shards is None else shards:
            if not remaining:
                break
            found = shard.handle.retrieve(_ids(remaining), with_payload=False, with_vector=False)
            for record in found:
                point_id = str(record.id)
                shard.handle.update(UpdateOperation.set_payload([point_id], updates[point_id]))
                remaining.discard(point_id)
        return remaining

    def flush(self) -> None:
        with self._write_lock:
            for shard in self._view.shards:
                shard.handle.flush()

    def snapshot(self, destination: Path) -> None:
        """A consistent copy of the live shards and the manifest, for backups.

        Taken under the write lock after a flush: no write lands half-way, and a build's swap
        (which also takes the lock) cannot retire a shard while it is being copied. Readers are
        not blocked; writers wait for the copy, about a second per 100k memories here.
        """
        destination.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._write_lock:
            for shard in self._view.shards:
                shard.handle.flush()
                shutil.copytree(shard.path, destination / shard.name, copy_function=copy_sparse)
            shutil.copy2(self._manifest_path, destination / self._manifest_path.name)
            if self._pending.path.exists():
                shutil.copy2(self._pending.path, destination / self._pending.path.name)

    # -- purge scheduling ---------------------------------------------------------------------

    def _note_delete(self) -> None:
        """Under the write lock, before a delete marks shards dirty (or a build's result takes
        in the deletes that came during the build): it puts the purge build off until deletes
        pause. The first delete with no shard waiting starts the deadline."""
        now = time.monotonic()
        if self._purge_first is None or not self._dirty - {shard.name for shard in self._frozen()}:
            self._purge_first = now
        self._purge_last = now
        self._wake_purge()

    def _purge_due_in(self) -> float | None:
        """Seconds until the shards holding deleted text are to be rebuilt (0: due now), or None
        when no shard is waiting for that (those a running build reads are purged by it)."""
        waiting = self._dirty - {shard.name for shard in self._frozen()}
        if not waiting:
            return None
        first = self._purge_first
        if first is None:  # dirty without a recorded delete: never leave deleted text waiting
            return 0.0
        due = min(self._purge_last + self._purge_delay, first + PURGE_DEADLINE_FACTOR * self._purge_delay)
        return max(0.0, due - time.monotonic())

    def _wake_purge(self) -> None:
        """Have the purge timer look at the schedule again, starting it on first use."""
        with self._write_lock:
            if self._purge_thread is None:
                self._purge_thread = threading.Thread(
                    target=self._purge_timer, name="clarity-purge", daemon=True
                )
                self._purge_thread.start()
        self._purge_wake.set()

    def _purge_timer(self) -> None:
        """Starts the purge build once it is due. While a build runs, that build's end starts
        it (``_build`` ends with ``_housekeep``); the timer only looks again now and then."""
        while not self._closed:
            self._purge_wake.clear()
            with self._write_lock:
                due_in = self._purge_due_in()
            if due_in is None:
                self._purge_wake.wait()  # nothing waits for a purge: a delete wakes the timer
            elif due_in > 0:
                self._purge_wake.wait(due_in)
            else:
                self._housekeep()
                if self._purge_due_in() == 0:  # held up by a build, the disk floor or a failed seal
                    self._purge_wake.wait(PURGE_RECHECK_SECONDS)

    # -- index building -------------------------------------------------------------------------

    def _housekeep(self) -> None:
        """``_maybe_seal`` after a write, or from the purge timer. The write is done and in the
        WAL by then, so a seal that fails here (its new shard or the manifest cannot be written:
        a full disk, an I/O error) must not answer the write with an error: the layout is left
        as it was (``_freeze``), the failure is logged and shown in ``info()``, and the seal is
        tried again after ``BUILD_RETRY_SECONDS``."""
        try:
            self._maybe_seal()
        except Exception as exc:
            self._seal_failed(exc)

    def _seal_failed(self, exc: Exception) -> None:
        """Shown in ``info()``; a build already running is left to report its own end."""
        self._seal_failed_at = time.monotonic()
        self._build_error = f"seal: {exc}"
        if not (self._build_thread is not None and self._build_thread.is_alive()):
            self._build_state = "failed"  # retried after BUILD_RETRY_SECONDS, frozen shards or not
            self._failed_at = self._seal_failed_at
        log.error(
            "could not seal the active shard or start an index build (%s); the layout is unchanged and "
            "writes go on into the current active shard; tried again in %.0fs",
            exc,
            BUILD_RETRY_SECONDS,
        )

    def _seal_backing_off(self) -> bool:
        failed = self._seal_failed_at
        return failed is not None and time.monotonic() - failed < BUILD_RETRY_SECONDS

    def _maybe_seal(self) -> None:
        """Seal a full active shard, merging small segments into its build; with no seal due,
        still merge segments that fit together (a store written by an older version, or one
        whose cap was raised). Shards holding deleted text (``_dirty``) are rebuilt once their
        purge is due (``_purge_due_in``): then a dirty active shard is sealed whatever its size,
        and dirty segments join the merge, as many as fit in one segment."""
        if self._closed or not self.space.has_room():
            return  # a seal creates a shard and starts a build: both need room (space.py)
        if self._frozen():
            with self._write_lock:  # decided under the lock: two writers must not start two builds
                retry = (
                    self._build_state == "failed"
                    and not (self._build_thread is not None and self._build_thread.is_alive())
                    and time.monotonic() - self._failed_at > BUILD_RETRY_SECONDS
                )
                if retry:
                    self._build_state = "building"
            if retry:
                self._start_build()  # retry a failed build now and then rather than never
            else:
                self._set_aside_if_full()
            return
        if self._seal_backing_off():
            return
        purge = self._purge_due_in() == 0
        active_points = self.active.handle.count(CountRequest(exact=False))
        seal = active_points >= self._active_max or (purge and self.active.name in self._dirty)
        if (
            not seal
            and not purge
            and len(self._merge_candidates(0)) < 2
            and len(self._pending) < self._active_max
        ):
            return
        with self._write_lock:
            if self._frozen():
                return
            purge = self._purge_due_in() == 0
            active_points = self.active.handle.count(CountRequest(exact=True))
            seal = active_points >= self._active_max or (purge and self.active.name in self._dirty)
            dirty = [shard for shard in self.segments if shard.name in self._dirty] if purge else []
            merging = self._merge_candidates(active_points if seal else 0, dirty)
            if not seal and len(merging) < 2 and not dirty:
                merging = self._fold_candidate()
                if not merging:
                    return
            self._freeze(merging, seal)
        self._start_build()

    def _freeze(self, merging: list[_Shard], seal: bool) -> None:
        """Freeze ``merging`` (and, with ``seal``, the active shard) for a build. The new active
        shard is made first and the roles change only after, all at once, and are undone if the
        manifest cannot be written: a failure at any step leaves the layout as it was, never
        one shard both active and sealing (which the next start would refuse)."""
        fresh = self._fresh_shard() if seal else None  # may fail: nothing has changed yet
        for shard in merging:
            shard.handle.flush()  # its files are copied while frozen
        before = (self.active, self.sealing, self.merging, self._build_state)
        try:
            if fresh is not None:
                self._hand_over_counts()
                self.active.handle.flush()
                self.sealing, self.active = self.active, self._adopt(fresh)
            self.merging = merging
            self._build_state = "building"
            self._save_manifest()
        except BaseException:
            self.active, self.sealing, self.merging, self._build_state = before
            if fresh is not None:
                self._abandon(fresh)
            raise
        self._seal_failed_at = None
        if not self._dirty - {shard.name for shard in self._frozen()}:
            self._purge_first = None  # this build purges every shard waiting for it
        self._publish()

    def _abandon(self, shard: _Shard) -> None:
        """A fresh shard that could not join the layout. Its directory stays, under its reserved
        name: the manifest on disk may already name it (a write that failed only at its fsync),
        and if not, the next start removes it as a reserved leftover."""
        shard.handle.close()
        self._reserved.add(shard.name)

    def _set_aside_if_full(self) -> None:
        """While a build runs, a full active shard joins the segments as it is (brute force,
        taking deletes and updates in place) and a new active shard takes the writes.

        Without this, a build that never finished (starved of CPU by a busy daemon, or started
        from scratch by each restart after a kill) let every write pile into one brute-force
        shard: 6,959 points against a limit of 100 after repeated ``kill -9``. A set-aside shard
        costs a search what the active shard costs; the next build merges it into an indexed
        segment (``_merge_candidates`` takes the smallest segments first). As in ``_freeze``,
        the new shard is made before any role changes."""
        if self._seal_backing_off() or self.active.handle.count(CountRequest(exact=False)) < self._active_max:
            return
        with self._write_lock:
            if not self._frozen() or self.active.handle.count(CountRequest(exact=True)) < self._active_max:
                return  # a build that just finished seals it (its last step is _maybe_seal)
            fresh = self._fresh_shard()  # may fail: nothing has changed yet
            full = self.active
            self._hand_over_counts()
            full.handle.flush()
            try:
                self.segments.append(full)
                self.active = self._adopt(fresh)
                self._save_manifest()
            except BaseException:
                self.segments.remove(full)
                self.active = full
                self._abandon(fresh)
                raise
            self._seal_failed_at = None
            self._publish()
        log.info("%s set aside unindexed while an index build runs; the next build merges it", full.name)

    def _hand_over_counts(self) -> None:
        """Before the active shard stops taking use counts in place: an entry left in the log for
        one of its points (a crash between a rewrite and its drop) would otherwise be laid over
        the counts the point holds."""
        held = self.active.handle.retrieve(_ids(self._pending.ids()), with_payload=False, with_vector=False)
        self._pending.drop(str(record.id) for record in held)

    def _adopt(self, shard: _Shard) -> _Shard:
        """A reserved shard joins the layout; the caller saves the manifest."""
        self._reserved.discard(shard.name)
        return shard

    def _fold_candidate(self) -> list[_Shard]:
        """With as many use counts waiting as an active shard holds points, the segment holding
        most of them, to be rebuilt on its own with them written in (so the waiting log stays
        small). Entries whose memory is in no segment any more are dropped on the way."""
        if len(self._pending) < self._active_max:
            return []
        ids = [point_id for point_id in self._pending.ids() if point_id not in self._folded]
        if len(ids) < self._active_max:
            return []
        held: dict[str, set[str]] = {}
        for shard in self.segments:
            found = shard.handle.retrieve(_ids(ids), with_payload=False, with_vector=False)
            held[shard.name] = {str(record.id) for record in found}
        stale = set(ids).difference(*held.values())
        self._pending.drop(stale)
        if len(ids) - len(stale) < self._active_max:
            return []
        busiest = max(self.segments, key=lambda shard: len(held[shard.name]))
        return [busiest]

    def _merge_candidates(self, incoming: int, must: Sequence[_Shard] = ()) -> list[_Shard]:
        """The smallest segments whose points, with ``incoming``, fit in one segment of
        ``segment_max_points``; oldest first, as the build reads them. Segments to purge
        (``must``) go first, as many as fit and at least one: a purge does not wait for room."""
        sizes = {shard.name: shard.handle.count(CountRequest(exact=False)) for shard in self.segments}
        chosen: list[_Shard] = []
        total = incoming
        for shard in must:
            if not chosen or total + sizes[shard.name] <= self._segment_max:
                chosen.append(shard)
                total += sizes[shard.name]
        for shard in sorted(self.segments, key=lambda s: sizes[s.name]):
            if shard in chosen:
                continue
            if total + sizes[shard.name] > self._segment_max:
                break
            chosen.append(shard)
            total += sizes[shard.name]
        return [shard for shard in self.segments if shard in chosen]

    def _start_build(self) -> None:
        if not self._build_in_background:
            self._build()
            return
        self._build_thread = threading.Thread(target=self._build, name="clarity-index-build", daemon=True)
        self._build_thread.start()

    def _build(self) -> None:
        frozen = self._frozen()
        if not frozen:
            return
        self._build_state = "building"
        self._builds_started += 1
        started = time.perf_counter()
        target: Path | None = None
        with self._write_lock:
            folding = self._pending.snapshot()  # written into the points before the index is built
            deleted = sorted(self._tombstones)  # never copied into the result
        try:
            # Inside the try: a name that cannot be recorded (the manifest write fails on a full
            # disk) fails this build, which is retried, rather than ending the thread with the
            # state stuck at "building" and nothing to retry it.
            target = self.directory / self._reserve_name()
            staging, sources = (self.directory / name for name in build_copies(target.name))
            for leftover in (staging, sources):
                shutil.rmtree(leftover, ignore_errors=True)
            sources.mkdir(mode=0o700)
            payloads = sources / "payloads.json"
            payloads.write_text(json.dumps(folding), encoding="utf-8")
            skip = sources / "skip.json"
            skip.write_text(json.dumps(deleted), encoding="utf-8")
            # Frozen shards are immutable, so copying their files without a lock is safe. The
            # child upserts their points into a new shard rather than building on a copy of one:
            # a shard's WAL and payload pages keep the text of points deleted from it.
            # Room for the copies and the index built from them, above the floor.
            self.space.check("index build", needed=build_room([shard.path for shard in frozen]))
            for shard in frozen:
                shutil.copytree(shard.path, sources / shard.name, copy_function=copy_sparse)
            command = builder_command(
                [
                    str(staging),
                    str(self.dimension),
                    str(self._index.m),
                    str(self._index.ef_construct),
                    str(self._index.full_scan_threshold),
                    self._quantization,
                    *(str(sources / shard.name) for shard in frozen),
                    *(["--payloads", str(payloads)] if folding else []),
                    *(["--skip", str(skip)] if deleted else []),
                ]
            )
            # The child is this build's own (a local): ``_build_proc`` is only what close() kills.
            # Started from this thread, which waits for it: its death signal (edge_build.py)
            # follows this thread's end, so no other thread may start it.
            proc = self._build_proc = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            _, stderr = proc.communicate()
            shutil.rmtree(sources, ignore_errors=True)
            if proc.returncode != 0:
                raise RuntimeError(f"index build exited {proc.returncode}: {stderr.strip()[-500:]}")
            if self._closed:
                return
            os.replace(staging, target)
            built = _Shard(target.name, target, EdgeShard.load(str(target)))
            with self._write_lock:
                if self._closed:  # closed while loading: the next start rebuilds from the manifest
                    built.handle.close()
                    return
                if [shard.name for shard in self._frozen()] != [shard.name for shard in frozen]:
                    # Another build already swapped this set in: a second copy would duplicate
                    # every point and bring back what its tombstones had deleted.
                    built.handle.close()
                    shutil.rmtree(target, ignore_errors=True)
                    self._reserved.discard(target.name)
                    self._save_manifest()
                    return
                self._delete_late_tombstones(built)
                # A build of nothing but deleted points (a purge of an emptied shard) leaves
                # nothing worth a shard: it is retired along with what it replaced.
                retired = [*frozen, *([] if built.handle.count(CountRequest(exact=True)) else [built])]
                self.segments = [shard for shard in self.segments if shard not in self.merging]
                self.segments += [built] if built not in retired else []
                self.sealing = None
                self.merging = []
                self._tombstones.clear()
                self._retired |= {shard.name for shard in retired}
                self._dirty -= {shard.name for shard in retired}
                self._reserved.discard(target.name)
                self._save_manifest()
                self._publish()
                written: list[str] = []
                if folding:
                    found = built.handle.retrieve(_ids(folding), with_payload=False, with_vector=False)
                    written = [str(record.id) for record in found]
                self._folded = frozenset(written)
                self._last_build_seconds = time.perf_counter() - started
                self._build_state = "idle"
                self._build_error = None
            # Readers that took the previous view may still be querying the retired shards for a
            # few milliseconds; give them time before their handles go away.
            time.sleep(RETIRE_GRACE_SECONDS)
            if written and not self._closed:
                with self._write_lock:
                    # Only now: until the grace ends a reader may still read a retired copy,
                    # which lacks these counts, and hand them on to the access tracker.
                    self._pending.release(folding, written)
                    self._folded = frozenset()
            self._remove_retired(retired)
            log.info(
                "index built for %s (%d shards merged) in %.1fs",
                target.name,
                len(frozen),
                self._last_build_seconds,
            )
        except Exception as exc:
            self._build_failed(target, exc)
            return
        self._housekeep()  # the active shard may have filled up meanwhile, or a purge come due

    def _build_failed(self, target: Path | None, exc: Exception) -> None:
        """The frozen shards stay searchable and frozen; ``_maybe_seal`` retries the build after
        ``BUILD_RETRY_SECONDS``. What the build made is removed, by its recorded name."""
        if self._closed:
            return  # the store was closed mid-build; the next start builds again
        self._build_state = "failed"
        self._failed_at = time.monotonic()
        self._build_error = str(exc)
        log.error("index build failed, the frozen shards stay searchable without it: %s", exc)
        if target is None:
            return  # no name was reserved, so nothing was made
        for copy in build_copies(target.name):
            shutil.rmtree(self.directory / copy, ignore_errors=True)
        try:
            with self._write_lock:
                if target.name in {shard.name for shard in self._view.shards}:
                    return  # swapped in: the failure came after, in the clean-up
                shutil.rmtree(target, ignore_errors=True)  # loaded after the rename, then failed
                made = (target.name, *build_copies(target.name))
                if not any((self.directory / name).exists() for name in made):
                    self._reserved.discard(target.name)  # else the next start removes what is left
                self._save_manifest()
        except OSError as cleanup:
            log.warning("clearing up after the failed index build: %s", cleanup)

    def _delete_late_tombstones(self, built: _Shard) -> None:
        """Deletes that reached the frozen shards after the child took its list of them: applied
        to the result, which then holds their text in its WAL and pages, so it is purged next."""
        if not self._tombstones:
            return
        found = built.handle.retrieve(_ids(self._tombstones), with_payload=False, with_vector=False)
        if found:
            built.handle.update(UpdateOperation.delete_points([record.id for record in found]))
            built.handle.flush()
            self._note_delete()
            self._dirty.add(built.name)

    def _remove_retired(self, retired: list[_Shard]) -> None:
        """Close and remove shards a swap retired, once the grace period is over; the manifest
        lists them until then, so a crash before this leaves the next start to remove them."""
        for shard in retired:
            shard.handle.close()
            shutil.rmtree(shard.path, ignore_errors=True)
        if self._closed:
            return  # the manifest is no longer ours to write: a new store may have opened it
        with self._write_lock:
            self._retired -= {shard.name for shard in retired if not shard.path.exists()}
            self._save_manifest()

    def _reserve_name(self) -> str:
        """A new shard name, recorded as reserved before its directory exists: a crash before
        the shard joins the layout leaves a directory the next start knows to remove."""
        with self._write_lock:
            name = self._new_name()
            self._reserved.add(name)
            self._save_manifest()
            return name

    def wait_for_index(self, timeout: float = 300.0) -> bool:
        """Wait for the running build and any build it chains (a seal or merge that became due
        meanwhile). A purge still waiting for deletes to pause is not waited for: see
        ``info()["purge_starts_in"]``."""
        deadline = time.monotonic() + timeout
        while (thread := self._build_thread) is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                return False
            if self._build_thread is thread:
                return True
        return True

    # -- reads --------------------------------------------------------------------------------

    def get(self, ids: Sequence[str], with_vectors: bool = False) -> list[Hit]:
        return self._get(self._view, ids, with_vectors)

    def _get(self, view: _View, ids: Sequence[str], with_vectors: bool = False) -> list[Hit]:
        wanted = list(ids)
        found: dict[str, Hit] = {}
        # Only the dense vector: every caller wants that one, and the lexical one costs a conversion.
        vectors: list[str] | bool = [DENSE] if with_vectors else False
        for shard in view.shards:
            missing = [i for i in wanted if i not in found]  # the newest shard's copy is the one
            if not missing:
                break
            exclude: AbstractSet[str] = view.exclude(shard) or frozenset()
            waiting = self._counts_may_wait(view, shard)
            for record in shard.handle.retrieve(_ids(missing), with_payload=True, with_vector=vectors):
                point_id = str(record.id)  # each .id builds a UUID: read it once
                if point_id in exclude or point_id in found:
                    continue
                dense = _dense(record) if with_vectors else None
                hit = Hit(point_id, 0.0, record.payload or {}, dense)
                found[point_id] = self._with_pending(hit) if waiting else hit
        return [found[i] for i in wanted if i in found]

    def _counts_may_wait(self, view: _View, shard: _Shard) -> bool:
        """Whether use counts of ``shard``'s points may wait in the log: never the active shard's,
        which takes them in place."""
        return shard is not view.shards[0] and len(self._pending) > 0

    def _with_pending(self, hit: Hit) -> Hit:
        """A point outside the active shard as it will read once its segment is rebuilt: the
        access tracker adds its next counts to what it reads, so waiting ones must show."""
        pending = self._pending.get(hit.id)
        return replace(hit, payload={**hit.payload, **pending}) if pending else hit

    def search(
        self,
        dense: list[float] | None,
        sparse: Sparse | None,
        flt: MemoryFilter,
        limit: int,
        mode: SearchMode = "hybrid",
        prefetch_limit: int = 50,
        rrf_k: int = 10,
        exact: bool = False,
        lexical_weight: float = 1.0,
    ) -> list[Hit]:
        params = self._search_params(limit, exact)
        view = self._view
        shards = view.shards
        if mode == "hybrid" and (dense is None or sparse is None):
            mode = "dense" if sparse is None else "lexical"
        if mode == "hybrid" and len(shards) == 1:
            return self._fused_single(
                view, shards[0], dense, sparse, flt, limit, prefetch_limit, rrf_k, params, lexical_weight
            )
        depth = limit if mode != "hybrid" else max(prefetch_limit, limit)
        dense_points: list[Any] = []
        lexical_rankings: list[list[Any]] = []
        asks_dense = mode in ("hybrid", "dense") and dense is not None
        asks_lexical = mode in ("hybrid", "lexical") and sparse is not None and bool(sparse[0])
        unexcluded: list[QueryRequest] | None = None  # the same for every shard without tombstones
        for shard in shards:
            exclude = view.exclude(shard)
            if exclude or unexcluded is None:
                requests = self._shard_requests(
                    dense if asks_dense else None,
                    sparse if asks_lexical else None,
                    edge_filter(flt, exclude),
                    depth,
                    params,
                )
                unexcluded = unexcluded if exclude else requests
            else:
                requests = unexcluded
            if not requests:
                continue
            answers = shard.handle.query_batch(QueryBatchRequest(requests))
            if asks_dense:
                dense_points.extend(answers.pop(0))
            if answers:
                lexical_rankings.append(answers.pop(0))
        ranked = fuse_shard_answers(dense_points, lexical_rankings, mode, rrf_k, depth, limit, lexical_weight)
        return self._with_payloads(view, ranked)

    @staticmethod
    def _shard_requests(
        dense: list[float] | None,
        sparse: Sparse | None,
        shard_filter: Filter | None,
        depth: int,
        params: SearchParams,
    ) -> list[QueryRequest]:
        """A shard's dense ranking, then its lexical one, ids and scores only. Built once for
        all shards that need no tombstone filter: each build converts the query vector again."""
        requests = []
        if dense is not None:
            requests.append(
                QueryRequest(
                    limit=depth,
                    query=Query.Nearest(dense, using=DENSE),
                    filter=shard_filter,
                    with_payload=False,
                    params=params,
                )
            )
        if sparse is not None:
            requests.append(
                QueryRequest(
                    limit=depth,
                    query=Query.Nearest(SparseVector(*sparse), using=LEXICAL),
                    filter=shard_filter,
                    with_payload=False,
                )
            )
        return requests

    def _search_params(self, limit: int, exact: bool) -> SearchParams:
        """Exact search reads the float32 originals only: it is the yardstick for the others.
        With quantization off, segments built while it was on keep their int8 copies, unused but
        still pinned in RAM (384 bytes a memory), until their next merge build drops them."""
        quantization = QuantizationSearchParams(
            ignore=exact or self._quantization == "none", rescore=True, oversampling=RESCORE_OVERSAMPLING
        )
        return SearchParams(hnsw_ef=max(self._hnsw_ef, limit), exact=exact, quantization=quantization)

    def _with_payloads(self, view: _View, ranked: list[tuple[Any, float, float | None]]) -> list[Hit]:
        """Shards are queried for ids and scores only: fetching every shard's prefetch payloads
        cost more than the searches themselves. Payloads come once, for the final list."""
        ids = [str(point_id) for point_id, _, _ in ranked]
        payloads = {hit.id: hit.payload for hit in self._get(view, ids)}
        return [
            Hit(i, score, payloads[i], similarity=cosine)
            for i, (_, score, cosine) in zip(ids, ranked, strict=True)
            if i in payloads
        ]

    def _fused_single(
        self,
        view: _View,
        shard: _Shard,
        dense: list[float] | None,
        sparse: Sparse | None,
        flt: MemoryFilter,
        limit: int,
        prefetch_limit: int,
        rrf_k: int,
        params: SearchParams,
        lexical_weight: float,
    ) -> list[Hit]:
        assert dense is not None and sparse is not None
        shard_filter = edge_filter(flt, view.exclude(shard))
        prefetches = [
            Prefetch(
                query=Query.Nearest(dense, using=DENSE),
                limit=max(prefetch_limit, limit),
                filter=shard_filter,
                params=params,
            )
        ]
        weights = [1.0]
        if sparse[0]:
            prefetches.append(
                Prefetch(
                    query=Query.Nearest(SparseVector(*sparse), using=LEXICAL),
                    limit=max(prefetch_limit, limit),
                    filter=shard_filter,
                )
            )
            weights.append(lexical_weight)
        request = QueryRequest(
            limit=limit,
            prefetches=prefetches,
            query=cast(Any, Fusion.Rrf(k=rrf_k, weights=weights)),
            with_payload=True,
        )
        return [_hit(p) for p in shard.handle.query(request)]

    def newest(self, flt: MemoryFilter, limit: int, offset: int = 0, sort: SortOrder = "newest") -> list[Hit]:
        key, descending = SORT_KEYS[sort]
        order = OrderBy(key, direction=Direction.Desc if descending else Direction.Asc)
        merged: list[Hit] = []
        view = self._view
        for shard in view.shards:
            records, _ = shard.handle.scroll(
                ScrollRequest(
                    limit=offset + limit,
                    filter=edge_filter(flt, view.exclude(shard)),
                    with_payload=True,
                    order_by=order,
                )
            )
            waiting = self._counts_may_wait(view, shard)
            merged.extend(self._with_pending(_hit(r)) if waiting else _hit(r) for r in records)
        unique = list({hit.id: hit for hit in reversed(merged)}.values())  # the active shard's copy wins
        unique.sort(key=lambda h: h.payload.get(key) or 0.0, reverse=descending)
        return unique[offset : offset + limit]

    def count(self, flt: MemoryFilter | None = None) -> int:
        view = self._view
        return sum(
            shard.handle.count(CountRequest(exact=True, filter=edge_filter(flt, view.exclude(shard))))
            for shard in view.shards
        )

    def facet(self, key: str, flt: MemoryFilter | None = None, limit: int = 100) -> dict[str, int]:
        totals: dict[str, int] = {}
        view = self._view
        for shard in view.shards:
            response = shard.handle.facet(
                FacetRequest(key=key, limit=limit, exact=True, filter=edge_filter(flt, view.exclude(shard)))
            )
            for hit in response:
                totals[str(hit.value)] = totals.get(str(hit.value), 0) + hit.count
        return dict(sorted(totals.items(), key=lambda kv: -kv[1])[:limit])

    def info(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "location": self.location,
            "shards": {
                "active": self.active.handle.info().points_count,
                "sealing": self.sealing.handle.info().points_count if self.sealing else 0,
                "segments": [s.handle.info().points_count for s in self.segments],
                "merging": len(self.merging),
            },
            "index_state": self._build_state,
            "index_error": self._build_error,
            "last_build_seconds": self._last_build_seconds,
            "purge_pending": self._purge_pending(),
            "purge_starts_in": self._purge_starts_in(),
            "builds_started": self._builds_started,
            "quarantine": str(self._quarantined) if self._quarantined else None,
        }

    def _purge_starts_in(self) -> float | None:
        """Seconds until the shards waiting for a purge are rebuilt (storage.purge_delay_seconds
        after the last delete; 0 once due, while a running build holds it up), None when none
        waits: what a running build reads, it purges itself."""
        due_in = self._purge_due_in()
        return None if due_in is None else round(due_in, 1)

    def _purge_pending(self) -> int:
        """Shard directories whose files may still hold the text of a deleted memory: dirty
        shards until their rebuild swaps in (waiting for deletes to pause, or being rebuilt),
        frozen shards holding tombstoned points until their build does, retired shards until
        their directories are gone. 0 means no file of the engine holds the text of a memory
        deleted so far."""
        frozen = len(self._frozen()) if self._tombstones else 0
        return len(self._dirty) + len(self._retired) + frozen

    def close(self) -> None:
        self._closed = True
        self._purge_wake.set()  # the purge timer ends; dirty shards stay in the manifest for the next start
        proc = self._build_proc
        if proc is not None and proc.poll() is None:
            proc.kill()  # never leave a builder behind; the sealed shard is rebuilt at next start
            proc.wait()
        with self._write_lock:
            for shard in self._view.shards:
                try:
                    shard.handle.flush()
                    shard.handle.close()
                except Exception as exc:  # closing is best effort; the WAL already holds the data
                    log.warning("closing shard %s: %s", shard.name, exc)
