"""Each memory's link to the memory before it in its session, kept true on every write, on both
engines: when the previous memory is deleted (delete, forget, eviction) or its text changes, the
next memory's lexical text and vector are made again, so a forgotten memory's words no longer
find the memory after it. And the ranking's use of the link: a previous turn is credited with its
next turn's lexical match. And the settings of both, old config files included.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clarity.config import RetrievalSettings, load_settings
from clarity.memory import MemoryService
from clarity.memory.scoring import rescore
from clarity.models import MemoryCreate, MemoryPatch, content_hash, new_memory_id
from clarity.requests import ForgetRequest, RetrieveRequest
from clarity.store.base import Hit, PointData, VectorStore

ZERO = "Kickoff for the ledger work is on Monday morning"
FIRST = "Priya proposed the zebra migration for the ledger tables"
SECOND = "Sounds good to me, ship it on Tuesday after the freeze"


def turn(content: str, session: str | None = "s1", importance: float = 0.5, tags: list[str] | None = None):
    return MemoryCreate(
        content=content, scope="links", session_id=session, importance=importance, tags=tags or []
    )


def lexical_ids(service: MemoryService, query: str) -> list[str]:
    found = service.retrieve(RetrieveRequest(query=query, scope="links", mode="lexical", limit=10))
    return [r.memory.id for r in found.results]


def payload(store: VectorStore, memory_id: str) -> dict:
    return store.get([memory_id])[0].payload


def three_turns(service: MemoryService, first_importance: float = 0.5) -> tuple[str, str, str]:
    zero = service.store(turn(ZERO, importance=0.9)).id
    first = service.store(turn(FIRST, importance=first_importance, tags=["drop"])).id
    second = service.store(turn(SECOND, importance=0.9)).id
    assert second in lexical_ids(service, "zebra migration")  # by its context: the turn before it
    return zero, first, second


def assert_relinked_to_zero(service: MemoryService, zero: str, second: str) -> None:
    """The deleted turn's words find nothing; the next turn now carries the turn before that."""
    assert lexical_ids(service, "zebra migration") == []
    assert payload(service.db, second)["previous_id"] == zero
    assert payload(service.db, second)["lexical_context"] == ZERO
    assert second in lexical_ids(service, "kickoff")


def test_a_deleted_previous_memory_no_longer_finds_the_next(service: MemoryService) -> None:
    zero, first, second = three_turns(service)
    service.delete(first)
    assert_relinked_to_zero(service, zero, second)


def test_forgotten_previous_memories_no_longer_find_the_next(service: MemoryService) -> None:
    zero, _, second = three_turns(service)
    assert service.forget(ForgetRequest(scope="links", tags=["drop"])).deleted == 1
    assert_relinked_to_zero(service, zero, second)


def test_an_evicted_previous_memory_no_longer_finds_the_next(service: MemoryService) -> None:
    zero, _, second = three_turns(service, first_importance=0.1)
    assert service.evict_oldest(5, max_importance=0.2) == 1
    assert_relinked_to_zero(service, zero, second)


def test_the_first_memory_of_a_session_deleted_leaves_the_next_unlinked(service: MemoryService) -> None:
    first = service.store(turn(FIRST)).id
    second = service.store(turn(SECOND)).id
    service.delete(first)
    stored = payload(service.db, second)
    assert "previous_id" not in stored and "lexical_context" not in stored
    assert lexical_ids(service, "zebra migration") == []


def test_an_edited_previous_memory_gives_the_next_its_new_text(service: MemoryService) -> None:
    _, first, second = three_turns(service)
    service.update(first, MemoryPatch(content="Priya proposed the walrus plan for the ledger tables"))
    assert lexical_ids(service, "zebra migration") == []
    assert set(lexical_ids(service, "walrus plan")) == {first, second}
    assert payload(service.db, second)["previous_id"] == first
    # A change of tags alone leaves the next memory's context as it was.
    service.update(first, MemoryPatch(tags=["ledger"]))
    assert payload(service.db, second)["lexical_context"].endswith("walrus plan for the ledger tables")


def test_an_import_into_the_middle_of_a_session_links_around_it(service: MemoryService) -> None:
    """A record imported between two stored turns becomes the previous memory of the later one."""
    first = service.get(service.store(turn(FIRST)).id)
    second = service.get(service.store(turn(SECOND)).id)
    middle_text = "Which tables does the cutover cover, all of the billing ones?"
    middle = first.model_copy(
        update={
            "id": new_memory_id(),
            "content": middle_text,
            "content_hash": content_hash(middle_text),
            "created_at": first.created_at + (second.created_at - first.created_at) / 2,
            "tags": [],
        }
    )
    assert service.put_memories([middle])["created"] == 1
    assert payload(service.db, middle.id)["previous_id"] == first.id
    assert payload(service.db, second.id)["previous_id"] == middle.id
    assert payload(service.db, second.id)["lexical_context"] == middle_text
    assert set(lexical_ids(service, "zebra migration")) == {first.id, middle.id}  # not the second any more
    assert second.id in lexical_ids(service, "cutover billing")


def test_a_rewrite_of_deleted_text_marks_the_old_copy_for_the_purge(tmp_path: Path) -> None:
    """On the embedded engine a next memory's old copy, which held the deleted text, is purged as
    a deleted memory's is: its shard is marked for the rebuild."""
    from clarity.embedding import LexicalEncoder
    from tests.conftest import open_engine

    store = open_engine("embedded", tmp_path)
    lexical = LexicalEncoder()
    try:
        point = PointData(new_memory_id(), None, lexical.document("some text"), {"content": "some text"})
        store.upsert([point])
        store.upsert([point], replaces_existing=True)
        assert store.info()["purge_pending"] == 0
        store.upsert([point], replaces_existing=True, purge_replaced=True)
        assert store.info()["purge_pending"] == 1
    finally:
        store.close()


# -- the next-turn credit ------------------------------------------------------------------------


def _hit(point_id: str, score: float, lexical: float | None, previous: str | None = None) -> Hit:
    payload = {"updated_at": 1e9, "importance": 0.5, "session_id": point_id}
    if previous:
        payload["previous_id"] = previous
    return Hit(point_id, score, payload, lexical=lexical)


@pytest.mark.parametrize("weight", [0.0, 0.2])
def test_a_previous_turn_is_ranked_up_by_its_next_turns_lexical_match(weight: float) -> None:
    """The question's words are in the turn after the answer: with the credit (0.2 x that turn's
    lexical score, on 0..1) the answer passes a candidate fused a little higher."""
    cfg = RetrievalSettings(next_turn_weight=weight, session_weight=0.0)
    hits = [
        _hit("other", 1.05, 0.3),
        _hit("answer", 1.0, 0.2),
        _hit("next", 0.9, 1.0, previous="answer"),
        _hit("unrelated", 0.5, 0.9, previous="not-a-candidate"),
    ]
    ranked = rescore(hits, cfg, "hybrid", lexical_weight=1.25)
    order = [hit.id for _, hit, _ in ranked]
    parts = {hit.id: p for _, hit, p in ranked}
    if weight:
        assert order.index("answer") < order.index("other")
        assert parts["answer"].next_turn == pytest.approx(0.2)
        assert parts["other"].next_turn == 0.0 and parts["next"].next_turn == 0.0
        assert parts["answer"].relevance == pytest.approx((1.0 + 0.2) / (1 + 1.25 + 0.2), abs=1e-6)
    else:
        assert order.index("other") < order.index("answer")
        assert parts["answer"].next_turn is None


def test_each_result_says_what_its_next_turn_added(service: MemoryService) -> None:
    """End to end on both engines: the turn before a lexical match is credited, and ``why`` says
    by how much; the parts still add up to the score."""
    first = service.store(turn(FIRST)).id
    second = service.store(turn("Sounds good, the walrus rollout follows on Tuesday")).id
    service.store(turn("The walrus enclosure at the zoo is repainted", session="s2"))
    found = service.retrieve(RetrieveRequest(query="walrus rollout", scope="links", limit=5)).results
    by_id = {r.memory.id: r for r in found}
    assert first in by_id and second in by_id
    why_first, why_second = by_id[first].why, by_id[second].why
    assert why_first is not None and why_second is not None
    assert why_second.lexical and why_first.next_turn == pytest.approx(0.2 * why_second.lexical, abs=1e-4)
    for result in found:
        why = result.why
        assert why is not None
        assert why.relevance_part + why.recency_part + why.importance_part == pytest.approx(
            result.score, abs=2e-6
        )


# -- settings --------------------------------------------------------------------------------------


def test_the_defaults_are_the_measured_choice() -> None:
    cfg = RetrievalSettings()
    assert (cfg.lexical_context_max_chars, cfg.lexical_weight, cfg.next_turn_weight) == (250, 1.25, 0.2)
    assert cfg.identifier_lexical_weight > cfg.lexical_weight


def test_a_config_file_that_sets_lexical_context_chars_still_loads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``retrieval.lexical_context_chars`` (a cap, off at 0) became ``lexical_context_max_chars``
    (whole when shorter, else nothing): a file that sets the old key loads, with a warning."""
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"retrieval": {"lexical_context_chars": 1000, "limit": 7}}), encoding="utf-8"
    )
    monkeypatch.setenv("MEMORY_CONFIG_PATH", str(config))
    monkeypatch.delenv("QDRANT_URL", raising=False)
    with caplog.at_level("WARNING", logger="clarity.config"):
        settings = load_settings()
    assert settings.retrieval.limit == 7 and settings.retrieval.lexical_context_max_chars == 250
    assert [r.getMessage() for r in caplog.records if r.name == "clarity.config"] == [
        "config retrieval.lexical_context_chars: no longer a setting (the previous memory counts whole if "
        "under retrieval.lexical_context_max_chars), ignored; it can be removed"
    ]
