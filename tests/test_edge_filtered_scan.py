"""A narrow filter in a large indexed segment: its matches are scanned, not searched for in the graph.

Qdrant walks the HNSW graph unless its bound on a filter's matches is small, and for two
conditions that bound is the larger one's; the few matches of a narrow filter lie scattered over
the graph and the walk misses many (recall@10 0.78-0.89 at 1.25-2.5 % of a 500k segment). The
store scans them instead (``FILTERED_SCAN_SHARE`` in ``clarity/store/edge/reads.py``), so a
project's fixes are found as an exact search finds them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from clarity.config import IndexParams
from clarity.store.base import MemoryFilter, PointData
from clarity.store.edge import EdgeStore

POINTS = 20_000
DIMENSION = 384


def unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    """Vectors spread evenly over the sphere: the hardest case for a graph walk, so a test of
    what the walk would miss needs only 20,000 of them rather than 500,000 embeddings."""
    vectors = rng.standard_normal((n, DIMENSION)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeStore]:
    """One indexed segment of 20,000 points: half in project "p", one in 25 of them a fix, so
    "project p, kind fix" keeps 2 % (400 points). The segment is a scale model of a 500k one:
    Qdrant scans by itself when it expects fewer matches than its full-scan threshold (6,666
    points by default, more than 2 % of anything under 330k points), so the threshold is set
    to 66 points here, and it walks the graph as it does at 500k."""
    rng = np.random.default_rng(7)
    vectors = unit_vectors(rng, POINTS)
    points = [
        PointData(
            str(uuid.UUID(int=i + 1)),
            vectors[i].tolist(),
            ([], []),
            {
                "content": f"memory {i}",
                "scope": "p" if i % 2 == 0 else "q",
                "memory_type": "fix" if i % 50 == 0 else "fact",
                "created_at": float(i),
            },
        )
        for i in range(POINTS)
    ]
    path: Path = tmp_path_factory.mktemp("filtered-scan")
    edge = EdgeStore(
        path,
        DIMENSION,
        IndexParams(full_scan_threshold=100),  # kilobytes of float32 vectors: 66 points
        active_max_points=POINTS,
        build_in_background=False,
    )
    for start in range(0, POINTS, 1000):
        edge.upsert(points[start : start + 1000])
    assert edge.info()["shards"]["segments"] == [POINTS], edge.info()["shards"]
    yield edge
    edge.close()


def dense_ids(store: EdgeStore, query: list[float], flt: MemoryFilter, exact: bool) -> list[str]:
    return [hit.id for hit in store.search(query, None, flt, 10, mode="dense", exact=exact)]


def test_a_narrow_filter_finds_what_an_exact_search_finds(store: EdgeStore) -> None:
    queries = unit_vectors(np.random.default_rng(8), 40)
    narrow = MemoryFilter(scopes=["p"], memory_types=["fix"])
    found = [dense_ids(store, q.tolist(), narrow, exact=False) for q in queries]
    exact = [dense_ids(store, q.tolist(), narrow, exact=True) for q in queries]
    assert all(len(ids) == 10 for ids in exact)
    recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact, strict=True)])
    assert recall == 1.0
