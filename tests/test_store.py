"""The store contract, run identically against both engines with real embeddings."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from clarity.embedding import EmbeddingProvider, LexicalEncoder
from clarity.store.base import MemoryFilter, PointData, VectorStore

TEXTS = [
    ("The CI pipeline runs pytest with the -x flag", "command", ["ci"], "p1"),
    ("Deploys to production happen every Tuesday", "fact", ["deploy"], "p1"),
    ("The user prefers tabs over spaces in Go files", "preference", ["style"], "global"),
    ("Connection refused error E4711 came from a stale DNS cache", "error", ["network"], "p1"),
    ("Flushing the DNS cache fixed error E4711", "fix", ["network"], "p2"),
]


def make_points(embedder: EmbeddingProvider) -> list[PointData]:
    lexical = LexicalEncoder()
    vectors = embedder.embed_documents([t[0] for t in TEXTS])
    now = time.time()
    return [
        PointData(
            str(uuid.uuid4()),
            vectors[i],
            lexical.document(text),
            {"content": text, "memory_type": kind, "tags": tags, "scope": scope, "created_at": now + i},
        )
        for i, (text, kind, tags, scope) in enumerate(TEXTS)
    ]


@pytest.fixture
def filled(store: VectorStore, embedder: EmbeddingProvider) -> tuple[VectorStore, list[PointData]]:
    points = make_points(embedder)
    store.upsert(points)
    return store, points


def search(
    store: VectorStore, embedder: EmbeddingProvider, text: str, mode: str = "hybrid", **flt: object
) -> list[str]:
    lexical = LexicalEncoder()
    hits = store.search(embedder.embed_query(text), lexical.query(text), MemoryFilter(**flt), 5, mode=mode)  # type: ignore[arg-type]
    return [h.payload["content"] for h in hits]


def test_get_count_and_facets(filled: tuple[VectorStore, list[PointData]]) -> None:
    store, points = filled
    assert store.count() == 5
    assert store.count(MemoryFilter(scopes=["p1"])) == 3
    got = store.get([points[1].id, points[0].id])
    assert [h.id for h in got] == [points[1].id, points[0].id]
    assert store.facet("scope") == {"p1": 3, "global": 1, "p2": 1}
    assert store.get([str(uuid.uuid4())]) == []


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_search_modes_find_the_obvious_match(
    filled: tuple[VectorStore, list[PointData]], embedder: EmbeddingProvider, mode: str
) -> None:
    store, _ = filled
    assert search(store, embedder, "when do deploys to production happen", mode)[0] == TEXTS[1][0]


def test_filters(filled: tuple[VectorStore, list[PointData]], embedder: EmbeddingProvider) -> None:
    store, points = filled
    assert set(search(store, embedder, "E4711", scopes=["p2"])) == {TEXTS[4][0]}
    assert set(search(store, embedder, "E4711", memory_types=["error"])) == {TEXTS[3][0]}
    assert set(search(store, embedder, "anything", tags=["style", "deploy"])) == {TEXTS[1][0], TEXTS[2][0]}
    created = points[2].payload["created_at"]
    window = search(store, embedder, "anything", created_from=created, created_to=created + 1.5)
    assert set(window) == {TEXTS[2][0], TEXTS[3][0]}


def test_newest_pages_in_creation_order(filled: tuple[VectorStore, list[PointData]]) -> None:
    store, _ = filled
    first = store.newest(MemoryFilter(), limit=2)
    second = store.newest(MemoryFilter(), limit=2, offset=2)
    order = [h.payload["content"] for h in first + second]
    assert order == [TEXTS[4][0], TEXTS[3][0], TEXTS[2][0], TEXTS[1][0]]


def test_delete_and_payload_update(
    filled: tuple[VectorStore, list[PointData]], embedder: EmbeddingProvider
) -> None:
    store, points = filled
    store.delete([points[1].id])
    assert store.count() == 4
    assert TEXTS[1][0] not in search(store, embedder, "deploys to production")
    store.set_payload(points[0].id, {"importance": 0.9})
    assert store.get([points[0].id])[0].payload["importance"] == 0.9
    assert store.get([points[0].id])[0].payload["content"] == TEXTS[0][0]


def test_upsert_replacing_keeps_one_copy(
    filled: tuple[VectorStore, list[PointData]], embedder: EmbeddingProvider
) -> None:
    store, points = filled
    replacement = PointData(
        points[0].id,
        embedder.embed_documents(["Use make check for CI"])[0],
        LexicalEncoder().document("Use make check for CI"),
        {**points[0].payload, "content": "Use make check for CI"},
    )
    store.upsert([replacement], replaces_existing=True)
    assert store.count() == 5
    assert store.get([points[0].id])[0].payload["content"] == "Use make check for CI"


def test_ids_are_every_memory_once_and_only_the_ids(filled: tuple[VectorStore, list[PointData]]) -> None:
    """The ids-only read behind a typed id prefix (memory/ids.py): each stored id once, a
    deleted one gone."""
    store, points = filled
    ids = list(store.ids())
    assert sorted(ids) == sorted(p.id for p in points)
    store.delete([points[1].id])
    assert sorted(store.ids()) == sorted(p.id for p in points if p.id != points[1].id)


def test_ids_span_every_shard_of_the_embedded_engine(tmp_path: Path, embedder: EmbeddingProvider) -> None:
    """A frozen shard being indexed, the active shard, a point deleted from the frozen one (a
    tombstone) and a point rewritten into the active one (two copies on disk): every live id
    once."""
    from dataclasses import replace

    from .test_edge_tiers import corpus, open_edge, seal_by_hand

    store = open_edge(tmp_path / "q", active_max=1000, background=False)
    frozen = corpus(embedder, 20)
    seal_by_hand(store, frozen)
    active = corpus(embedder, 20, start=20)
    store.upsert(active)
    store.delete([frozen[5].id])
    store.upsert([replace(corpus(embedder, 1, start=90)[0], id=frozen[7].id)], replaces_existing=True)
    ids = list(store.ids())
    assert len(ids) == len(set(ids)) == 39
    assert set(ids) == {p.id for p in frozen + active} - {frozen[5].id}
    store.close()
