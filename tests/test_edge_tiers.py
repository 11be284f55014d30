"""The embedded engine's shard layout: index builds off to the side, nothing ever invisible."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from clarity.config import IndexParams
from clarity.embedding import EmbeddingProvider, LexicalEncoder
from clarity.store.base import MemoryFilter, PointData, StoreLocked
from clarity.store.edge import EdgeStore

TOPICS = ["database", "deploy", "testing", "frontend", "networking", "security", "billing", "search"]


def corpus(embedder: EmbeddingProvider, n: int, start: int = 0) -> list[PointData]:
    texts = [
        f"Note {i}: the {TOPICS[i % len(TOPICS)]} team decided item K{i}X" for i in range(start, start + n)
    ]
    vectors = embedder.embed_documents(texts)
    lexical = LexicalEncoder()
    return [
        PointData(
            str(uuid.uuid5(uuid.NAMESPACE_OID, t)),
            v,
            lexical.document(t),
            {"content": t, "scope": "p", "memory_type": "fact", "created_at": float(i)},
        )
        for i, (t, v) in enumerate(zip(texts, vectors, strict=True), start=start)
    ]


def open_edge(path: Path, active_max: int = 200, background: bool = True) -> EdgeStore:
    return EdgeStore(path, 384, IndexParams(), active_max_points=active_max, build_in_background=background)


def find(store: EdgeStore, embedder: EmbeddingProvider, text: str, mode: str = "hybrid") -> list[str]:
    hits = store.search(
        embedder.embed_query(text), LexicalEncoder().query(text), MemoryFilter(), 5, mode=mode
    )  # type: ignore[arg-type]
    return [h.payload["content"] for h in hits]


def test_sealed_shard_is_indexed_in_a_child_and_stays_searchable(
    tmp_path: Path, embedder: EmbeddingProvider
) -> None:
    store = open_edge(tmp_path / "q", active_max=200)
    points = corpus(embedder, 450)
    for i in range(0, 450, 50):
        store.upsert(points[i : i + 50])
        # Every point written so far is visible at every moment, build or no build.
        assert store.count() == i + 50
    assert store.wait_for_index(120)
    info = store.info()
    assert info["index_state"] == "idle", info
    assert sum(info["shards"]["segments"]) + info["shards"]["active"] == 450
    assert len(info["shards"]["segments"]) >= 1
    assert find(store, embedder, "K17X")[0] == points[17].payload["content"]
    assert find(store, embedder, "K433X")[0] == points[433].payload["content"]
    store.close()


def test_deletes_and_updates_during_a_build_are_not_lost(tmp_path: Path, embedder: EmbeddingProvider) -> None:
    store = open_edge(tmp_path / "q", active_max=100)
    points = corpus(embedder, 100)
    store.upsert(points[:99])
    store.upsert(points[99:])  # crosses the threshold: the shard is sealed and a build starts
    assert store.sealing is not None
    store.delete([points[5].id])
    store.set_payload(points[6].id, {"importance": 0.9})
    assert store.count() == 99
    assert store.wait_for_index(120)
    assert store.sealing is None
    assert store.get([points[5].id]) == []
    assert store.get([points[6].id])[0].payload["importance"] == 0.9
    assert store.count() == 99
    store.close()


def test_everything_survives_a_restart_and_an_interrupted_build(
    tmp_path: Path, embedder: EmbeddingProvider
) -> None:
    path = tmp_path / "q"
    store = open_edge(path, active_max=100, background=False)
    store.upsert(corpus(embedder, 150))
    store.close()
    reopened = open_edge(path, active_max=100)
    assert reopened.count() == 150
    reopened.upsert(corpus(embedder, 60, start=150))  # seals again; close before the build finishes
    reopened.close()
    again = open_edge(path, active_max=100)
    assert again.count() == 210
    assert again.wait_for_index(120)
    assert again.count() == 210
    assert find(again, embedder, "K205X")[0].startswith("Note 205:")
    again.close()


def test_multi_shard_search_agrees_with_single_shard(tmp_path: Path, embedder: EmbeddingProvider) -> None:
    """Results do not depend on how points happen to be split over shards.

    Dense scores are comparable across shards, so exact dense rankings agree exactly. Lexical
    IDF is computed per shard, so only exact ties may be broken differently.
    """
    points = corpus(embedder, 300)
    single = open_edge(tmp_path / "one", active_max=100_000)
    split = open_edge(tmp_path / "many", active_max=100, background=False)
    single.upsert(points)
    for i in range(0, 300, 100):
        split.upsert(points[i : i + 100])
    assert len(split.segments) >= 2
    for query in ("billing team decision", "K42X", "what did the security team decide about K7X"):
        dense, sparse = embedder.embed_query(query), LexicalEncoder().query(query)
        a = [h.id for h in single.search(dense, sparse, MemoryFilter(), 5, mode="dense", exact=True)]
        b = [h.id for h in split.search(dense, sparse, MemoryFilter(), 5, mode="dense", exact=True)]
        assert a == b, query
    # This corpus is full of exact BM25 ties, which shards may break differently; a query with a
    # unique term has no ties, and its fused ranking must not depend on the split at all.
    for number in (42, 150, 277):
        query = f"K{number}X"
        dense, sparse = embedder.embed_query(query), LexicalEncoder().query(query)
        a = [h.id for h in single.search(dense, sparse, MemoryFilter(), 3, exact=True)]
        b = [h.id for h in split.search(dense, sparse, MemoryFilter(), 3, exact=True)]
        assert a[0] == b[0] == points[number].id, query
    single.close()
    split.close()


def test_second_process_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "q"
    store = open_edge(path)
    code = (
        "import sys\n"
        "from clarity.config import IndexParams\n"
        "from clarity.store.edge import EdgeStore\n"
        "from clarity.store.base import StoreLocked\n"
        f"try:\n    EdgeStore(__import__('pathlib').Path({str(path)!r}), 384, IndexParams())\n"
        "except StoreLocked as exc:\n    print(exc); sys.exit(3)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr
    assert "held by another process" in result.stdout and str(path) in result.stdout
    store.close()


def test_builder_child_does_not_outlive_close(tmp_path: Path, embedder: EmbeddingProvider) -> None:
    store = open_edge(tmp_path / "q", active_max=100)
    store.upsert(corpus(embedder, 100))
    deadline = time.monotonic() + 10
    while store._build_proc is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc = store._build_proc
    store.close()
    if proc is not None:
        assert proc.poll() is not None


def test_store_locked_is_the_error_type() -> None:
    assert issubclass(StoreLocked, RuntimeError)
    with pytest.raises(StoreLocked):
        raise StoreLocked("x")


def test_weighted_rrf_here_matches_qdrants(tmp_path: Path, embedder: EmbeddingProvider) -> None:
    """The Python fusion used across shards scores exactly as Qdrant's own fusion on one shard."""
    from clarity.store.base import rrf_fuse

    store = open_edge(tmp_path / "q", active_max=100_000)
    store.upsert(corpus(embedder, 60))
    query = "what did the billing team decide about K12X"
    dense, sparse = embedder.embed_query(query), LexicalEncoder().query(query)
    for weight, k in ((1.0, 60), (3.0, 60), (1.0, 10), (3.0, 10)):
        inside = store.search(
            dense, sparse, MemoryFilter(), 10, prefetch_limit=60, rrf_k=k, exact=True, lexical_weight=weight
        )
        dense_ranking = store.search(dense, sparse, MemoryFilter(), 60, mode="dense", exact=True)
        lexical_ranking = store.search(dense, sparse, MemoryFilter(), 60, mode="lexical", exact=True)
        here = rrf_fuse([dense_ranking, lexical_ranking], k, 10, [1.0, weight])
        assert [round(h.score, 6) for h in here[:5]] == [round(h.score, 6) for h in inside[:5]]
        mine = {h.id: round(h.score, 6) for h in here}
        assert all(mine[h.id] == round(h.score, 6) for h in inside[:5] if h.id in mine)
        assert here[0].id == inside[0].id or here[0].score == here[1].score  # same leader unless tied
    store.close()


def test_a_crash_between_new_and_old_copy_is_reconciled_at_start(
    tmp_path: Path, embedder: EmbeddingProvider
) -> None:
    from qdrant_edge import Point, SparseVector, UpdateOperation

    path = tmp_path / "q"
    store = open_edge(path, active_max=100, background=False)
    points = corpus(embedder, 100)
    store.upsert(points)  # sealed and indexed into a segment
    assert store.segments
    # What a crash right after writing the new copy leaves: the point in both shards.
    old = points[3]
    store.active.handle.update(
        UpdateOperation.upsert_points(
            [
                Point(
                    old.id,
                    {"dense": old.dense, "lex": SparseVector(*old.sparse)},
                    {**old.payload, "content": "new copy"},
                )
            ]
        )
    )
    store.close()
    reopened = open_edge(path, active_max=100)
    assert reopened.count() == 100
    assert reopened.get([old.id])[0].payload["content"] == "new copy"
    hits = reopened.search(embedder.embed_query("K3X"), LexicalEncoder().query("K3X"), MemoryFilter(), 5)
    assert [h.id for h in hits].count(old.id) == 1
    reopened.close()


def test_missing_manifest_with_shards_refuses_to_guess(tmp_path: Path, embedder: EmbeddingProvider) -> None:
    path = tmp_path / "q"
    store = open_edge(path)
    store.upsert(corpus(embedder, 5))
    store.close()
    (path / "manifest.json").unlink()
    with pytest.raises(RuntimeError, match=r"manifest\.json is missing"):
        open_edge(path)
    assert any(p.name.startswith("shard-") for p in path.iterdir())  # nothing was deleted
