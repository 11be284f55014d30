"""The team's memories, kept through the same ``VectorStore`` seam as a daemon's: the embedded engine
under the team server's storage root by default, a Qdrant server or cluster with QDRANT_URL
(collection ``clarity_team`` unless ``qdrant.collection`` says otherwise).

A point is a memory's latest change. A put writes the whole record (``Memory.to_payload``) with
the vector it came with; a delete replaces it with a tombstone, its id, project, author and no
text, so replicas learn of the delete and the text leaves the engine's files. Either carries
``changed_at``, the server's change time in milliseconds, indexed (``store.base.PAYLOAD_INDEXES``),
so ``GET /changes`` is one filtered scroll ordered by it (``VectorStore.newest``, sort "changed").

The server has no model: the store opens once the team's model identity is known (the first put
fixes its dimension), and stays closed until then.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clarity.models import Memory, UnreadableMemory
from clarity.store import MemoryFilter, PointData, VectorStore, open_store
from clarity.team.protocol import Change

if TYPE_CHECKING:
    from clarity.config import Settings, SettingsModel

log = logging.getLogger(__name__)

COLLECTION = "clarity_team"
CHANGED_AT = "changed_at"
DELETED = "deleted"
NO_LEXICAL: tuple[list[int], list[float]] = ([], [])  # the server never searches
# A /changes page stops growing past this many bytes of JSON (``more`` is then true), whatever
# its limit: a thousand records of the largest size the schema allows would be ~700 MB.
MAX_PAGE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Page:
    """A page of changes, whether more wait, and the time of the last change read."""

    changes: list[Change]
    more: bool
    last: int


@dataclass(frozen=True, slots=True)
class Stored:
    """What the store holds under an id, for the rules of a write (``team.writes``)."""

    author: str | None
    project: str
    deleted: bool


class Stamps:
    """Change times in milliseconds, each later than the last this process gave: a thousand puts
    in one millisecond still page apart (a cursor is a change time). ``floor``: the last stamp a
    previous run gave, so a clock stepped back at a restart does not reuse its times."""

    def __init__(self, floor: int = 0, clock: Callable[[], float] = time.time) -> None:
        self.last = floor
        self._clock = clock
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self.last = max(int(self._clock() * 1000), self.last + 1)
            return self.last

    def floor(self, stamp: int) -> None:
        """Give no time at or below ``stamp`` from now on: the last one any replica recorded."""
        with self._lock:
            self.last = max(self.last, stamp)


def team_collection(settings: SettingsModel) -> str:
    """The team's collection on a Qdrant server: ``qdrant.collection`` when set, else COLLECTION."""
    qdrant = settings.qdrant
    return qdrant.collection if "collection" in qdrant.model_fields_set else COLLECTION


def team_settings(settings: Settings, dimension: int) -> Settings:
    """The daemon's settings pointed at the team's store: its dimension, and on a Qdrant server its
    own collection, so a cluster can hold a team and other Clarity collections side by side."""
    qdrant = settings.qdrant
    return settings.model_copy(
        update={
            "embedding": settings.embedding.model_copy(update={"dimension": dimension}),
            "qdrant": qdrant.model_copy(update={"collection": team_collection(settings)}),
        }
    )


class TeamStore:
    def __init__(self, settings: Settings, dimension: int | None, opened: VectorStore | None = None) -> None:
        """``opened``: a store already open for the team's dimension (tests, copies)."""
        self._settings = settings
        self._store: VectorStore | None = opened
        self._opening = threading.Lock()  # a write and a pull may both open it
        if dimension is not None:
            self.open(dimension)

    @property
    def store(self) -> VectorStore | None:
        return self._store

    def open(self, dimension: int) -> None:
        with self._opening:
            if self._store is None:
                self._store = open_store(team_settings(self._settings, dimension))

    def _opened(self) -> VectorStore:
        if self._store is None:
            raise RuntimeError("the team store opens with the first put")
        return self._store

    def stored(self, memory_id: str) -> Stored | None:
        if self._store is None:
            return None
        hits = self._store.get([memory_id])
        if not hits:
            return None
        payload = hits[0].payload
        return Stored(payload.get("author"), str(payload.get("scope")), bool(payload.get(DELETED)))

    def put(self, memory: Memory, vector: list[float], changed_at: int) -> None:
        payload = {**memory.to_payload(), CHANGED_AT: float(changed_at), DELETED: False}
        point = PointData(memory.id, vector, NO_LEXICAL, payload)
        self._opened().upsert([point], replaces_existing=True)

    def tombstone(self, memory_id: str, project: str, author: str | None, changed_at: int) -> None:
        """The memory's record replaced by a tombstone; its text purged from the engine's files."""
        payload = {"scope": project, "author": author, CHANGED_AT: float(changed_at), DELETED: True}
        point = PointData(memory_id, None, NO_LEXICAL, payload)
        self._opened().upsert([point], replaces_existing=True, purge_replaced=True)

    def changes(self, projects: Sequence[str], since: int, limit: int) -> Page:
        """Up to ``limit`` changes in ``projects`` at or after ``since``, oldest first. A record
        that fails the schema (damage) is logged and left out, its time still passed."""
        if self._store is None:
            return Page([], False, since)
        flt = MemoryFilter(scopes=list(projects), changed_from=float(since))
        hits = self._store.newest(flt, limit=limit + 1, sort="changed")
        more = len(hits) > limit
        hits = hits[:limit]
        puts = [hit.id for hit in hits if not hit.payload.get(DELETED)]
        vectors = {hit.id: hit.dense for hit in self._store.get(puts, with_vectors=True)} if puts else {}
        changes = []
        for hit in hits:
            payload = hit.payload
            changed_at = int(payload.get(CHANGED_AT) or 0)
            project = str(payload.get("scope"))
            if payload.get(DELETED):
                changes.append(Change(id=hit.id, project=project, kind="delete", changed_at=changed_at))
                continue
            record = {k: v for k, v in payload.items() if k not in (CHANGED_AT, DELETED)}
            try:
                memory = Memory.from_payload(hit.id, record)
            except UnreadableMemory as exc:
                log.warning("team store: %s", exc)
                continue
            vector = vectors.get(hit.id)
            changes.append(
                Change(
                    id=hit.id,
                    project=project,
                    kind="put",
                    changed_at=changed_at,
                    memory=memory,
                    vector=vector,
                )
            )
        last = int(hits[-1].payload.get(CHANGED_AT) or since) if hits else since
        return Page(changes, more, last)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


def page_json(page: Page, max_bytes: int = MAX_PAGE_BYTES) -> bytes:
    """A ``ChangesResponse`` as JSON, each change serialised once. The page ends early (``more``)
    before a change that would take it past ``max_bytes``, keeping at least one; the cursor is
    then the last change sent, else the last one read."""
    parts: list[str] = []
    size = 0
    cursor, more = page.last, page.more
    for change in page.changes:
        text = change.model_dump_json()
        if parts and size + len(text) > max_bytes:
            more = True
            break
        parts.append(text)
        size += len(text) + 1
        cursor = change.changed_at
    else:
        cursor = page.last
    return ('{"changes":[' + ",".join(parts) + f'],"cursor":{cursor},"more":{json.dumps(more)}}}').encode()
