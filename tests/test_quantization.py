"""Indexed segments walk their graph on an int8 copy of the vectors and rescore with the float32
originals (``storage.quantization``): results must keep exact cosine scores, exact search must
stay exact, and turning quantization off must keep every segment readable."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from clarity.config import IndexParams, Settings
from clarity.store.base import MemoryFilter, PointData
from clarity.store.edge import EdgeStore
from clarity.store.edge.shard import Quantization

DIM = 384


def unit_vectors(n: int, seed: int) -> np.ndarray:
    """Clustered rather than uniform, as sentence embeddings are: near neighbours are close calls,
    which is where int8 rounding would reorder them."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, DIM))
    vectors = centres[rng.integers(0, 8, n)] + 0.6 * rng.normal(size=(n, DIM))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def open_store(path: Path, quantization: Quantization, active_max: int = 300) -> EdgeStore:
    return EdgeStore(
        path,
        DIM,
        IndexParams(),
        active_max_points=active_max,
        build_in_background=False,
        quantization=quantization,
    )


def fill(store: EdgeStore, vectors: np.ndarray) -> list[str]:
    ids = [str(uuid.UUID(int=i + 1)) for i in range(len(vectors))]
    for start in range(0, len(vectors), 100):
        store.upsert(
            [
                PointData(ids[i], vectors[i].tolist(), ([i], [1.0]), {"content": f"m{i}", "scope": "p"})
                for i in range(start, min(start + 100, len(vectors)))
            ]
        )
    assert store.wait_for_index(120)
    assert store.builder.error is None
    return ids


def int8_copies(store: EdgeStore) -> list[Path]:
    return sorted(store.directory.glob("shard-*/segments/*/vector_storage-dense/quantized.data"))


def cosine_top(vectors: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    return [int(i) for i in np.argsort(-(vectors @ query), kind="stable")[:k]]


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return unit_vectors(700, seed=7)


def test_a_sealed_segment_keeps_an_int8_copy_and_answers_with_exact_scores(
    tmp_path: Path, vectors: np.ndarray
) -> None:
    store = open_store(tmp_path / "q", "int8")
    ids = fill(store, vectors)
    assert len(store.segments) >= 1, store.info()
    assert int8_copies(store), "an indexed segment was built without its int8 copy"
    index_of = {point_id: i for i, point_id in enumerate(ids)}
    queries = unit_vectors(30, seed=8)
    found = 0
    for query in queries:
        hits = store.search(query.tolist(), None, MemoryFilter(), 10, mode="dense")
        exact = store.search(query.tolist(), None, MemoryFilter(), 10, mode="dense", exact=True)
        truth = cosine_top(vectors, query, 10)
        assert [index_of[h.id] for h in exact] == truth
        for hit in [*hits, *exact]:
            # int8 scores are off by ~1e-3; these must be the originals' cosines (rescored).
            assert hit.score == pytest.approx(float(vectors[index_of[hit.id]] @ query), abs=1e-5)
        found += len({index_of[h.id] for h in hits} & set(truth))
    assert found / (10 * len(queries)) >= 0.95
    store.close()


def test_only_approximate_search_reads_the_int8_copy(tmp_path: Path) -> None:
    quantized, plain = open_store(tmp_path / "q", "int8"), open_store(tmp_path / "p", "none")
    for store, approximate_reads_int8 in ((quantized, True), (plain, False)):
        params = store._search_params(10, exact=False)
        assert params.quantization is not None
        assert params.quantization.ignore is not approximate_reads_int8
        assert store._search_params(10, exact=True).quantization.ignore is True  # type: ignore[union-attr]
        store.close()


def test_a_store_from_before_quantization_gains_its_copy_at_the_next_merge(
    tmp_path: Path, vectors: np.ndarray
) -> None:
    old = open_store(tmp_path / "q", "none")
    ids = fill(old, vectors[:600])
    assert old.segments and not int8_copies(old)
    old.close()
    upgraded = open_store(tmp_path / "q", "int8")  # the new default meets old segments
    index_of = {point_id: i for i, point_id in enumerate(ids)}
    query = unit_vectors(1, seed=10)[0]
    hits = upgraded.search(query.tolist(), None, MemoryFilter(), 10, mode="dense")
    assert [index_of[h.id] for h in hits] == cosine_top(vectors[:600], query, 10)
    for hit in hits:
        assert hit.score == pytest.approx(float(vectors[index_of[hit.id]] @ query), abs=1e-5)
    upgraded.upsert(
        [
            PointData(str(uuid.UUID(int=10_000 + i)), vectors[i].tolist(), ([i], [1.0]), {"content": "x"})
            for i in range(600, 700)
        ]
        + [
            PointData(str(uuid.UUID(int=20_000 + i)), vectors[i].tolist(), ([i], [1.0]), {"content": "y"})
            for i in range(200)
        ]
    )  # 300 new points in the active shard: a seal, whose build merges the old segments
    assert upgraded.wait_for_index(120) and upgraded.builder.error is None
    assert int8_copies(upgraded), "the merge build did not quantize the old points"
    assert upgraded.count() == 900
    upgraded.close()


def test_without_quantization_no_copy_is_built_and_int8_segments_stay_readable(
    tmp_path: Path, vectors: np.ndarray
) -> None:
    plain = open_store(tmp_path / "plain", "none")
    fill(plain, vectors)
    assert plain.segments and not int8_copies(plain)
    plain.close()

    quantized = open_store(tmp_path / "q", "int8")
    ids = fill(quantized, vectors)
    quantized.close()
    # Switched off later: the segment keeps its int8 copy on disk but searches read the originals.
    reopened = open_store(tmp_path / "q", "none")
    assert int8_copies(reopened)
    index_of = {point_id: i for i, point_id in enumerate(ids)}
    query = unit_vectors(1, seed=9)[0]
    hits = reopened.search(query.tolist(), None, MemoryFilter(), 10, mode="dense")
    assert len(hits) == 10
    for hit in hits:
        assert hit.score == pytest.approx(float(vectors[index_of[hit.id]] @ query), abs=1e-5)
    assert reopened.count() == len(vectors)
    reopened.close()


def test_the_setting_rejects_an_unknown_quantization() -> None:
    with pytest.raises(ValueError, match="quantization"):
        Settings(storage={"quantization": "int4"})


@pytest.mark.parametrize(
    "tail",
    [[], ["int4"], ["/some/source-shard"]],
    ids=["missing", "unknown", "a source where QUANTIZATION belongs (the old argv)"],
)
def test_the_build_child_refuses_argv_without_a_known_quantization(tmp_path: Path, tail: list[str]) -> None:
    command = [sys.executable, "-m", "clarity.store.edge.child", str(tmp_path), "384", "16", "200", "10000"]
    done = subprocess.run([*command, *tail], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "QUANTIZATION" in done.stderr
