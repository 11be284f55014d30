"""The supersede step of a write: which older memories a new one replaces, and marking them.

``clarity.memory.supersede`` judges two texts; this module is what a write does with that
judgement (``MemoryWriter``: a single store, and the backfill of a memory stored while the model
was loading, whose neighbours could not be searched then). An older memory is marked after the
new one is in, so a crash between the two leaves both current, never the older one hidden.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from clarity.memory.records import RecordReader
from clarity.memory.supersede import Verdict, candidates, eligible, supersedes
from clarity.models import Memory, MemoryType, Source
from clarity.requests import Superseded
from clarity.store.base import Hit, VectorStore
from clarity.text import cut, one_line

SUPERSEDED_SHOWN_CHARS = 200  # an older memory's text in a store's answer, on one line
_REASON_CHARS = 200
# Neighbours a single store checks for a value it replaces. Three (``supersede.MAX_CANDIDATES``)
# missed 33 of 200 new values where a project holds many lookalike statements ("ledger-47 listens
# on 30047" ranks under "ledger-55 ..."), ten none; the detector refuses those lookalikes (two
# values differ). At 10,000 memories the search and checks take 1.35 ms p50 (three: 1.13 ms), where
# the merge search alone took 0.44 ms, of a 5.7 ms store (scripts/bench/supersede_store.py).
SUPERSEDE_NEIGHBOURS = 10
_KINDS = frozenset(kind.value for kind in MemoryType)
_SOURCES = frozenset(source.value for source in Source)


def reason(verdict: Verdict) -> str:
    """What changed, as the dashboard and a store's answer show it: ``6543 -> 6544``."""
    if verdict.rule == "negation":
        return "no longer true"
    return cut(f"{verdict.old_value} -> {verdict.new_value or 'none'}", _REASON_CHARS)


def replaced_by(records: RecordReader, memory: Memory, near: Sequence[Hit]) -> list[tuple[Memory, Verdict]]:
    """The older memories among ``near`` (cosines, best first) that ``memory`` states a new
    value for: close enough to share a subject (``candidates``), kinds that can be replaced
    (``eligible``), and the detector's verdict (``supersedes``), run on the stored text so
    that only a memory it replaces is read into a record."""
    wanted = set(candidates([(hit.id, hit.score) for hit in near], SUPERSEDE_NEIGHBOURS))
    found = []
    for hit in near:
        text, kind, source = (hit.payload.get(key) for key in ("content", "memory_type", "source"))
        if hit.id not in wanted or not isinstance(text, str) or kind not in _KINDS or source not in _SOURCES:
            continue
        if not eligible(memory.memory_type, MemoryType(kind), memory.source, Source(source)):
            continue
        verdict = supersedes(memory.content, text)
        if verdict is not None:
            olds, _ = records.read([hit])
            found += [(old, verdict) for old in olds]
    return found


def mark_superseded(
    db: VectorStore, new_id: str, replaced: Sequence[tuple[Memory, Verdict]], now: datetime
) -> None:
    """Mark each older memory replaced by ``new_id``, with the time and what changed."""
    for old, verdict in replaced:
        db.set_payload(
            old.id,
            {"superseded_by": new_id, "superseded_at": now.timestamp(), "supersede_reason": reason(verdict)},
        )


def shown(replaced: Sequence[tuple[Memory, Verdict]]) -> list[Superseded]:
    """The older memories as a store's answer names them."""
    return [
        Superseded(id=old.id, content=one_line(old.content, SUPERSEDED_SHOWN_CHARS), reason=reason(verdict))
        for old, verdict in replaced
    ]
