"""Each memory's place in its session: the memory before it (``previous_id``) and, when that one is
short, its text in this memory's lexical text (``lexical_context``), kept true by every write.

A question often names what the turn before the answer said ("the zebra migration" ... "sounds
good, ship it Tuesday"). With the previous memory of the same session and scope in the lexical
text when it is under ``retrieval.lexical_context_max_chars`` (250) characters, and nothing when
it is longer, the research harness on both dev sets measured LoCoMo recall@10 0.732 -> 0.763
and LongMemEval turn recall@10 unchanged (0.869): a long previous turn matched as well as the
answer and pushed it down, a short one ("which one?") names what the answer is about
(scripts/bench/retrieval_round2.py, "prev<250"; docs/benchmarks.md). The dense vector and the
content stay the memory's own: the previous turn in the embedded text cost 5-10 points.

The link is kept in the payload (``clarity.embedding.lexical``), so every rebuild of the lexical
vector reproduces it, and ``previous_id`` (indexed) finds the next memory when its previous one
changes: deleted (delete, forget, eviction), its text updated, or replaced by an import. The next
memory is then linked to what now precedes it and its lexical vector rebuilt, so a forgotten
memory's words no longer find the memory after it; on the embedded engine the copy they were in
is purged as a delete's is. The ranking uses the link too (``memory.scoring``: a previous turn is
credited with its next turn's lexical match).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from clarity.embedding import LexicalEncoder
from clarity.embedding.lexical import (
    CONTEXT_KEY,
    LEXICAL_VERSION,
    PREVIOUS_KEY,
    VERSION_KEY,
    document_text,
    stored_context,
)
from clarity.models import Memory
from clarity.store.base import Hit, MemoryFilter, PointData, VectorStore

# Members of one session read to check its links after an import inserted memories into it.
SESSION_SCAN = 10_000


class Turn(NamedTuple):
    """What a link needs of a memory: its id, when it was made, its text."""

    id: str
    created: float
    content: str

    @classmethod
    def of_hit(cls, hit: Hit) -> Turn:
        created, content = hit.payload.get("created_at"), hit.payload.get("content")
        return cls(
            hit.id,
            float(created) if isinstance(created, int | float) else 0.0,
            content if isinstance(content, str) else "",
        )

    @classmethod
    def of_memory(cls, memory: Memory) -> Turn:
        return cls(memory.id, memory.created_at.timestamp(), memory.content)


@dataclass(frozen=True, slots=True)
class Link:
    """A memory's previous memory, and the text of it in its lexical text (None: none, or too long)."""

    previous_id: str | None = None
    context: str | None = None

    @classmethod
    def of(cls, payload: dict[str, Any]) -> Link:
        previous = payload.get(PREVIOUS_KEY)
        return cls(previous if isinstance(previous, str) else None, stored_context(payload))

    def apply(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``payload`` with this link (and the current lexical version: its vector is made now)."""
        out = {key: value for key, value in payload.items() if key not in (PREVIOUS_KEY, CONTEXT_KEY)}
        if self.previous_id:
            out[PREVIOUS_KEY] = self.previous_id
            if self.context:
                out[CONTEXT_KEY] = self.context
        out[VERSION_KEY] = LEXICAL_VERSION
        return out

    def text(self, memory: Memory) -> str:
        """What the lexical index sees of ``memory`` with this link."""
        return document_text(memory.content, memory.tags, self.context)


NO_LINK = Link()


def chain(before: Turn | None, members: Sequence[Turn]) -> list[Turn | None]:
    """The previous memory of each of ``members`` (one session, oldest first), ``before`` being
    the one before them all: the newest made strictly earlier (memories made at the same instant
    share theirs), as ``SessionLinks.previous`` finds it in the store."""
    out: list[Turn | None] = []
    earlier, last = before, None
    for member in members:
        if last is not None and member.created > last.created:
            earlier = last
        out.append(earlier)
        last = member
    return out


class SessionLinks:
    """Links for new memories, and their upkeep when a linked memory changes; every method is
    called under the writer's lock (``MemoryWriter``)."""

    def __init__(self, store: VectorStore, lexical: LexicalEncoder, max_chars: int) -> None:
        self.db = store
        self.lexical = lexical
        self.max_chars = max_chars

    def link_to(self, previous: Turn | None) -> Link:
        """The link to ``previous``: its id, and its text when shorter than ``max_chars`` (0: never)."""
        if previous is None:
            return NO_LINK
        short = 0 < len(previous.content) < self.max_chars
        return Link(previous.id, previous.content if short else None)

    def previous(self, scope: str, session_id: str, before: float) -> Turn | None:
        """The newest stored memory of the session in ``scope`` made before ``before`` (half a
        microsecond: a bulk store spaces its memories by one); one indexed lookup."""
        flt = MemoryFilter(scopes=[scope], session_id=session_id, created_to=before - 5e-7)
        hits = self.db.newest(flt, limit=1)
        return Turn.of_hit(hits[0]) if hits else None

    def for_batch(self, memories: Sequence[Memory]) -> list[Link]:
        """The links of memories about to be stored, each to the memory before it in its session:
        from this batch (in creation order) or else the store."""
        links = [NO_LINK] * len(memories)
        groups: dict[tuple[str, str], list[int]] = {}
        for i, memory in enumerate(memories):
            if memory.session_id:
                groups.setdefault((memory.scope, memory.session_id), []).append(i)
        for (scope, session_id), indices in groups.items():
            indices.sort(key=lambda i: memories[i].created_at)
            turns = [Turn.of_memory(memories[i]) for i in indices]
            before = self.previous(scope, session_id, turns[0].created)
            for i, previous in zip(indices, chain(before, turns), strict=True):
                links[i] = self.link_to(previous)
        return links

    def relink_next(self, ids: Sequence[str], purge: bool = False) -> int:
        """The memories whose previous memory is one of ``ids`` (deleted, its text changed, or
        replaced), linked again to what now precedes them; ``purge``: their old copies held
        deleted text. Returns how many were rewritten."""
        if not ids:
            return 0
        gone = set(ids)
        flt = MemoryFilter(previous_ids=list(ids))
        stale = []
        for hit in self.db.newest(flt, limit=4 * len(ids) + 64):
            scope, session_id = hit.payload.get("scope"), hit.payload.get("session_id")
            if hit.id in gone or not isinstance(scope, str) or not isinstance(session_id, str):
                continue
            want = self.link_to(self.previous(scope, session_id, Turn.of_hit(hit).created))
            if Link.of(hit.payload) != want:
                stale.append((hit.id, want))
        return self._rewrite(stale, purge)

    def check_sessions(self, memories: Sequence[Memory]) -> int:
        """After an import: the sessions it wrote into, from its oldest memory in each on, linked
        again where a memory now has another previous one (an import can insert memories into
        the middle of a session, before memories already stored)."""
        starts: dict[tuple[str, str], float] = {}
        for memory in memories:
            if memory.session_id:
                key = (memory.scope, memory.session_id)
                starts[key] = min(starts.get(key, float("inf")), memory.created_at.timestamp())
        stale = []
        for (scope, session_id), start in starts.items():
            flt = MemoryFilter(scopes=[scope], session_id=session_id, created_from=start - 5e-7)
            members = self.db.newest(flt, limit=SESSION_SCAN, sort="oldest")
            turns = [Turn.of_hit(hit) for hit in members]
            before = self.previous(scope, session_id, start)
            for hit, previous in zip(members, chain(before, turns), strict=True):
                want = self.link_to(previous)
                if Link.of(hit.payload) != want:
                    stale.append((hit.id, want))
        return self._rewrite(stale)

    def _rewrite(self, stale: list[tuple[str, Link]], purge: bool = False) -> int:
        """Each memory with its new link, its lexical vector made again from its payload."""
        if not stale:
            return 0
        found = {hit.id: hit for hit in self.db.get([i for i, _ in stale], with_vectors=True)}
        points = []
        for memory_id, link in stale:
            hit = found.get(memory_id)
            if hit is not None:
                payload = link.apply(hit.payload)
                points.append(PointData(hit.id, hit.dense, self.lexical.payload_document(payload), payload))
        self.db.upsert(points, replaces_existing=True, purge_replaced=purge)
        return len(points)
