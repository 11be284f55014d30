"""MemoryService on both real engines with the real model: what gets stored, found and refused."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from clarity.embedding import EmbeddingProvider
from clarity.memory import MemoryNotFound, MemoryService, ScopeRequired
from clarity.models import MAX_CONTENT_CHARS, MemoryCreate, MemoryPatch
from clarity.requests import ListRequest, RetrieveRequest
from clarity.store.base import MemoryFilter
from tests.conftest import QDRANT_URL, make_settings, open_engine


def store(service: MemoryService, content: str, project: str | None = "proj-a", **fields: object):
    return service.store(MemoryCreate(content=content, **fields), project=project)  # type: ignore[arg-type]


def ask(service: MemoryService, query: str, project: str | None = "proj-a", **fields: object) -> list[str]:
    result = service.retrieve(RetrieveRequest(query=query, **fields), project=project)  # type: ignore[arg-type]
    return [r.memory.content for r in result.results]


def test_store_retrieve_roundtrip(service: MemoryService) -> None:
    created = store(service, "The staging database is called orion-stage", memory_type="fact", tags=["db"])
    assert created.status == "created"
    store(service, "Run the unit tests with `make test`", memory_type="command")
    store(service, "The user likes concise answers", memory_type="preference", scope="global")
    assert (
        ask(service, "what is the name of the staging database")[0]
        == "The staging database is called orion-stage"
    )
    fetched = service.get(created.id)
    assert fetched.scope == "proj-a" and fetched.tags == ["db"] and fetched.source.value == "manual"


def test_exact_duplicates_are_stored_once(service: MemoryService) -> None:
    first = store(service, "Use ruff for linting")
    again = store(service, "  use RUFF   for linting ", tags=["lint"], importance=0.8)
    assert again.status == "duplicate" and again.id == first.id
    memory = service.get(first.id)
    assert memory.occurrences == 2 and memory.tags == ["lint"] and memory.importance == 0.8
    assert service.list(ListRequest(scope="all")).total == 1


def test_same_text_in_another_project_is_its_own_memory(service: MemoryService) -> None:
    a = store(service, "The build uses Bazel", project="proj-a")
    b = store(service, "The build uses Bazel", project="proj-b")
    assert a.id != b.id and b.status == "created"


def test_near_duplicates_are_merged(service: MemoryService) -> None:
    first = store(service, "The deploy script lives in scripts/deploy.sh")
    near = store(service, "The deploy script lives in scripts/deploy.sh.")
    assert near.status in ("duplicate", "merged") and near.id == first.id
    distinct = store(service, "The release checklist is in docs/release.md")
    assert distinct.status == "created"
    # Nearly the same words, a different fact: numbers and versions keep memories apart.
    a = store(service, "The API rate limit is 100 requests per minute")
    b = store(service, "The API rate limit is 1000 requests per minute")
    assert a.status == b.status == "created" and a.id != b.id


def test_lexical_match_finds_exact_identifier_dense_ranks_low(service: MemoryService) -> None:
    """An error code means little to the dense model; the lexical index still puts it first."""
    target = "The coverage upload crashed because the runner disk was full (ERR7Q2K)"
    lookalikes = [
        "7Q2X",
        "7Q3K",
        "7O2K",
        "702K",
        "7Q2KX",
        "Q72K",
        "7QK2",
        "2Q7K",
        "7Q22",
        "7Q2",
        "77Q2K",
        "7Q2KK",
        "1Q2K",
        "7Q2R",
        "7W2K",
    ]
    for i, code in enumerate(lookalikes * 2):
        store(service, f"Build step {i} failed with ERR{code}", memory_type="error")
    store(service, target, memory_type="error")
    for query in ("ERR7Q2K", "what caused ERR7Q2K"):
        dense = ask(service, query, limit=40, mode="dense")
        assert target not in dense[:10], f"premise: dense alone should rank the code low, got {dense[:3]}"
        assert ask(service, query, limit=5, mode="lexical")[0] == target
        assert ask(service, query, limit=5)[0] == target


def test_scopes_default_project_global_all(service: MemoryService) -> None:
    store(service, "Project A uses PostgreSQL 16", project="proj-a")
    store(service, "Project B uses MySQL 8", project="proj-b")
    store(service, "Always answer in English", project="proj-a", scope="global")
    default = ask(service, "which database", limit=10)
    assert "Project B uses MySQL 8" not in default
    assert {"Project A uses PostgreSQL 16", "Always answer in English"} <= set(default)
    assert ask(service, "which database", scope="global", limit=10) == ["Always answer in English"]
    assert "Project B uses MySQL 8" in ask(service, "which database", scope="all", limit=10)
    assert ask(service, "which database", project=None, limit=10) == ["Always answer in English"]
    with pytest.raises(ScopeRequired, match="scope"):
        store(service, "orphan", project=None)


def test_filters_type_tags_time_and_min_score(service: MemoryService) -> None:
    store(service, "pytest -q runs the tests", memory_type="command", tags=["test"])
    store(service, "The tests are flaky on Mondays", memory_type="observation", tags=["test", "ci"])
    assert ask(service, "tests", memory_types=["command"], limit=10) == ["pytest -q runs the tests"]
    assert ask(service, "tests", tags=["ci"], limit=10) == ["The tests are flaky on Mondays"]
    future = datetime.now(UTC) + timedelta(days=1)
    assert ask(service, "tests", since=future) == []
    assert len(ask(service, "tests", until=future, limit=10)) == 2
    assert ask(service, "tests", min_score=0.999) == []


def test_update_reembeds_and_delete(service: MemoryService) -> None:
    memory = store(service, "The cache TTL is five minutes")
    updated = service.update(memory.id, MemoryPatch(content="Kubernetes namespaces are named after teams"))
    assert updated.id == memory.id
    assert (
        ask(service, "how are kubernetes namespaces named")[0]
        == "Kubernetes namespaces are named after teams"
    )
    assert service.get(memory.id).content == "Kubernetes namespaces are named after teams"
    service.update(memory.id, MemoryPatch(importance=0.9, tags=["k8s"]))
    assert service.get(memory.id).importance == 0.9
    service.delete(memory.id)
    with pytest.raises(MemoryNotFound):
        service.get(memory.id)
    with pytest.raises(MemoryNotFound):
        service.delete(memory.id)


def test_list_pages_newest_first(service: MemoryService) -> None:
    for i in range(7):
        store(service, f"Distinct note number {i} about topic {chr(65 + i)}{i * 13}")
    page1 = service.list(ListRequest(limit=3), project="proj-a")
    page2 = service.list(ListRequest(limit=3, offset=page1.next_offset or 0), project="proj-a")
    page3 = service.list(ListRequest(limit=3, offset=page2.next_offset or 0), project="proj-a")
    assert page1.total == 7 and page3.next_offset is None
    contents = [m.content for page in (page1, page2, page3) for m in page.memories]
    assert contents == [
        f"Distinct note number {i} about topic {chr(65 + i)}{i * 13}" for i in reversed(range(7))
    ]


def test_stats(service: MemoryService) -> None:
    store(service, "alpha fact")
    store(service, "beta preference", memory_type="preference", scope="global")
    stats = service.stats(project="proj-a")
    assert stats.total == 2
    assert stats.by_type == {"fact": 1, "preference": 1}
    assert stats.by_scope == {"proj-a": 1, "global": 1}
    assert stats.model_ready


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"content": ""}, "content"),
        ({"content": "   "}, "must not be empty"),
        ({"content": "x" * (MAX_CONTENT_CHARS + 1)}, f"at most {MAX_CONTENT_CHARS} characters"),
        ({"content": "ok", "memory_type": "gossip"}, "memory_type"),
        ({"content": "ok", "importance": 1.5}, "importance"),
        ({"content": "ok", "importance": -0.1}, "importance"),
        ({"content": "ok", "metadata": "not-a-dict"}, "metadata"),
        ({"content": "ok", "metadata": {"blob": "x" * 9000}}, "at most 8192 bytes"),
        ({"content": "ok", "metadata": {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}}, "nested at most"),
        ({"content": "ok", "tags": ["t"] * 40}, "tags"),
        ({"content": "ok", "colour": "red"}, "colour"),
    ],
)
def test_bad_input_is_refused_clearly_and_loses_nothing(
    service: MemoryService, fields: dict, message: str
) -> None:
    kept = store(service, "A memory that must survive bad input")
    with pytest.raises(ValidationError) as caught:
        MemoryCreate(**fields)
    assert message in str(caught.value)
    assert service.get(kept.id).content == "A memory that must survive bad input"


def test_nonexistent_and_malformed_ids(service: MemoryService) -> None:
    with pytest.raises(MemoryNotFound, match="no memory with id"):
        service.get(str(uuid.uuid4()))
    with pytest.raises(ValueError, match="not a memory id"):
        service.get("not-a-uuid")
    with pytest.raises(ValidationError, match="give at least one"):
        MemoryPatch()


def test_similarity_is_the_query_cosine_within_one_shard_and_across_shards(
    engine: str, tmp_path: Path, embedder: EmbeddingProvider
) -> None:
    """Results from the dense ranking take their cosine from the search; the others get it from
    their stored vector. Either way it must be the true cosine, whatever the layout."""
    sections = {"storage": {"active_shard_max_points": 100}}
    db = open_engine(engine, tmp_path, **sections)
    service = MemoryService(make_settings(tmp_path, **sections), db, embedder)
    teams = ["billing", "search", "deploy", "security"]
    queries = ("which tool did the billing team pick", "T17Q", "deploy pipeline T42Q")

    def true_cosine(query: str, ids: list[str]) -> dict[str, float]:
        vector = np.asarray(embedder.embed_query(query), dtype=np.float32)
        stored = {h.id: h.dense for h in db.get(ids, with_vectors=True)}
        return {i: float(np.asarray(stored[i], dtype=np.float32) @ vector) for i in ids}

    def check_retrieve() -> None:
        for query in queries:
            results = service.retrieve(RetrieveRequest(query=query, limit=8), project="proj-a").results
            assert results
            cosines = true_cosine(query, [r.memory.id for r in results])
            for result in results:
                assert result.similarity == pytest.approx(cosines[result.memory.id], abs=2e-4)

    try:
        for i in range(60):
            store(service, f"Note {i}: the {teams[i % 4]} team picked the tool T{i}Q for its pipeline")
        check_retrieve()  # one shard: the engine fuses, every cosine comes from the stored vector
        for i in range(60, 130):
            store(service, f"Note {i}: the {teams[i % 4]} team picked the tool T{i}Q for its pipeline")
        if engine == "server":
            check_retrieve()
            return
        assert db.wait_for_index(120)  # type: ignore[attr-defined]
        assert db.segments, "130 notes over a 100-point active shard must have sealed one"  # type: ignore[attr-defined]
        check_retrieve()
        # Across shards the search itself reports the cosine of what its dense ranking found.
        query = queries[0]
        hits = db.search(
            embedder.embed_query(query), service.lexical.query(query), MemoryFilter(scopes=["proj-a"]), 10
        )
        carried = {h.id: h.similarity for h in hits if h.similarity is not None}
        assert len(carried) >= 5, "the dense ranking's results came back without their cosine"
        cosines = true_cosine(query, list(carried))
        assert carried == {i: pytest.approx(c, abs=1e-5) for i, c in cosines.items()}
    finally:
        service.usage.close()
        if engine == "server" and QDRANT_URL:
            db.client.delete_collection(db.collection)  # type: ignore[attr-defined]
        db.close()
