"""The previous memory of a session in a memory's lexical text when it is short
(``retrieval.lexical_context_max_chars``, 250), on every write path, on both engines; and each
result's explanation of its score.

The question that finds a turn often names what the turn before it said ("the zebra migration"
... "sounds good, ship it Tuesday"): the lexical side finds the second turn by its context, the
dense side and the content stay the turn's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clarity.embedding import EmbeddingProvider
from clarity.embedding.lexical import LEXICAL_VERSION
from clarity.exchange import ImportBatch
from clarity.memory import MemoryService
from clarity.models import MemoryCreate, MemoryPatch, MemoryRecord
from clarity.requests import RetrieveRequest
from clarity.store.base import VectorStore
from tests.conftest import make_settings, open_engine

FIRST = "Priya proposed the zebra migration for the ledger tables"
SECOND = "Sounds good to me, ship it on Tuesday after the freeze"
QUERY = "zebra migration"


@pytest.fixture
def ctx_service(engine: str, tmp_path: Path, embedder: EmbeddingProvider) -> Iterator[MemoryService]:
    """A service with the default settings: a short previous turn in the lexical text."""
    service = MemoryService(make_settings(tmp_path), open_engine(engine, tmp_path), embedder)
    yield service
    service.close()


def turn(content: str, session: str | None = "s1", scope: str = "ctx") -> MemoryCreate:
    return MemoryCreate(content=content, scope=scope, session_id=session)


def lexical_ids(service: MemoryService, query: str = QUERY, scope: str = "ctx") -> list[str]:
    found = service.retrieve(RetrieveRequest(query=query, scope=scope, mode="lexical", limit=10))
    return [r.memory.id for r in found.results]


def context_of(store: VectorStore, memory_id: str) -> str | None:
    return store.get([memory_id])[0].payload.get("lexical_context")


def previous_of(store: VectorStore, memory_id: str) -> str | None:
    return store.get([memory_id])[0].payload.get("previous_id")


def test_store_gives_the_next_turn_its_sessions_previous_text(ctx_service: MemoryService) -> None:
    service = ctx_service
    first = service.store(turn(FIRST))
    second = service.store(turn(SECOND))
    other_session = service.store(turn("Ship the ledger fix on Friday", session="s2"))
    no_session = service.store(turn("Tuesday works for the ledger freeze too", session=None))
    found = lexical_ids(service)
    assert first.id in found and second.id in found  # the second by its context alone
    assert other_session.id not in found and no_session.id not in found
    assert context_of(service.db, second.id) == FIRST
    assert context_of(service.db, first.id) is None
    assert previous_of(service.db, second.id) == first.id and previous_of(service.db, first.id) is None
    # The context is not content: the memory reads as it was stored.
    assert service.get(second.id).content == SECOND


def test_store_many_chains_turns_within_one_batch(ctx_service: MemoryService) -> None:
    service = ctx_service
    third = "Then the rollback plan is the old snapshot"
    results = service.store_many([turn(FIRST), turn(SECOND), turn(third)])
    found = lexical_ids(service)
    assert results[1].id in found and results[2].id not in found  # context is one turn back
    assert context_of(service.db, results[2].id) == SECOND
    # A later single store continues the session from the batch's last turn.
    later = service.store(turn("Agreed, the snapshot from Monday"))
    assert context_of(service.db, later.id) == third


def test_an_update_keeps_the_context(ctx_service: MemoryService) -> None:
    service = ctx_service
    service.store(turn(FIRST))
    second = service.store(turn(SECOND))
    service.update(second.id, MemoryPatch(content="Fine, ship it on Wednesday instead"))
    assert second.id in lexical_ids(service)
    service.update(second.id, MemoryPatch(tags=["release"]))
    assert second.id in lexical_ids(service)
    assert second.id in lexical_ids(service, "release")  # tags are still indexed


def test_an_import_recomputes_the_context(
    engine: str, tmp_path: Path, embedder: EmbeddingProvider, ctx_service: MemoryService
) -> None:
    """Exports carry records, not lexical text: importing them into an empty store chains each
    session's turns again, in creation order, whatever order the file lists them in."""
    first = ctx_service.store(turn(FIRST))
    second = ctx_service.store(turn(SECOND))
    records = [MemoryRecord.model_validate(ctx_service.get(i).model_dump()) for i in (second.id, first.id)]
    other = MemoryService(
        make_settings(tmp_path / "other"), open_engine(engine, tmp_path / "other"), embedder
    )
    try:
        summary = other.import_batch(ImportBatch(memories=records))
        assert summary.created == 2
        assert second.id in lexical_ids(other)
        assert context_of(other.db, second.id) == FIRST and context_of(other.db, first.id) is None
    finally:
        other.close()


def test_the_context_is_off_at_zero(engine: str, tmp_path: Path, embedder: EmbeddingProvider) -> None:
    settings = make_settings(tmp_path, retrieval={"lexical_context_max_chars": 0})
    service = MemoryService(settings, open_engine(engine, tmp_path), embedder)
    try:
        first = service.store(turn(FIRST))
        second = service.store(turn(SECOND))
        assert second.id not in lexical_ids(service)
        assert context_of(service.db, second.id) is None
        assert previous_of(service.db, second.id) == first.id  # the link stays: the ranking uses it
    finally:
        service.close()


def test_only_a_short_previous_turn_is_context(ctx_service: MemoryService) -> None:
    """Under 250 characters the previous turn counts whole; a longer one not at all (it matched
    as well as the answer and pushed it down on LongMemEval)."""
    service = ctx_service
    long_first = "The zebra migration " + "y" * 230  # 250 characters: too long
    assert len(long_first) == 250
    service.store(turn(long_first, session="long"))
    after_long = service.store(turn(SECOND, session="long"))
    short_first = ("Did Priya mean the zebra migration? Asking for the standup notes " + "n" * 249)[:249]
    assert len(short_first) == 249
    service.store(turn(short_first, session="short"))
    after_short = service.store(turn("Then we go on Friday", session="short"))
    assert context_of(service.db, after_long.id) is None and after_long.id not in lexical_ids(service)
    assert context_of(service.db, after_short.id) == short_first and after_short.id in lexical_ids(service)


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_each_result_says_why_it_ranked_there(service: MemoryService, mode: str) -> None:
    service.store(turn(FIRST))
    service.store(turn(SECOND))
    service.store(turn("The zebra crossing outside the office is repainted", session="s3"))
    found = service.retrieve(RetrieveRequest(query=QUERY, scope="ctx", mode=mode, limit=5)).results
    assert found
    for result in found:
        why = result.why
        assert why is not None and why.score == result.score
        assert why.relevance_part + why.recency_part + why.importance_part == pytest.approx(
            result.score, abs=2e-6
        )
        assert why.relevance_part == pytest.approx(0.8 * why.relevance, abs=2e-6)  # 1 - recency - importance
        assert why.importance_part == pytest.approx(0.1 * result.memory.importance, abs=2e-6)
        if mode == "lexical":
            assert why.dense_rank is None and why.dense_cosine is None and why.lexical_rank is not None
        if mode == "dense":
            assert why.lexical_rank is None and why.dense_rank is not None
            assert why.relevance == pytest.approx(max(0.0, why.dense_cosine or 0.0), abs=1e-4)
        if mode == "hybrid":
            # relevance = (dense on 0..1 + w * lexical + next turn + session) / (1 + w + 0.2 + 0.5)
            assert why.lexical_weight == 1.25 and why.session is not None and why.next_turn is not None
            assert why.relevance * 2.95 >= 1.25 * (why.lexical or 0.0) + why.next_turn + why.session - 1e-5
        else:
            assert why.session is None and why.next_turn is None
    best = found[0].why
    assert best is not None and (best.dense_rank == 1 or best.lexical_rank == 1)
    # REST and MCP serialise results as JSON: the explanation goes with them.
    assert "why" in found[0].model_dump(mode="json")


def test_the_dense_backfill_keeps_the_context(tmp_path: Path) -> None:
    """Memories stored before the model loaded are rewritten with their dense vectors later:
    their lexical text keeps the session's previous turn."""
    from clarity.embedding import create_embedding_provider

    settings = make_settings(tmp_path)
    embedder = create_embedding_provider(settings.embedding)  # not started: no model yet
    service = MemoryService(settings, open_engine("embedded", tmp_path), embedder)
    try:
        service.store(turn(FIRST))
        second = service.store(turn(SECOND))
        embedder.start_loading()
        embedder.wait_ready(300)
        assert service.backfill_vectors() == 2
        assert service.db.get([second.id], with_vectors=True)[0].dense is not None
        assert second.id in lexical_ids(service)
        assert context_of(service.db, second.id) == FIRST
    finally:
        service.close()


def test_an_engine_to_engine_copy_keeps_the_context(tmp_path: Path, embedder: EmbeddingProvider) -> None:
    """``clarity migrate`` re-encodes each lexical vector from the text: the stored context too."""
    from clarity.lifecycle.transfer import copy_store

    settings = make_settings(tmp_path / "a")
    source = MemoryService(settings, open_engine("embedded", tmp_path / "a"), embedder)
    target = MemoryService(settings, open_engine("server", tmp_path / "b"), embedder)
    try:
        first = source.store(turn(FIRST))
        second = source.store(turn(SECOND))
        copy_store(source.db, target.db, target.lexical.document)
        assert second.id in lexical_ids(target)
        assert context_of(target.db, second.id) == FIRST
        assert previous_of(target.db, second.id) == first.id
        assert target.db.get([second.id])[0].payload["lexical_version"] == LEXICAL_VERSION
    finally:
        source.close()
        target.close()
