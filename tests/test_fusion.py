"""Cross-shard fusion against a reference written straight from Qdrant's documented formulas.

``fuse_shard_answers`` skips work for speed (it stops reading ids at the fusion depth and never
builds result objects); this pins that it still ranks exactly as the plain formulation:
dense lists merged by score, lexical lists merged by rank (ties: the earlier shard first), a point
that two shards return kept once at its best place in each, then weighted RRF of the two, where
Qdrant's weighted term for 0-based rank r is 1 / ((r + 1) / w + k - 1).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from clarity.store.edge.reads import fuse_shard_answers


@dataclass(frozen=True)
class Scored:
    """The two attributes the engine's ScoredPoint offers that fusion reads."""

    id: str
    score: float


def reference(
    dense_lists: list[list[Scored]],
    lexical_lists: list[list[Scored]],
    mode: str,
    k: int,
    depth: int,
    limit: int,
    weight: float,
) -> list[tuple[str, float]]:
    merged = sorted((p for ranking in dense_lists for p in ranking), key=lambda p: p.score, reverse=True)
    dense: list[tuple[str, float]] = []
    for point in merged:
        if point.id not in {i for i, _ in dense}:
            dense.append((point.id, point.score))
    dense = dense[:depth]
    if mode == "dense":
        return dense[:limit]
    best: dict[str, tuple[int, int]] = {}  # id -> (rank, shard) of its best place
    for shard, ranking in enumerate(lexical_lists):
        for rank, point in enumerate(ranking):
            best[point.id] = min(best.get(point.id, (rank, shard)), (rank, shard))
    by_place = sorted(best.items(), key=lambda item: item[1])[:depth]
    lexical = [(point_id, 1 / ((rank + 1) / 1.0 + k - 1)) for point_id, (rank, _) in by_place]
    if mode == "lexical":
        return lexical[:limit]
    fused: dict[str, float] = {}
    for rank, (point_id, _) in enumerate(dense):
        fused[point_id] = fused.get(point_id, 0.0) + 1 / ((rank + 1) / 1.0 + k - 1)
    for rank, (point_id, _) in enumerate(lexical):
        fused[point_id] = fused.get(point_id, 0.0) + 1 / ((rank + 1) / weight + k - 1)
    return sorted(fused.items(), key=lambda item: item[1], reverse=True)[:limit]


def shard_answers(
    rng: random.Random, shards: int, depth: int
) -> tuple[list[list[Scored]], list[list[Scored]]]:
    """Per shard, a dense and a lexical ranking over a shared id space, so shards overlap (as two
    copies of a point do after a crash) and lexical ids repeat across shards."""
    ids = [f"m{i}" for i in range(depth * shards)]
    dense, lexical = [], []
    for _ in range(shards):
        picked = rng.sample(ids, depth)
        dense.append(sorted((Scored(i, rng.random()) for i in picked), key=lambda p: p.score, reverse=True))
        lexical.append([Scored(i, 0.0) for i in rng.sample(ids, rng.randint(0, depth))])
    return dense, lexical


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
@pytest.mark.parametrize("seed", range(20))
def test_fusion_matches_the_plain_formulas(mode: str, seed: int) -> None:
    rng = random.Random(seed)
    shards, depth, limit = rng.randint(1, 4), rng.choice([5, 20, 50]), rng.choice([3, 10, 20])
    k, weight = rng.choice([1, 10, 60]), rng.choice([1.0, 3.0, 0.5])
    dense, lexical = shard_answers(rng, shards, depth)
    flat_dense = [p for ranking in dense for p in ranking]
    got = fuse_shard_answers(flat_dense, lexical, mode, k, depth, limit, weight)  # type: ignore[arg-type]
    want = reference(dense, lexical, mode, k, depth, limit, weight)
    assert [i for i, _, _ in got] == [i for i, _ in want]
    assert [s for _, s, _ in got] == pytest.approx([s for _, s in want], rel=1e-12)
    assert len(got) == min(limit, len(want))
    # Every result of the dense ranking carries its cosine; the others carry none.
    best_cosine = {p.id: max(q.score for q in flat_dense if q.id == p.id) for p in flat_dense}
    dense_ids = {i for i, _ in reference(dense, lexical, "dense", k, depth, depth, weight)}
    if mode == "lexical":
        dense_ids = set()  # a lexical search asks for no dense ranking
    for point_id, _, cosine in got:
        assert cosine == (best_cosine[point_id] if point_id in dense_ids else None)


def test_a_point_twice_in_the_dense_answers_counts_once() -> None:
    dense = [Scored("a", 0.9), Scored("b", 0.8), Scored("a", 0.7)]
    got = fuse_shard_answers(dense, [], "dense", 10, 50, 10, 1.0)
    assert got == [("a", 0.9, 0.9), ("b", 0.8, 0.8)]


def test_a_point_two_shards_return_lexically_counts_once_at_its_best_rank() -> None:
    shard_a = [Scored("x", 0.0), Scored("a", 0.0), Scored("b", 0.0)]
    shard_b = [Scored("y", 0.0), Scored("x", 0.0)]
    got = fuse_shard_answers([], [shard_a, shard_b], "lexical", 10, 50, 10, 1.0)
    assert [i for i, _, _ in got] == ["x", "y", "a", "b"]
    assert [s for _, s, _ in got] == pytest.approx([1 / 10, 1 / 10, 1 / 11, 1 / 12])


def test_the_lexical_merge_stops_at_the_fusion_depth() -> None:
    shard_a = [Scored(f"a{i}", 0.0) for i in range(5)]
    shard_b = [Scored(f"b{i}", 0.0) for i in range(5)]
    got = fuse_shard_answers([], [shard_a, shard_b], "lexical", 10, 3, 10, 1.0)
    assert [i for i, _, _ in got] == ["a0", "b0", "a1"]
