"""What a model reads when a memory tool answers: each memory in one short entry, not a record.

A ``retrieve_memory`` hit used to reach the model as the record's JSON: 666 characters a hit,
3,328 for five (what Claude Code 2.1.330 hands the model, measured with
``scripts/bench/mcp_results.py`` on ten realistic memories), of which the memory's text was
about 110; the rest was a content hash, the full id, three timestamps, counters and scores. Here
each memory is one entry worded like the hooks' injected context (``- [kind] text``) with what
a model acts on: how old it is in words, where it came from, and the short id that
``update_memory``, ``delete_memory`` and ``clarity delete`` accept (an ambiguous prefix is
refused by name there, never guessed): 178 characters a hit, 891 for five. A store or an update
answers in one line too (136 and 145 characters instead of the record's 580 and 531; 149 for a
store anchored to ``src/cart.ts:12-30``, which the answer names). The whole record is one
``detail`` argument away.

A hit whose anchored code changed or was deleted since says so in its entry, before its id
("may be out of date: src/cart.ts changed 2 days ago", "src/cart.ts was deleted"): a search still
returns such a memory, as history, and the model reads the caveat with it. The whole anchor
report (each anchor's state, the change's size) is in the ``detail`` view.

A search whose hits are all under the relevance cut (``clarity.relevance``) says "Nothing
relevant" first, so a model does not take the best of unrelated memories for an answer: a
nonsense query's best match scored 0.55 as a fused score, as high as real hits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from clarity.describe import age, anchored_to, origin, replaces, short_id
from clarity.models import GLOBAL_SCOPE, Memory
from clarity.relevance import identifiers, is_relevant
from clarity.requests import ListResult, RetrieveResult, ScoredMemory, StoreResult
from clarity.text import one_line

# The closest matches still listed under "nothing relevant", marked weak: a search is asked for,
# and below the cut the answer is still among the closest few for part of the questions that
# hold one (scripts/bench/relevance.py, "weak_hold_evidence"); a related question about a terse
# project memory can score under the cut ("code style preferences": 0.25).
WEAK_SHOWN = 2
SHOWN_CONTENT_CHARS = 200  # a stored or updated memory's text, on one line, in the confirmation


def entry(memory: Memory, now: datetime, note: str = "") -> str:
    """``- [kind] text (age; source; id abcd1234)``: the text's own lines kept, indented under it.
    ``note`` is what its anchors say now ("may be out of date: src/cart.ts changed 2 days ago",
    "src/cart.ts was deleted"), put before the id so the caveat is read with the memory."""
    when = age(memory.created_at, now)
    if memory.occurrences > 1:
        when += f", seen {memory.occurrences} times, last {age(memory.updated_at, now)}"
    elif (changed := age(memory.updated_at, now)) != when:
        when += f", updated {changed}"
    text = "\n  ".join(line.rstrip() for line in memory.content.strip().splitlines() if line.strip())
    if memory.superseded_by:  # listed only when a caller asked for superseded memories
        when += f"; superseded by {short_id(memory.superseded_by)}"
    said = f"{origin(memory)}; {note}" if note else origin(memory)
    return f"- [{memory.memory_type.value}] {text} ({when}; {said}; id {short_id(memory.id)})"


def hit_entry(hit: ScoredMemory, now: datetime) -> str:
    """A search hit's entry, with its anchors' note when a check found something to say."""
    return entry(hit.memory, now, hit.anchors.note if hit.anchors else "")


def _remarks(note: str | None, degraded: str | None, unreadable: int) -> list[str]:
    lines = [f"Note: {note}."] if note else []
    if degraded:
        lines.append(f"Note: matched by words only ({degraded}).")
    if unreadable:
        lines.append(f"Note: {unreadable} stored records could not be read (see the daemon log).")
    return lines


def _count(number: int) -> str:
    return f"{number} memor{'y' if number == 1 else 'ies'}"


def retrieve_text(
    result: RetrieveResult, note: str | None, query: str, cut: float, now: datetime | None = None
) -> str:
    """The hits best first under one line that counts them; one line when there are none, and
    "nothing relevant" when none is relevant to the query (``clarity.relevance``): the closest
    cosine and the cut then say how far off the search was, and the closest few follow, marked
    weak (see ``WEAK_SHOWN``). When some hits are relevant, all are listed as before: below the
    cut an answer still turns up (see ``scripts/bench/relevance.py``)."""
    now = now or datetime.now(UTC)
    remarks = _remarks(note, result.degraded, result.unreadable)
    if not result.results:
        return "\n".join(["No memories match this query.", *remarks])
    names = identifiers(query)
    if not any(is_relevant(hit.similarity, hit.memory.content, names, cut) for hit in result.results):
        closest = max(hit.similarity or 0.0 for hit in result.results)
        head = f"Nothing relevant to this query (closest match: {closest:.2f} similarity, below {cut:.2f})"
        weak = (hit_entry(hit, now) for hit in result.results[:WEAK_SHOWN])
        return "\n".join([f"{head}. Closest weak matches:", *remarks, *weak])
    head = f"{_count(len(result.results))}, best match first:"
    return "\n".join([head, *remarks, *(hit_entry(hit, now) for hit in result.results)])


def list_text(result: ListResult, note: str | None, now: datetime | None = None) -> str:
    """A page of memories, newest first, with where the next page starts."""
    now = now or datetime.now(UTC)
    remarks = _remarks(note, None, result.unreadable)
    memories: Sequence[Memory] = result.memories
    if not memories:
        where = f" past offset {result.offset} (of {result.total})" if result.offset else ""
        return "\n".join([f"No memories{where}.", *remarks])
    first = result.offset + 1
    head = f"Memories {first}-{result.offset + len(memories)} of {result.total}, newest first"
    head += f" (next page: offset={result.next_offset}):" if result.next_offset is not None else ":"
    return "\n".join([head, *remarks, *(entry(memory, now) for memory in memories)])


def _where(memory: Memory) -> str:
    return "for every project" if memory.scope == GLOBAL_SCOPE else "for this project"


def store_text(result: StoreResult, note: str | None, now: datetime | None = None) -> str:
    """One line per outcome: what was kept, under which short id, and where; a near duplicate
    names the memory it was merged into (its text, which may differ from what was sent)."""
    now = now or datetime.now(UTC)
    memory = result.memory
    kind, short, text = (
        memory.memory_type.value,
        short_id(memory.id),
        one_line(memory.content, SHOWN_CONTENT_CHARS),
    )
    anchored = f", {anchored_to(memory.anchors)}" if memory.anchors else ""
    if result.status == "created":
        head = f"Stored {kind} {short} {_where(memory)}{anchored}: {text}"
    elif result.status == "duplicate":
        head = f"Already stored as {short} ({kind}, {age(memory.created_at, now)}{anchored}): {text}"
    else:
        head = (
            f"Merged into {short}, a near duplicate ({kind}, {age(memory.created_at, now)}, "
            f"seen {memory.occurrences} times{anchored}): {text}"
        )
    replaced = [replaces(old.id, old.reason, old.content) for old in result.superseded]
    return "\n".join([head, *replaced, *_remarks(note, None, 0)])


def update_text(memory: Memory, note: str | None = None) -> str:
    """The memory as it now stands, in one line, and what became of its sharing (``note``)."""
    text = one_line(memory.content, SHOWN_CONTENT_CHARS)
    return "\n".join(
        [f"Updated {memory.memory_type.value} {short_id(memory.id)}: {text}", *_remarks(note, None, 0)]
    )
