"""The team server's record side (``clarity.team.store``) on both real engines: puts and tombstones
scrolled in change order by the indexed ``changed_at`` (``VectorStore.newest`` sort "changed",
``MemoryFilter.changed_from``), across the embedded engine's shards too, and a page's JSON
capped in bytes."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from clarity.config import IndexParams
from clarity.models import Memory
from clarity.store.base import MemoryFilter, VectorStore
from clarity.store.edge import EdgeStore
from clarity.team.protocol import Change, ChangesResponse
from clarity.team.store import Page, Stamps, TeamStore, page_json

from .conftest import make_settings
from .team_util import DIMENSION, memory, vector

DIM = DIMENSION  # the ``store`` fixture's engines are made for the default model


def _team(store: VectorStore, tmp_path: Path) -> TeamStore:
    return TeamStore(make_settings(tmp_path), None, opened=store)


def _put(team: TeamStore, content: str, project: str, changed_at: int, memory_id: str | None = None) -> str:
    record = Memory.model_validate({**memory(content, project, id=memory_id), "author": "alice"})
    team.put(record, vector(changed_at, DIM), changed_at)
    return record.id


def test_changes_in_change_order_with_tombstones(store: VectorStore, engine: str, tmp_path: Path) -> None:
    """On both engines (``store``: the embedded one, and a Qdrant server at QDRANT_URL or
    qdrant-client's in-process twin)."""
    team = _team(store, tmp_path)
    a = _put(team, "first", "p", 1_000)
    b = _put(team, "second", "p", 1_001)
    _put(team, "elsewhere", "q", 1_002)
    c = _put(team, "third", "p", 1_003)
    team.tombstone(a, "p", "alice", 1_004)
    assert _put(team, "second, edited", "p", 1_005, memory_id=b) == b
    page = team.changes(["p"], since=0, limit=10)
    assert [(ch.id, ch.kind, ch.changed_at) for ch in page.changes] == [
        (c, "put", 1_003),
        (a, "delete", 1_004),
        (b, "put", 1_005),  # an edit is one change, at its latest time
    ], engine
    tombstone = page.changes[1]
    assert tombstone.memory is None and tombstone.vector is None
    assert store.get([a])[0].payload.get("content") is None  # the text left the record
    assert page.changes[2].memory is not None and page.changes[2].memory.content == "second, edited"
    assert page.changes[2].vector is not None and len(page.changes[2].vector) == DIM
    since = team.changes(["p", "q"], since=1_002, limit=2)
    assert [ch.changed_at for ch in since.changes] == [1_002, 1_003]  # since is inclusive
    assert since.more and since.last == 1_003
    assert store.count(MemoryFilter(changed_from=1_004.0)) == 2


def test_change_order_holds_across_shards(tmp_path: Path) -> None:
    """Past its active shard's size the embedded engine seals shards; a scroll by change time
    merges them, and an id rewritten later is read once, at its latest change."""
    store = EdgeStore(tmp_path / "edge", DIM, IndexParams(), active_max_points=5, build_in_background=False)
    team = _team(store, tmp_path)
    try:
        ids = [_put(team, f"fact {i}", "p", 2_000 + i) for i in range(8)]
        assert len(store.layout.segments) + (1 if store.layout.sealing else 0) >= 1
        team.tombstone(ids[0], "p", "alice", 3_000)
        page = team.changes(["p"], since=0, limit=100)
        assert [ch.changed_at for ch in page.changes] == [*range(2_001, 2_008), 3_000]
        assert [ch.id for ch in page.changes][-1] == ids[0]
    finally:
        team.close()


def test_a_page_stops_at_its_byte_cap_and_its_cursor_follows() -> None:
    team_page = Page([], more=False, last=7)
    assert json.loads(page_json(team_page)) == {"changes": [], "cursor": 7, "more": False}
    changes = [Change(id=str(uuid.uuid4()), project="p", kind="delete", changed_at=10 + i) for i in range(5)]
    whole = ChangesResponse.model_validate_json(page_json(Page(changes, more=False, last=14)))
    assert (len(whole.changes), whole.cursor, whole.more) == (5, 14, False)
    one = len(changes[0].model_dump_json())
    cut = ChangesResponse.model_validate_json(
        page_json(Page(changes, more=False, last=14), max_bytes=2 * one + 1)
    )
    assert (len(cut.changes), cut.cursor, cut.more) == (2, 11, True)
    tiny = ChangesResponse.model_validate_json(page_json(Page(changes, more=False, last=14), max_bytes=1))
    assert (len(tiny.changes), tiny.cursor, tiny.more) == (1, 10, True)  # at least one, so pages advance


def test_stamps_advance_when_the_clock_does_not() -> None:
    stamps = Stamps(floor=5_000, clock=lambda: 1.0)  # a clock stepped back past the last run's stamps
    assert [stamps.next() for _ in range(3)] == [5_001, 5_002, 5_003]
    ticking = Stamps(clock=lambda: 1_700_000_000.123)
    assert ticking.next() == 1_700_000_000_123
