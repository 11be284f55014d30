"""Fusion against a reference written straight from the documented formulas, and both engines
ranking alike.

``fuse_shard_answers`` skips work for speed (it stops reading ids at the fusion depth and never
builds result objects); this pins that it still ranks exactly as the plain formulation: dense
lists merged by score, each shard's lexical scores put on 0..1 over that shard's ranking (best 1,
last 0) and the shards merged by that (ties: the earlier shard first), a point that two shards
return kept once at its best place in each, then the cosines put on 0..1 over the dense ranking
and fused = dense + w * lexical, 0 for a missing side.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from clarity.embedding import EmbeddingProvider, LexicalEncoder
from clarity.store.base import Fused, MemoryFilter, PointData, fuse_scores
from clarity.store.edge.reads import fuse_shard_answers

from .conftest import open_engine


@dataclass(frozen=True)
class Scored:
    """The two attributes the engine's ScoredPoint offers that fusion reads."""

    id: str
    score: float


def unit(score: float, best: float, worst: float) -> float:
    return (score - worst) / (best - worst) if best > worst else 1.0


def reference(
    dense_lists: list[list[Scored]],
    lexical_lists: list[list[Scored]],
    mode: str,
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
    places = [
        (-unit(p.score, ranking[0].score, ranking[-1].score), shard, rank, p.id)
        for shard, ranking in enumerate(lexical_lists)
        for rank, p in enumerate(ranking)
    ]
    lexical: list[tuple[str, float]] = []
    for negative, _, _, point_id in sorted(places):
        if point_id not in {i for i, _ in lexical}:
            lexical.append((point_id, -negative))
    lexical = lexical[:depth]
    if mode == "lexical":
        return lexical[:limit]
    fused: dict[str, float] = {}
    for point_id, cosine in dense:
        fused[point_id] = unit(cosine, dense[0][1], dense[-1][1])
    for point_id, score in lexical:
        fused[point_id] = fused.get(point_id, 0.0) + weight * score
    return sorted(fused.items(), key=lambda item: item[1], reverse=True)[:limit]


def shard_answers(
    rng: random.Random, shards: int, depth: int
) -> tuple[list[list[Scored]], list[list[Scored]]]:
    """Per shard, a dense and a lexical ranking over a shared id space, so shards overlap (as two
    copies of a point do after a crash) and lexical ids repeat across shards; each shard's BM25
    on its own scale."""
    ids = [f"m{i}" for i in range(depth * shards)]
    dense, lexical = [], []
    for _ in range(shards):
        picked = rng.sample(ids, depth)
        dense.append(sorted((Scored(i, rng.random()) for i in picked), key=lambda p: p.score, reverse=True))
        scale = rng.uniform(1, 20)
        chosen = rng.sample(ids, rng.randint(0, depth))
        lexical.append(
            sorted((Scored(i, scale * rng.random()) for i in chosen), key=lambda p: p.score, reverse=True)
        )
    return dense, lexical


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
@pytest.mark.parametrize("seed", range(20))
def test_fusion_matches_the_plain_formulas(mode: str, seed: int) -> None:
    rng = random.Random(seed)
    shards, depth, limit = rng.randint(1, 4), rng.choice([5, 20, 50]), rng.choice([3, 10, 20])
    weight = rng.choice([1.0, 2.0, 0.5])
    dense, lexical = shard_answers(rng, shards, depth)
    flat_dense = [p for ranking in dense for p in ranking]
    got = fuse_shard_answers(flat_dense, lexical, mode, depth, limit, weight)  # type: ignore[arg-type]
    want = reference(dense, lexical, mode, depth, limit, weight)
    assert [f.id for f in got] == [i for i, _ in want]
    assert [f.score for f in got] == pytest.approx([s for _, s in want], rel=1e-12)
    assert len(got) == min(limit, len(want))
    # Every result of the dense ranking carries its cosine; the others carry none.
    best_cosine = {p.id: max(q.score for q in flat_dense if q.id == p.id) for p in flat_dense}
    dense_ids = {i for i, _ in reference(dense, lexical, "dense", depth, depth, weight)}
    if mode == "lexical":
        dense_ids = set()  # a lexical search asks for no dense ranking
    for fused in got:
        assert fused.cosine == (best_cosine[fused.id] if fused.id in dense_ids else None)


def test_a_point_twice_in_the_dense_answers_counts_once() -> None:
    dense = [Scored("a", 0.9), Scored("b", 0.8), Scored("a", 0.7)]
    got = fuse_shard_answers(dense, [], "dense", 50, 10, 1.0)
    assert [(f.id, f.score, f.cosine, f.dense_rank) for f in got] == [("a", 0.9, 0.9, 0), ("b", 0.8, 0.8, 1)]


def test_each_shards_bm25_is_put_on_its_own_scale() -> None:
    """A small shard's BM25 (low IDF) and a big one's do not compare raw; each on 0..1 over its own
    ranking they do. A shard with one match gives it 1."""
    shard_a = [Scored("x", 12.0), Scored("a", 7.0), Scored("b", 2.0)]
    shard_b = [Scored("y", 2.0), Scored("x", 1.5)]
    shard_c = [Scored("z", 0.3)]
    got = fuse_shard_answers([], [shard_a, shard_b, shard_c], "lexical", 50, 10, 1.0)
    assert [f.id for f in got] == ["x", "y", "z", "a", "b"]
    assert [f.score for f in got] == pytest.approx([1.0, 1.0, 1.0, 0.5, 0.0])


def test_the_lexical_merge_stops_at_the_fusion_depth() -> None:
    shard_a = [Scored(f"a{i}", 5.0 - i) for i in range(5)]
    shard_b = [Scored(f"b{i}", 50.0 - 10 * i) for i in range(5)]
    got = fuse_shard_answers([], [shard_a, shard_b], "lexical", 3, 10, 1.0)
    assert [f.id for f in got] == ["a0", "b0", "a1"]


def test_score_fusion_keeps_how_far_apart_scores_are() -> None:
    """What RRF cannot: a close second on one side and a first on the other beat a first that is
    last on the other side."""
    dense = [("a", 0.80), ("b", 0.78), ("c", 0.20)]
    lexical = [("c", 1.0), ("b", 0.9), ("a", 0.0)]
    got = fuse_scores(dense, lexical, "hybrid", 10, 1.0)
    assert got[0] == Fused("b", pytest.approx(58 / 60 + 0.9), 0.78, 1, 0.9, 1)
    assert [f.id for f in got] == ["b", "a", "c"]
    assert got[1].score == pytest.approx(1.0) and got[2].score == pytest.approx(1.0)
    # The weight scales the lexical side only: at 2 the lexical leader passes the dense one.
    assert [f.id for f in fuse_scores(dense, lexical, "hybrid", 10, 2.0)] == ["b", "c", "a"]


def test_both_engines_rank_a_hybrid_search_alike(tmp_path: Path, embedder: EmbeddingProvider) -> None:
    """The same memories in the embedded and the server engine: the same order, the same fused
    scores and parts (the server engine runs in qdrant-client's in-process mode here, or against
    QDRANT_URL)."""
    lexical = LexicalEncoder()
    texts = [
        f"note {i}: the {topic} team met about {thing}"
        for i, (topic, thing) in enumerate(
            (t, x)
            for t in ("billing", "search", "deploy", "mobile", "infra")
            for x in ("K12X outages", "the Friday release", "flaky tests", "latency budgets", "costs")
        )
    ]
    vectors = embedder.embed_documents(texts)
    points = [
        PointData(f"00000000-0000-4000-8000-{i:012d}", v, lexical.document(t), {"content": t, "scope": "s"})
        for i, (t, v) in enumerate(zip(texts, vectors, strict=True))
    ]
    query = "what did the billing team decide about K12X outages"
    dense, sparse = embedder.embed_query(query), lexical.query(query)
    ranked = {}
    for engine in ("embedded", "server"):
        store = open_engine(engine, tmp_path / engine)
        store.upsert(points)
        hits = store.search(
            dense, sparse, MemoryFilter(), 10, prefetch_limit=50, exact=True, lexical_weight=1.0
        )
        # Lexical ranks among equal BM25 scores are the engine's own order: compare the scores.
        lexical_scores = [None if h.lexical is None else round(h.lexical, 4) for h in hits]
        ranked[engine] = [
            (h.id, round(h.score, 4), h.dense_rank, lexical)
            for h, lexical in zip(hits, lexical_scores, strict=True)
        ]
        store.close()
    assert ranked["embedded"] == ranked["server"]
    assert ranked["embedded"][0][0] == points[0].id  # billing + K12X outages
    assert all(
        rank is not None for _, _, rank, _ in ranked["embedded"]
    )  # 25 memories: all in the dense top 50


def test_a_query_without_lexical_terms_scores_alike_on_both_engines(
    tmp_path: Path, embedder: EmbeddingProvider
) -> None:
    """Only stop words: no lexical ranking, and both engines put the dense side on 0..1 alike."""
    lexical = LexicalEncoder()
    texts = ["the deploy runs on Fridays", "lunch is at noon", "the build uses make"]
    points = [
        PointData(f"00000000-0000-4000-8000-{i:012d}", v, lexical.document(t), {"content": t})
        for i, (t, v) in enumerate(zip(texts, embedder.embed_documents(texts), strict=True))
    ]
    query = "what is it"
    dense, sparse = embedder.embed_query(query), lexical.query(query)
    assert sparse == ([], [])
    scores = {}
    for engine in ("embedded", "server"):
        store = open_engine(engine, tmp_path / engine)
        store.upsert(points)
        scores[engine] = [
            (h.id, round(h.score, 4)) for h in store.search(dense, sparse, MemoryFilter(), 3, exact=True)
        ]
        store.close()
    assert scores["embedded"] == scores["server"]
    assert scores["embedded"][0][1] == 1.0 and scores["embedded"][-1][1] == 0.0
