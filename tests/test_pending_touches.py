"""Use counts must not move memories out of the HNSW index, and must never be lost.

Qdrant applies a payload update to a point of an indexed segment by copying the point into an
appendable segment that searches scan by brute force. The observable: the copy's vectors add to
the shard's ``indexed_vectors_count`` while its ``points_count`` stays the same.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from qdrant_edge import UpdateOperation

from clarity.embedding import EmbeddingProvider, LexicalEncoder
from clarity.store.base import MemoryFilter
from clarity.store.edge import EdgeStore
from clarity.store.pending_touches import PendingTouches

from .test_edge_tiers import corpus, open_edge


def moved_vectors(store: EdgeStore) -> int:
    """Vectors of the only segment beyond its points' two (dense and lexical): copies that a
    payload update moved out of the indexed segment."""
    (segment,) = store.segments
    info = segment.handle.info()
    return int(info.indexed_vectors_count) - 2 * int(info.points_count)


def stored_counts(store: EdgeStore, ids: list[str]) -> dict[str, Any]:
    """``access_count`` as the segment's points hold it, without what waits in the log."""
    (segment,) = store.segments
    return {
        str(r.id): (r.payload or {}).get("access_count")
        for r in segment.handle.retrieve(ids, with_payload=True, with_vector=False)
    }


def sealed_store(path: Path, embedder: EmbeddingProvider, n: int = 100) -> tuple[EdgeStore, list[str]]:
    store = open_edge(path, active_max=n)
    points = corpus(embedder, n)
    store.upsert(points)
    assert store.wait_for_index(120)
    assert len(store.segments) == 1 and moved_vectors(store) == 0
    return store, [p.id for p in points]


def test_use_counts_leave_indexed_points_in_place_and_still_read_back(
    tmp_path: Path, embedder: EmbeddingProvider
) -> None:
    store, ids = sealed_store(tmp_path / "q", embedder)
    store.touch({i: {"access_count": 5, "last_accessed_at": 1.0} for i in ids[:30]})
    assert moved_vectors(store) == 0
    assert set(stored_counts(store, ids[:30]).values()) == {None}  # nothing written into the segment
    # Every read path shows the waiting counts: the access tracker adds its next uses to them.
    assert {h.payload["access_count"] for h in store.get(ids[:30])} == {5}
    listed = {h.id: h.payload.get("access_count") for h in store.newest(MemoryFilter(), 100)}
    assert listed[ids[0]] == 5 and listed[ids[50]] is None
    text = "Note 3: the frontend team decided item K3X"
    found = store.search(embedder.embed_query(text), LexicalEncoder().query(text), MemoryFilter(), 3)
    assert found[0].id == ids[3] and found[0].payload["access_count"] == 5
    store.close()

    again = open_edge(tmp_path / "q", active_max=100)  # kept across a restart
    assert {h.payload["access_count"] for h in again.get(ids[:30])} == {5}
    # The probe can fail: an in-place update, as before, does move the point.
    again.segments[0].handle.update(UpdateOperation.set_payload([ids[40]], {"access_count": 1}))
    assert moved_vectors(again) == 1
    again.close()


def test_enough_waiting_counts_are_written_in_by_a_rebuild_of_their_segment(
    tmp_path: Path, embedder: EmbeddingProvider
) -> None:
    store, ids = sealed_store(tmp_path / "q", embedder)
    store.touch({i: {"access_count": 3} for i in ids[:99]})
    assert not store.merging, "under the threshold (an active shard's points): no build yet"
    store.touch({ids[99]: {"access_count": 3}})
    assert store.merging, "100 waiting counts, as many as the active shard holds: the segment is rebuilt"
    assert store.wait_for_index(120)
    assert len(store.segments) == 1 and moved_vectors(store) == 0
    assert set(stored_counts(store, ids).values()) == {3}
    assert len(store._pending) == 0 and not (tmp_path / "q" / "touches.jsonl").exists()
    assert store.count() == 100
    store.close()


def test_a_count_that_arrives_during_the_rebuild_is_kept(tmp_path: Path, embedder: EmbeddingProvider) -> None:
    store, ids = sealed_store(tmp_path / "q", embedder)
    store.touch({i: {"access_count": 3} for i in ids})
    assert store.merging
    deadline = time.monotonic() + 30
    while not list((tmp_path / "q").glob("build-*-sources/payloads.json")):  # the build took its copy
        assert time.monotonic() < deadline, "the build never wrote what it folds in"
        time.sleep(0.01)
    store.touch({ids[7]: {"access_count": 9}})
    assert store.merging, "the build ended before the second touch: this tested nothing"
    assert store.wait_for_index(120)
    assert stored_counts(store, [ids[7]])[ids[7]] == 3  # the build wrote the value it was given
    assert store.get([ids[7]])[0].payload["access_count"] == 9  # the newer one still waits, and shows
    store.close()
    assert open_edge(tmp_path / "q", active_max=100).get([ids[7]])[0].payload["access_count"] == 9


def test_counts_a_finished_rebuild_has_written_do_not_start_another(
    tmp_path: Path, embedder: EmbeddingProvider
) -> None:
    """A build drops what it folded only after the retired shards' grace period; a touch in that
    window still sees them waiting, and must not rebuild the segment with them a second time."""
    store, ids = sealed_store(tmp_path / "q", embedder)
    store.touch({i: {"access_count": 3} for i in ids})
    build = store._build_thread
    assert build is not None and store.merging
    deadline = time.monotonic() + 60
    while store.merging:  # until the swap; the grace period follows it
        assert time.monotonic() < deadline, "the rebuild never swapped in"
        time.sleep(0.01)
    assert build.is_alive() and len(store._pending) == 100, "past the grace already: this tests nothing"
    store.touch({ids[7]: {"access_count": 4}})
    assert not store.merging, "a second rebuild started for counts the first one has written"
    assert store.wait_for_index(120)
    assert store._pending.snapshot() == {ids[7]: {"access_count": 4}}
    store.close()


def test_deletes_rewrites_and_edits_settle_their_waiting_counts(
    tmp_path: Path, embedder: EmbeddingProvider
) -> None:
    store, ids = sealed_store(tmp_path / "q", embedder)
    gone, rewritten, imported, edited = ids[1], ids[2], ids[3], ids[4]
    store.touch({i: {"access_count": 4} for i in (gone, rewritten, imported, edited)})
    store.delete([gone])
    # Written anew (an edit of the content, an import), a memory keeps the higher count: a use
    # recorded between the writer's read and its write is not lost, and counts never go back.
    older, newer = corpus(embedder, 2, start=2)
    older.payload["access_count"] = 0
    newer.payload["access_count"] = 6
    store.upsert([older, newer], replaces_existing=True)
    store.set_payload(edited, {"importance": 0.9})
    assert store.get([gone]) == []
    assert store.get([rewritten])[0].payload["access_count"] == 4
    assert store.get([imported])[0].payload["access_count"] == 6
    assert store.get([edited])[0].payload["access_count"] == 4  # the edit wrote it in
    assert store.get([edited])[0].payload["importance"] == 0.9
    assert len(store._pending) == 0  # every one of them is settled: nothing waits for a build
    store.close()
    again = open_edge(tmp_path / "q", active_max=100)
    assert [again.get([i])[0].payload["access_count"] for i in (rewritten, imported, edited)] == [4, 6, 4]
    again.close()


def test_a_leftover_count_for_an_active_copy_is_dropped_when_it_is_sealed(
    tmp_path: Path, embedder: EmbeddingProvider
) -> None:
    """A crash between a rewrite and its drop leaves an entry for a point whose copy is in the
    active shard, where counts are written in place; sealed, the stale entry must not win."""
    store, _ = sealed_store(tmp_path / "q", embedder)
    later = corpus(embedder, 100, start=100)
    store.upsert(later[:50])
    store.touch({later[0].id: {"access_count": 2}})  # in place: the point is in the active shard
    store._pending.add({later[0].id: {"access_count": 99}})  # what the crash left behind
    store.upsert(later[50:])  # seals
    assert store.wait_for_index(120)
    assert store.get([later[0].id])[0].payload["access_count"] == 2
    store.close()


def test_a_backup_snapshot_carries_the_waiting_counts(tmp_path: Path, embedder: EmbeddingProvider) -> None:
    store, ids = sealed_store(tmp_path / "q", embedder)
    store.touch({ids[0]: {"access_count": 6}})
    store.snapshot(tmp_path / "copy")
    store.close()
    copy = open_edge(tmp_path / "copy", active_max=100)
    assert copy.get([ids[0]])[0].payload["access_count"] == 6
    copy.close()


def test_the_log_is_compacted_and_survives_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "touches.jsonl"
    log = PendingTouches(path)
    for n in range(2_000):
        log.add({f"id-{n % 10}": {"access_count": n}})
    lines = path.read_text().splitlines()
    assert len(lines) <= 2 * 10 + 1_000  # rewritten as it grew, not 2,000 lines
    log.drop(["id-0"])
    with open(path, "a") as handle:
        handle.write('{"id": "id-1", "se')  # a crash mid-append
    again = PendingTouches(path)
    assert len(again) == 9 and again.get("id-0") is None
    assert again.get("id-9") == {"access_count": 1999}
    again.add({"id-new": {"access_count": 1}})  # appended after the torn line, it must read back
    assert PendingTouches(path).get("id-new") == {"access_count": 1}


def test_counts_waiting_for_memories_gone_from_every_segment_are_dropped_not_built(
    tmp_path: Path, embedder: EmbeddingProvider
) -> None:
    """Touches can name a memory deleted since its retrieve; such entries must not trigger
    rebuilds for nothing."""
    store, _ = sealed_store(tmp_path / "q", embedder)
    store.touch({f"00000000-0000-0000-0000-{n:012d}": {"access_count": 1} for n in range(150)})
    assert not store.merging and len(store._pending) == 0
    store.close()
