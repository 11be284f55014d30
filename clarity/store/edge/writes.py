"""Writes to the embedded engine: new points go to the active shard, deletes and payload updates
to wherever the point is, and what reaches a frozen shard (one a build is copying) becomes a
tombstone instead (``layout.py``).

A payload update changes the point in place, and Qdrant applies one to a point of an HNSW-indexed
segment by moving the point into the shard's appendable segment, which every search scans by
brute force: written on every retrieve, use counts moved 570 of a 97.5k segment's points out of
its index in a day of benchmarks, 0.13-0.27 ms more per search (docs/benchmarks.md, fifth round).
That is why use counts are kept outside the engine (``clarity/memory/usage.py``), and why only edits
(importance, tags) come here.

Every method is called without the layout's lock and takes it; the store starts the seals and
builds a write may make due (``schedule.py``) after it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from qdrant_edge import CountRequest, Point, ScrollRequest, SparseVector, UpdateOperation

from clarity.store.base import DENSE, LEXICAL, MemoryFilter, PointData
from clarity.store.edge.layout import Layout
from clarity.store.edge.reads import edge_filter
from clarity.store.edge.shard import point_ids


class Writer:
    def __init__(self, layout: Layout, on_delete: Callable[[], None]) -> None:
        self.layout = layout
        # Called under the lock before a delete marks shards dirty: it puts the purge off
        # until deletes pause (Schedule.note_delete).
        self._on_delete = on_delete

    def upsert(
        self, points: Sequence[PointData], replaces_existing: bool = False, purge_replaced: bool = False
    ) -> None:
        """``purge_replaced``: the shards holding the copies replaced are marked for the purge, as
        a delete marks them: the old copies' text is still in their WAL and payload pages."""
        layout = self.layout
        with layout.lock:
            held = self._holders([p.id for p in points]) if purge_replaced else set()
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
            # reconcile settles at the next start, never a memory with no copy at all.
            layout.active.handle.update(UpdateOperation.upsert_points(edge_points))
            if replaces_existing:
                self._remove_from_older([p.id for p in points])
            self._mark_dirty(held)

    def reconcile(self) -> None:
        """A crash between writing a point's new copy and retiring its old one leaves two copies;
        the one in the active shard is the newer, so older shards drop theirs."""
        layout = self.layout
        if not layout.frozen() and not layout.segments:
            return
        total = layout.active.handle.count(CountRequest(exact=True))
        if total:
            records, _ = layout.active.handle.scroll(ScrollRequest(limit=total, with_payload=False))
            with layout.lock:
                self._remove_from_older([str(r.id) for r in records])

    def _remove_from_older(self, ids: list[str]) -> None:
        for shard in self.layout.mutable()[1:]:
            shard.handle.update(UpdateOperation.delete_points(point_ids(ids)))
        self._tombstone_frozen(ids)

    def _tombstone_frozen(self, ids: list[str]) -> None:
        """Frozen shards are immutable while a build copies them: what they hold of ``ids`` is
        hidden from reads and left out of (or deleted from) the build's result."""
        layout = self.layout
        present = {
            str(r.id)
            for shard in layout.frozen()
            for r in shard.handle.retrieve(point_ids(ids), with_payload=False, with_vector=False)
        }
        if present - layout.tombstones:
            layout.tombstones |= present
            layout.save()
            layout.publish()

    def _holders(self, ids: list[str]) -> set[str]:
        """The mutable shards holding a copy of any of ``ids`` (frozen ones are tombstoned instead)."""
        return {
            shard.name
            for shard in self.layout.mutable()
            if shard.handle.retrieve(point_ids(ids), with_payload=False, with_vector=False)
        }

    def _mark_dirty(self, held: set[str]) -> None:
        """Under the lock: ``held`` shards hold deleted text until the purge rebuilds them."""
        if held:
            self._on_delete()
        if held - self.layout.dirty:
            self.layout.dirty |= held
            self.layout.save()

    def delete(self, ids: Sequence[str]) -> None:
        """Delete, then purge: a deleted point's text stays in its shard's WAL and payload pages,
        so every shard that held one is marked dirty and rebuilt without it by a build that
        starts once deletes pause (``Schedule.purge_due_in``); see ``info()["purge_pending"]``."""
        layout = self.layout
        ids = list(ids)
        with layout.lock:
            held = set()
            for shard in layout.mutable():
                found = shard.handle.retrieve(point_ids(ids), with_payload=False, with_vector=False)
                if found:
                    shard.handle.update(UpdateOperation.delete_points([record.id for record in found]))
                    held.add(shard.name)
            self._tombstone_frozen(ids)  # purged by the running build, or after it (late tombstones)
            self._mark_dirty(held)

    def set_payload(self, point_id: str, payload: dict[str, Any]) -> None:
        layout = self.layout
        with layout.lock:
            if self._set_in_place(point_id, payload) or point_id in layout.tombstones:
                return
            for shard in layout.frozen():
                # A frozen shard is immutable: move the point to the active shard instead.
                records = shard.handle.retrieve(point_ids([point_id]), with_payload=True, with_vector=True)
                vector = records[0].vector if records else None
                if vector is not None:
                    merged = {**(records[0].payload or {}), **payload}
                    layout.active.handle.update(
                        UpdateOperation.upsert_points([Point(point_id, vector, merged)])
                    )
                    layout.tombstones.add(point_id)
                    layout.save()
                    layout.publish()
                    return

    def _set_in_place(self, point_id: str, payload: dict[str, Any]) -> bool:
        """Set ``payload`` on the point in the first mutable shard that holds it; False if none does."""
        for shard in self.layout.mutable():
            if shard.handle.retrieve(point_ids([point_id]), with_payload=False, with_vector=False):
                shard.handle.update(UpdateOperation.set_payload([point_id], payload))
                return True
        return False

    def reencode_lexical(self, version: int) -> None:
        """Mark every shard holding records below ``version`` for a rebuild (the purge's build),
        whose child re-encodes them as it copies them (``child.py``); nothing is re-encoded here.
        In place, a point of an indexed segment would leave its index for the shard's brute-force
        part, and the active shard would keep every overwritten copy until its seal: re-encoded
        so, 2,500 active points cost the prompt hook about 1 ms more at 10k memories (p50 9.5-9.8
        against 8.3-8.9 ms, scripts/bench/hooks.py). A rebuild of 100k points costs a minute of a
        background process; searches meanwhile see the old vectors."""
        stale = edge_filter(MemoryFilter(lexical_version_below=version))
        layout = self.layout
        with layout.lock:
            held = {
                shard.name
                for shard in layout.mutable()
                if shard.handle.count(CountRequest(exact=True, filter=stale))
            }
            self._mark_dirty(held - layout.dirty)
