"""While an index builds, the daemon keeps answering /healthz and retrieval within 100 ms.

Qdrant Edge's optimize() holds the GIL for its whole run; the daemon never calls it itself.
This test fills a storage root, starts the real daemon with a threshold that makes it seal the
shard and build its HNSW index, and hammers /healthz and /api/search while the build runs.
"""

from __future__ import annotations

import gc
import time
import uuid
from pathlib import Path

import httpx
import numpy as np

from clarity.config import IndexParams
from clarity.embedding import LexicalEncoder
from clarity.store.base import PointData
from clarity.store.edge import EdgeStore

from .daemon_util import Daemon, free_port

POINTS = 24_000
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "theta",
    "kappa",
    "lambda",
    "sigma",
    "omega",
    "vector",
    "index",
    "shard",
]


def prefill(root: Path) -> None:
    store = EdgeStore(root / "qdrant", 384, IndexParams(), active_max_points=10**9)
    rng = np.random.default_rng(1)
    lexical = LexicalEncoder()
    now = time.time()
    for start in range(0, POINTS, 2000):
        vectors = rng.standard_normal((2000, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        batch = []
        for j, vector in enumerate(vectors):
            i = start + j
            text = f"memory {i} about {WORDS[i % len(WORDS)]} and {WORDS[(i * 7) % len(WORDS)]} code Q{i}Z"
            payload = {
                "content": text,
                "memory_type": "fact",
                "scope": "global",
                "tags": [],
                "importance": 0.5,
                "source": "import",
                "created_at": now,
                "updated_at": now,
                "access_count": 0,
                "occurrences": 1,
                "metadata": {},
                "content_hash": uuid.uuid4().hex,
            }
            batch.append(PointData(str(uuid.uuid4()), vector.tolist(), lexical.document(text), payload))
        store.upsert(batch)
    store.close()


def test_healthz_and_retrieval_stay_fast_while_the_index_builds(tmp_path: Path) -> None:
    root = tmp_path / "root"
    prefill(root)
    daemon = Daemon(root, free_port(), env={"CLARITY_STORAGE__ACTIVE_SHARD_MAX_POINTS": str(POINTS // 2)})
    daemon.start()
    try:
        daemon.wait_ready()
        # Time the daemon, not this process: a full collection of the test runner's heap (torch
        # is loaded here by other tests) would otherwise land inside a measured request.
        gc.collect()
        gc.disable()
        health: list[float] = []
        search: list[float] = []
        states: set[str] = set()
        building_seen_at = None
        with httpx.Client(base_url=daemon.url, timeout=10) as http:
            http.post("/api/search", json={"query": "warm up the query path", "scope": "all"})
            deadline = time.monotonic() + 600
            i = 0
            while time.monotonic() < deadline:
                stats = http.get("/api/stats").json()
                state = stats["index"]["index_state"]
                states.add(state)
                if state == "building" and building_seen_at is None:
                    building_seen_at = time.monotonic()
                if state != "building" and building_seen_at is not None:
                    break
                t = time.perf_counter()
                assert http.get("/healthz").status_code == 200
                health.append(time.perf_counter() - t)
                t = time.perf_counter()
                found = http.post(
                    "/api/search",
                    json={"query": f"about {WORDS[i % len(WORDS)]} code Q{i}Z", "scope": "all", "limit": 5},
                )
                search.append(time.perf_counter() - t)
                if search[-1] > 0.1:
                    print(
                        f"slow search {search[-1] * 1000:.0f} ms at +{time.monotonic() - (building_seen_at or 0):.1f}s"
                    )
                assert found.status_code == 200 and found.json()["results"], found.text
                i += 1
                time.sleep(0.02)
            final = http.get("/api/stats").json()
        assert building_seen_at is not None, f"no index build observed: {states}"
        build_seconds = final["index"]["last_build_seconds"]
        assert final["index"]["index_state"] == "idle" and final["total"] == POINTS, final
        assert len(final["index"]["shards"]["segments"]) == 1
        assert len(health) >= 20, f"too few probes during a {build_seconds:.1f}s build"
        worst_health, worst_search = max(health), max(search)
        print(
            f"build {build_seconds:.1f}s, {len(health)} probes, /healthz max {worst_health * 1000:.1f} ms, "
            f"search max {worst_search * 1000:.1f} ms, p50 {np.median(search) * 1000:.1f} ms"
        )
        assert worst_health < 0.1, f"/healthz took {worst_health * 1000:.0f} ms during the build"
        assert worst_search < 0.1, f"retrieval took {worst_search * 1000:.0f} ms during the build"
    finally:
        gc.enable()
        daemon.stop()
