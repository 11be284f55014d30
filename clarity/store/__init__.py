"""Store interface and its two engines; ``open_store`` picks one from the settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from clarity.store.base import Hit, MemoryFilter, PointData, StoreLocked, VectorStore

if TYPE_CHECKING:  # the export and import commands reach this package; pydantic-settings is not theirs
    from clarity.config import Settings

__all__ = ["Hit", "MemoryFilter", "PointData", "StoreLocked", "VectorStore", "open_store"]


def open_store(settings: Settings) -> VectorStore:
    """Server engine when a Qdrant URL is configured, the embedded Qdrant Edge engine otherwise."""
    if settings.qdrant.url:
        from clarity.store.server import ServerStore

        return ServerStore(settings.qdrant, settings.embedding.dimension)
    from clarity.store.edge import EdgeStore

    return EdgeStore(
        settings.storage.qdrant_dir,
        settings.embedding.dimension,
        settings.qdrant.index_params,
        active_max_points=settings.storage.active_shard_max_points,
        segment_max_points=settings.storage.segment_max_points,
        hnsw_ef=settings.retrieval.hnsw_ef,
        quantization=settings.storage.quantization,
        min_free_bytes=settings.storage.min_free_bytes,
        purge_delay_seconds=settings.storage.purge_delay_seconds,
    )
