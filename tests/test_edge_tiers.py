"""The embedded engine's shard layout: index builds off to the side, nothing ever invisible."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import replace
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


def open_edge(
    path: Path, active_max: int = 200, background: bool = True, segment_max: int = 200_000
) -> EdgeStore:
    return EdgeStore(
        path,
        384,
        IndexParams(),
        active_max_points=active_max,
        build_in_background=background,
        segment_max_points=segment_max,
    )


def find(store: EdgeStore, embedder: EmbeddingProvider, text: str, mode: str = "hybrid") -> list[str]:
    hits = store.search(
        embedder.embed_query(text), LexicalEncoder().query(text), MemoryFilter(), 5, mode=mode
    )  # type: ignore[arg-type]
    return [h.payload["content"] for h in hits]


def seal_by_hand(store: EdgeStore, points: list[PointData]) -> None:
    """Write ``points`` and seal the shard holding them, as _maybe_seal does, without starting
    the build: a test then holds a frozen shard for as long as it needs, with no race."""
    layout = store.layout
    with layout.lock:
        store.upsert(points)
        layout.sealing, layout.active = layout.active, layout.adopt(layout.fresh_shard())
        layout.save()
        layout.publish()


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


def test_a_search_during_a_build_skips_what_was_deleted_from_the_frozen_shard(
    tmp_path: Path, embedder: EmbeddingProvider
) -> None:
    """Only a frozen shard's requests carry the tombstones; the others share one set of requests,
    and the tombstones must not leak into those nor be missing from the frozen shard's."""
    store = open_edge(tmp_path / "q", active_max=1000, background=False)
    frozen = corpus(embedder, 20)
    seal_by_hand(store, frozen)
    active = corpus(embedder, 20, start=20)
    store.upsert(active)
    store.delete([frozen[5].id])  # a tombstone: the sealing shard itself stays as it was
    # A new version of a frozen point: the new copy goes to the active shard, the old one is
    # tombstoned, so the active shard must not be filtered by the tombstones.
    rewritten = replace(corpus(embedder, 1, start=90)[0], id=frozen[7].id)
    store.upsert([rewritten], replaces_existing=True)
    assert {frozen[5].id, frozen[7].id} <= store.layout.view.tombstones
    text = {p.id: p.payload["content"] for p in frozen + active}
    assert find(store, embedder, text[frozen[7].id], "dense")[0] != text[frozen[7].id]
    rewritten_text = rewritten.payload["content"]
    for mode in ("hybrid", "dense", "lexical"):
        found = find(store, embedder, text[frozen[5].id], mode)
        # Five: filtered out by the search itself, not dropped from its answer afterwards.
        assert text[frozen[5].id] not in found and len(found) == 5, (mode, found)
        # Top five, not first: BM25 rankings of the two shards are interleaved by rank.
        assert text[frozen[6].id] in find(store, embedder, text[frozen[6].id], mode), mode
        assert text[active[5].id] in find(store, embedder, text[active[5].id], mode), mode
        assert rewritten_text in find(store, embedder, rewritten_text, mode), mode
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
    split = open_edge(tmp_path / "many", active_max=100, background=False, segment_max=100)
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
    while store.builder.proc is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc = store.builder.proc
    store.close()
    if proc is not None:
        assert proc.poll() is not None


def test_store_locked_is_the_error_type() -> None:
    assert issubclass(StoreLocked, RuntimeError)
    with pytest.raises(StoreLocked):
        raise StoreLocked("x")


def test_a_hybrid_search_is_the_fusion_of_its_two_sides(tmp_path: Path, embedder: EmbeddingProvider) -> None:
    """Over sealed segments and the active shard, a hybrid search ranks as ``fuse_scores`` does
    over the same store's dense and lexical searches (each side asked alone)."""
    from clarity.store.base import fuse_scores

    store = open_edge(tmp_path / "q", active_max=40, background=False)
    store.upsert(corpus(embedder, 100))
    assert len(store.layout.view.shards) > 1
    query = "what did the billing team decide about K12X"
    dense, sparse = embedder.embed_query(query), LexicalEncoder().query(query)
    for weight in (1.0, 2.0, 3.0):
        inside = store.search(
            dense, sparse, MemoryFilter(), 10, prefetch_limit=60, exact=True, lexical_weight=weight
        )
        dense_ranking = store.search(dense, sparse, MemoryFilter(), 60, mode="dense", exact=True)
        lexical_ranking = store.search(dense, sparse, MemoryFilter(), 60, mode="lexical", exact=True)
        here = fuse_scores(
            [(h.id, h.score) for h in dense_ranking],
            [(h.id, h.score) for h in lexical_ranking],
            "hybrid",
            10,
            weight,
        )
        assert [round(f.score, 6) for f in here] == [round(h.score, 6) for h in inside]
        assert {f.id for f in here} == {h.id for h in inside}
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


def test_a_use_count_log_from_an_older_version_is_left_alone(
    tmp_path: Path, embedder: EmbeddingProvider
) -> None:
    """Versions before issue 21 kept use counts waiting for a build in ``touches.jsonl`` in the
    engine directory. A store holding one opens as before and ignores it: the file is neither
    read, nor deleted, nor moved to quarantine."""
    path = tmp_path / "q"
    store = open_edge(path, active_max=100, background=False)
    points = corpus(embedder, 120)
    store.upsert(points)  # sealed: a segment and an active shard
    store.close()
    log = path / "touches.jsonl"
    log.write_text(f'{{"id":"{points[3].id}","set":{{"access_count":9}}}}\n', encoding="utf-8")
    before = log.read_bytes()
    again = open_edge(path, active_max=100)
    assert again.count() == 120 and again.info()["quarantine"] is None
    assert "access_count" not in again.get([points[3].id])[0].payload
    again.close()
    assert log.read_bytes() == before and not (path / "quarantine").exists()


def sizes(store: EdgeStore) -> list[int]:
    return sorted(store.info()["shards"]["segments"])


def test_segments_merge_up_to_the_cap(tmp_path: Path, embedder: EmbeddingProvider) -> None:
    """Each seal folds the smallest segments that fit into its build, so a store is a few large
    segments rather than many small ones, and none grows past the cap."""
    store = open_edge(tmp_path / "q", active_max=100, background=False, segment_max=250)
    points = corpus(embedder, 400)
    store.upsert(points[:100])
    assert sizes(store) == [100]
    store.upsert(points[100:200])  # 100 sealed + the 100 segment = 200 <= 250: merged
    assert sizes(store) == [200]
    store.upsert(points[200:300])  # 100 + 200 > 250: a segment of its own
    assert sizes(store) == [100, 200]
    store.upsert(points[300:400])  # 100 + the smallest (100) fits, the 200 does not
    assert sizes(store) == [200, 200]
    assert store.count() == 400
    assert not list(tmp_path.joinpath("q").glob("build-*"))  # copies for the child are gone
    shard_dirs = {p.name for p in tmp_path.joinpath("q").glob("shard-*")}
    assert shard_dirs == {s.name for s in [store.active, *store.segments]}  # merged ones removed
    for number in (3, 150, 250, 399):
        assert find(store, embedder, f"K{number}X")[0] == points[number].payload["content"]
    store.close()


def test_old_small_segments_are_merged_when_the_store_opens(
    tmp_path: Path, embedder: EmbeddingProvider
) -> None:
    path = tmp_path / "q"
    store = open_edge(path, active_max=100, background=False, segment_max=100)
    points = corpus(embedder, 350)
    for i in range(0, 350, 50):
        store.upsert(points[i : i + 50])
    assert sizes(store) == [100, 100, 100]
    store.close()
    reopened = open_edge(path, active_max=100, segment_max=1000)  # e.g. the cap was raised
    assert reopened.wait_for_index(120)
    assert sizes(reopened) == [300]
    assert reopened.count() == 350
    reopened.close()


def test_writes_to_merging_segments_during_a_build_are_not_lost(
    tmp_path: Path, embedder: EmbeddingProvider
) -> None:
    """A merge freezes old segments too: deletes and payload updates that reach them while the
    child builds must all be in the result."""
    store = open_edge(tmp_path / "q", active_max=100, segment_max=1000)
    points = corpus(embedder, 200)
    store.upsert(points[:100])
    assert store.wait_for_index(120)
    store.upsert(points[100:200])  # seals and merges with the first segment
    assert store.merging and store.sealing is not None
    old, old_updated, new = points[5], points[6], points[150]
    store.delete([old.id, new.id])
    store.set_payload(old_updated.id, {"importance": 0.9})
    assert store.count() == 198
    assert store.get([old.id]) == [] and store.get([new.id]) == []
    assert store.get([old_updated.id])[0].payload["importance"] == 0.9
    assert store.merging, "the build ended before the reads above: they tested nothing"
    assert store.wait_for_index(120)
    assert not store.merging and store.sealing is None
    assert sizes(store) == [197]  # 200 less two deleted and one moved to the active shard by its update
    assert store.count() == 198
    assert store.get([old.id, new.id]) == []
    assert store.get([old_updated.id])[0].payload["importance"] == 0.9
    store.close()


def test_a_merge_interrupted_by_a_stop_is_finished_at_the_next_start(
    tmp_path: Path, embedder: EmbeddingProvider
) -> None:
    path = tmp_path / "q"
    store = open_edge(path, active_max=100, segment_max=1000)
    store.upsert(corpus(embedder, 100))
    assert store.wait_for_index(120)
    store.upsert(corpus(embedder, 100, start=100))  # a merge starts
    store.delete([corpus(embedder, 1, start=42)[0].id])  # a tombstone in a merging segment
    store.close()  # kills the builder
    again = open_edge(path, active_max=100, segment_max=1000)
    assert again.count() == 199
    assert again.wait_for_index(120)
    assert sizes(again) == [199]
    assert again.count() == 199
    assert find(again, embedder, "K142X")[0].startswith("Note 142:")
    again.close()


def test_two_builds_of_the_same_shards_swap_in_once(tmp_path: Path, embedder: EmbeddingProvider) -> None:
    """Two builds racing over one frozen set (a failed build retried by two writers at once):
    the second result must be thrown away, or every point would exist twice and the deletes
    made during the build would come back."""
    store = open_edge(tmp_path / "q", active_max=1000, background=False)
    points = corpus(embedder, 100)
    seal_by_hand(store, points)
    store.delete([points[3].id])
    builds = [threading.Thread(target=store.builder.run) for _ in range(2)]
    for build in builds:
        build.start()
    for build in builds:
        build.join(300)
    assert store.sealing is None and store.builder.error is None
    assert sizes(store) == [99]
    assert store.count() == 99 and store.get([points[3].id]) == []
    assert not [p for p in (tmp_path / "q").iterdir() if p.name.startswith("build-")]
    store.close()
    again = open_edge(tmp_path / "q", active_max=1000)
    assert again.count() == 99 and sizes(again) == [99]
    again.close()


def test_disk_usage_counts_only_the_shards_the_manifest_lists(
    tmp_path: Path, embedder: EmbeddingProvider
) -> None:
    """A swap leaves the retired shards on disk for a grace period, next to the segment built
    from them; counted too, they would make the storage cap evict memories for nothing."""
    from clarity.lifecycle.retention import disk_usage

    store = open_edge(tmp_path / "q", active_max=50)
    store.upsert(corpus(embedder, 50))
    assert store.wait_for_index(120)
    store.close()
    before = disk_usage(tmp_path)
    segment = next(p for p in (tmp_path / "q").iterdir() if p.name.startswith("shard-"))
    shutil.copytree(segment, tmp_path / "q" / "shard-09999")  # retired: not in the manifest
    shutil.copytree(segment, tmp_path / "q" / "build-shard-09998")
    assert disk_usage(tmp_path) == before
    (tmp_path / "q" / "manifest.json").unlink()  # without a manifest, everything counts
    assert disk_usage(tmp_path) > before
