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

from clarity.store.base import DENSE, LEXICAL, PointData
from clarity.store.edge.layout import Layout
from clarity.store.edge.shard import point_ids


class Writer:
    def __init__(self, layout: Layout, on_delete: Callable[[], None]) -> None:
        self.layout = layout
        # Called under the lock before a delete marks shards dirty: it puts the purge off
        # until deletes pause (Schedule.note_delete).
        self._on_delete = on_delete

    def upsert(self, points: Sequence[PointData], replaces_existing: bool = False) -> None:
        layout = self.layout
        with layout.lock:
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
            if held:
                self._on_delete()
            if held - layout.dirty:
                layout.dirty |= held
                layout.save()

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
