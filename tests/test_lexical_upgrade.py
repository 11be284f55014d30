"""Lexical vectors an older encoding made (BM25 with qdrant_edge's defaults, no
``lexical_version``) are re-encoded in the background with the current one, on both engines:
batch by batch, searches answering meanwhile, resuming after an interruption; the embedded
engine's indexed segments by a build, which a ``kill -9`` of the daemon only delays.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from qdrant_edge import Bm25, PointVectors, SparseVector, UpdateOperation

from clarity.config import IndexParams
from clarity.embedding import EmbeddingProvider, LexicalEncoder
from clarity.embedding.lexical import LEXICAL_VERSION, payload_text
from clarity.memory import MemoryService
from clarity.memory.lexical_upgrade import stale_count, upgrade_lexical
from clarity.models import MemoryCreate, new_memory_id
from clarity.store.base import LEXICAL, MemoryFilter, PointData, VectorStore
from clarity.store.edge import EdgeStore
from tests.conftest import make_settings, open_engine

OLD = Bm25()  # what every version before LEXICAL_VERSION 2 encoded with
WORDS = ["zebra", "walrus", "falcon", "otter", "badger", "heron", "lynx", "marten"]


def old_record(word: str, legacy_context: str | None = None) -> PointData:
    """A memory as an older version wrote it: no version, BM25 defaults, and (before ids were
    kept) perhaps a lexical context without its previous memory's id."""
    payload: dict[str, Any] = {"content": f"the {word} migration runs on Tuesday", "tags": [], "scope": "up"}
    text = payload["content"]
    if legacy_context:
        payload["lexical_context"] = legacy_context
        text = f"{text} {legacy_context}"
    sparse = OLD.embed_document(text)
    return PointData(new_memory_id(), None, (list(sparse.indices), list(sparse.values)), payload)


def stored_lexical(store: VectorStore, point_id: str) -> tuple[list[int], list[float]]:
    """The lexical vector the engine holds for a point (the newest copy)."""
    if isinstance(store, EdgeStore):
        for shard in store.layout.view.shards:
            found = shard.handle.retrieve([point_id], with_payload=False, with_vector=True)
            if found:
                vector = found[0].vector.get(LEXICAL)
                return (list(vector.indices), list(vector.values)) if vector is not None else ([], [])
        raise AssertionError(f"{point_id} not stored")
    record = store.client.retrieve(store.collection, [point_id], with_vectors=[LEXICAL])[0]  # type: ignore[attr-defined]
    vector = record.vector[LEXICAL]
    return list(vector.indices), list(vector.values)


def assert_current(store: VectorStore, point_ids: list[str]) -> None:
    lexical = LexicalEncoder()
    for hit in store.get(point_ids):
        assert hit.payload["lexical_version"] == LEXICAL_VERSION
        indices, values = stored_lexical(store, hit.id)
        want_indices, want_values = lexical.document(payload_text(hit.payload))
        want = dict(zip(want_indices, want_values, strict=True))
        assert dict(zip(indices, values, strict=True)) == pytest.approx(want, rel=1e-6)


def found(store: VectorStore, query: str) -> set[str]:
    sparse = LexicalEncoder().query(query)
    return {hit.id for hit in store.search(None, sparse, MemoryFilter(), 20, mode="lexical")}


def _edge(root: Path, purge_delay: float = 0.2, active_max: int = 100) -> EdgeStore:
    return EdgeStore(
        root,
        384,
        IndexParams(),
        active_max_points=active_max,
        purge_delay_seconds=purge_delay,
        quantization="none",
    )


def _wait_until_current(store: VectorStore, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while stale_count(store) and time.monotonic() < deadline:
        if isinstance(store, EdgeStore):
            store.wait_for_index(timeout)
        time.sleep(0.2)
    assert stale_count(store) == 0


@pytest.fixture
def upgrading(engine: str, tmp_path: Path, embedder: EmbeddingProvider) -> Iterator[MemoryService]:
    """A service whose embedded engine starts a purge's rebuild 0.2 s after it is asked for."""
    store = _edge(tmp_path / "q", active_max=5_000) if engine == "embedded" else open_engine(engine, tmp_path)
    service = MemoryService(make_settings(tmp_path), store, embedder)
    yield service
    service.close()


def test_old_records_are_re_encoded_and_legacy_contexts_dropped(upgrading: MemoryService) -> None:
    service = upgrading
    points = [old_record(word) for word in WORDS[:4]]
    legacy = old_record("heron", legacy_context="Kickoff with the quokka team")
    service.db.upsert([*points, legacy])
    assert found(service.db, "quokka") == {legacy.id}  # the old context, from a memory not kept track of
    assert stale_count(service.db) == 5
    # The server engine re-encodes in place; the embedded one has a build rewrite its shards.
    assert service.upgrade_lexical() == (5 if service.db.engine == "server" else 0)
    _wait_until_current(service.db)
    assert_current(service.db, [p.id for p in [*points, legacy]])
    assert "lexical_context" not in service.db.get([legacy.id])[0].payload
    assert found(service.db, "quokka") == set()
    assert found(service.db, "heron migration") >= {legacy.id}
    assert service.upgrade_lexical() == 0  # done: nothing more to do
    # What this version writes is current from the start.
    stored = service.store(MemoryCreate(content="the ibis migration runs on Friday", scope="up"))
    assert stale_count(service.db) == 0 and stored.id in found(service.db, "ibis")


def test_an_interrupted_upgrade_resumes_and_searches_go_on(
    tmp_path: Path, embedder: EmbeddingProvider
) -> None:
    """The server engine, batch by batch: stopped after one, the next run does the rest (the
    embedded engine's rebuild survives a kill: ``test_old_segments_are_rebuilt_even_after_a_kill``)."""
    service = MemoryService(make_settings(tmp_path), open_engine("server", tmp_path), embedder)
    points = [old_record(word) for word in WORDS[:6]]
    service.db.upsert(points)
    batches = []

    def stop_after_one() -> bool:
        return len(batches) > 0

    def hold() -> AbstractContextManager[None]:
        batches.append(1)
        return service._writer.paused()

    try:
        assert upgrade_lexical(service.db, service.lexical, hold, stop_after_one, batch=2) == 2
        assert stale_count(service.db) == 4
        assert found(service.db, "migration") == {p.id for p in points}  # old and new vectors answer alike
        assert service.upgrade_lexical() == 4
        assert stale_count(service.db) == 0
        assert_current(service.db, [p.id for p in points])
    finally:
        service.close()


def test_a_build_re_encodes_what_it_copies(tmp_path: Path) -> None:
    """A seal's build brings the old records it copies to the current encoding; a point stored
    without a lexical vector (the team server's records) keeps none."""
    store = _edge(tmp_path / "q")
    try:
        points = [old_record(f"{WORDS[i % len(WORDS)]}{i}") for i in range(120)]
        bare = PointData(new_memory_id(), None, ([], []), {"content": "the okapi migration", "scope": "up"})
        store.upsert([bare, *points])  # the active shard fills and is sealed
        assert store.wait_for_index(120)
        assert store.info()["shards"]["segments"], "a segment was built"
        _wait_until_current(store)
        assert_current(store, [p.id for p in points[:5]])
        assert stored_lexical(store, bare.id) == ([], [])
    finally:
        store.close()


def test_old_segments_are_rebuilt_even_after_a_kill(tmp_path: Path) -> None:
    """Old records in an indexed segment are not re-encoded in place (they would leave the
    index): the segment is marked for a rebuild, which survives a kill -9 of the process."""
    root = tmp_path / "q"
    store = _edge(root)
    points = [old_record(f"{WORDS[i % len(WORDS)]}{i}") for i in range(120)]
    try:
        store.upsert(points)
        assert store.wait_for_index(120)
        # Make the segment's records look as an older version left them.
        segment = store.layout.segments[0]
        old_ids = [
            p.id
            for p in points[:100]
            if segment.handle.retrieve([p.id], with_payload=False, with_vector=False)
        ]
        by_id = {p.id: p for p in points}
        segment.handle.update(
            UpdateOperation.update_vectors(
                [PointVectors(i, {LEXICAL: SparseVector(*by_id[i].sparse)}) for i in old_ids]
            )
        )
        segment.handle.update(UpdateOperation.delete_payload(old_ids, ["lexical_version"]))
        assert stale_count(store) == len(old_ids) > 50
    finally:
        store.close()
    # A daemon starts the upgrade, then dies at once (kill -9), before the segment's rebuild.
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from clarity.embedding import LexicalEncoder\n"
        "from clarity.embedding.lexical import LEXICAL_VERSION\n"
        "from tests.test_lexical_upgrade import _edge\n"
        "store = _edge(Path(sys.argv[1]), purge_delay=60.0)\n"
        "store.reencode_lexical(LexicalEncoder().reencode, LEXICAL_VERSION, 1000)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run([sys.executable, "-c", script, str(root)], cwd=Path(__file__).parent.parent)
    assert killed.returncode == -9
    store = _edge(root)  # the next start: the rebuild was recorded, so it runs now
    try:
        assert store.info()["purge_pending"] >= 1 or store.info()["index_state"] == "building"
        _wait_until_current(store)
        assert_current(store, old_ids[:10])
        assert found(store, "zebra0 migration") >= {points[0].id}
    finally:
        store.close()
