"""``EdgeStore``: the embedded engine as a ``VectorStore``, a facade over the layout, its writes
and build schedule, with the reads of ``reads.py`` (the package docstring says how they fit).

Every write checks the free-space floor first (``space.py``), then lets the schedule seal or
merge what became due; reads take the published view and never wait for a writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clarity.config import IndexParams
from clarity.store.base import PointData, Reencode, VectorStore
from clarity.store.edge.layout import Layout
from clarity.store.edge.reads import EdgeReads
from clarity.store.edge.schedule import Schedule
from clarity.store.edge.shard import Quantization, Shard
from clarity.store.edge.writes import Writer
from clarity.store.space import SpaceGuard


class EdgeStore(EdgeReads, VectorStore):
    """Reads (``get``, ``search``, ``newest``, ``count``, ``facet``) come from ``EdgeReads``."""

    engine = "embedded"

    def __init__(
        self,
        directory: Path,
        dimension: int,
        index_params: IndexParams,
        active_max_points: int = 5_000,
        hnsw_ef: int = 64,
        segment_max_points: int = 500_000,
        build_in_background: bool = True,
        quantization: Quantization = "int8",
        min_free_bytes: int = 0,
        purge_delay_seconds: float = 30.0,
    ) -> None:
        self.directory = directory
        self.location = str(directory)
        self.dimension = dimension
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.space = SpaceGuard(directory, min_free_bytes)  # every write checks it (space.py)
        self._hnsw_ef = hnsw_ef
        self._quantization = quantization
        self.layout = Layout(directory, dimension, index_params, quantization)
        self.schedule = Schedule(
            self.layout,
            self.space,
            active_max_points,
            segment_max_points,
            purge_delay_seconds,
            build_in_background,
        )
        self.builder = self.schedule.builder
        self.writer = Writer(self.layout, on_delete=self.schedule.note_delete)
        self.writer.reconcile()
        self.schedule.resume()

    # The layout's tiers, for tests and benchmarks that look at them.

    @property
    def active(self) -> Shard:
        return self.layout.active

    @property
    def sealing(self) -> Shard | None:
        return self.layout.sealing

    @property
    def segments(self) -> list[Shard]:
        return self.layout.segments

    @property
    def merging(self) -> list[Shard]:
        return self.layout.merging

    # -- writes -------------------------------------------------------------------------------

    def upsert(
        self, points: Sequence[PointData], replaces_existing: bool = False, purge_replaced: bool = False
    ) -> None:
        if not points:
            return
        self.space.check("store")
        self.writer.upsert(points, replaces_existing, purge_replaced)
        self.schedule.housekeep()

    def delete(self, ids: Sequence[str]) -> None:
        self.space.check("delete")
        self.writer.delete(ids)
        self.schedule.housekeep()

    def set_payload(self, point_id: str, payload: dict[str, Any]) -> None:
        self.space.check("update")
        self.writer.set_payload(point_id, payload)

    def reencode_lexical(self, reencode: Reencode, version: int, limit: int) -> int:
        """Builds re-encode (``Writer.reencode_lexical``): the shards holding older records are
        marked for the purge's rebuild, and none is re-encoded by this call."""
        self.writer.reencode_lexical(version)
        return 0

    def flush(self) -> None:
        self.layout.flush()

    def snapshot(self, destination: Path) -> None:
        self.layout.snapshot(destination)

    def wait_for_index(self, timeout: float = 300.0) -> bool:
        """Wait for the running build and any build it chains (a seal or merge that became due
        meanwhile). A purge still waiting for deletes to pause is not waited for: see
        ``info()["purge_starts_in"]``."""
        return self.builder.wait(timeout)

    def info(self) -> dict[str, Any]:
        layout, builder = self.layout, self.builder
        return {
            "engine": self.engine,
            "location": self.location,
            "shards": {
                "active": layout.active.handle.info().points_count,
                "sealing": layout.sealing.handle.info().points_count if layout.sealing else 0,
                "segments": [s.handle.info().points_count for s in layout.segments],
                "merging": len(layout.merging),
            },
            "index_state": builder.state,
            "index_error": builder.error,
            "last_build_seconds": builder.last_seconds,
            "purge_pending": layout.purge_pending(),
            "purge_starts_in": self.schedule.purge_starts_in(),
            "builds_started": builder.started,
            "quarantine": str(layout.quarantined) if layout.quarantined else None,
        }

    def close(self) -> None:
        self.layout.closed = True
        self.schedule.close()
        self.builder.kill()
        self.layout.close()
