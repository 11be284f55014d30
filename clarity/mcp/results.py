"""What a model reads when a memory tool answers: each memory in one short entry, not a record.

A ``retrieve_memory`` hit used to reach the model as the record's JSON: 666 characters a hit,
3,328 for five (what Claude Code 2.1.330 hands the model, measured with
``scripts/bench/mcp_results.py`` on ten realistic memories), of which the memory's text was
about 110; the rest was a content hash, the full id, three timestamps, counters and scores. Here
each memory is one entry worded like the hooks' injected context (``- [kind] text``) with what
a model acts on: how old it is in words, where it came from, and the short id that
``update_memory``, ``delete_memory`` and ``clarity delete`` accept (an ambiguous prefix is
refused by name there, never guessed): 178 characters a hit, 891 for five. The whole record is
one ``detail`` argument away.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import PurePath

from clarity.models import Memory, MemoryType, Source
from clarity.requests import ListResult, RetrieveResult
from clarity.text import one_line

# ``clarity.memory.ids.MIN_PREFIX``, the shortest prefix an id may be given by (tested equal):
# not imported, as ``clarity.memory`` loads the service, numpy and the redactors into the shim.
SHORT_ID_CHARS = 8
SHOWN_COMMAND_CHARS = 60  # a command named in a source: enough to recognise it
# (seconds, unit): an age is counted in the largest unit it reaches (weeks from two of them on,
# so "10 days ago" is not "1 week ago").
_UNITS = (
    (365 * 86_400, "year"),
    (30 * 86_400, "month"),
    (14 * 86_400, "week"),
    (86_400, "day"),
    (3_600, "hour"),
    (60, "minute"),
)
_WEEK = 7 * 86_400


def short_id(memory_id: str) -> str:
    return memory_id[:SHORT_ID_CHARS]


def age(moment: datetime, now: datetime) -> str:
    """``3 days ago``; ``just now`` under a minute (and for a clock ahead of this one)."""
    seconds = (now - moment).total_seconds()
    for size, unit in _UNITS:
        if seconds >= size:
            count = int(seconds // (_WEEK if unit == "week" else size))
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


def _command(memory: Memory, key: str) -> str | None:
    """The command a learned memory names in its metadata, unless its text already shows it."""
    value = memory.metadata.get(key)
    if not isinstance(value, str) or not value.strip():
        return None
    return None if value.strip() in memory.content else one_line(value, SHOWN_COMMAND_CHARS)


def origin(memory: Memory) -> str:
    """Where a memory came from, in a few words, from what its door left in its metadata."""
    meta = memory.metadata
    if memory.source == Source.import_:
        path = meta.get("path")
        return f"imported from {PurePath(path).name}" if isinstance(path, str) and path else "imported"
    if memory.source != Source.hook:
        return "stored explicitly"  # by store_memory, `clarity store`, the REST API or the dashboard
    if meta.get("hook_event") == "UserPromptSubmit":
        return "the user asked to remember this"
    if memory.memory_type == MemoryType.fix:
        failed = _command(memory, "failed_command")
        return f"learned from fixing a failing `{failed}`" if failed else "learned from a fix"
    if memory.memory_type == MemoryType.error:
        command = _command(memory, "command")
        return f"learned from a failing `{command}`" if command else "learned from a failing command"
    if memory.memory_type == MemoryType.command:
        command = _command(memory, "command")
        return f"learned from running `{command}`" if command else "learned from a passing run"
    return "learned from a session"


def entry(memory: Memory, now: datetime) -> str:
    """``- [kind] text (age; source; id abcd1234)``: the text's own lines kept, indented under it."""
    when = age(memory.created_at, now)
    if memory.occurrences > 1:
        when += f", seen {memory.occurrences} times, last {age(memory.updated_at, now)}"
    elif (changed := age(memory.updated_at, now)) != when:
        when += f", updated {changed}"
    text = "\n  ".join(line.rstrip() for line in memory.content.strip().splitlines() if line.strip())
    return f"- [{memory.memory_type.value}] {text} ({when}; {origin(memory)}; id {short_id(memory.id)})"


def _remarks(note: str | None, degraded: str | None, unreadable: int) -> list[str]:
    lines = [f"Note: {note}."] if note else []
    if degraded:
        lines.append(f"Note: matched by words only ({degraded}).")
    if unreadable:
        lines.append(f"Note: {unreadable} stored records could not be read (see the daemon log).")
    return lines


def _count(number: int) -> str:
    return f"{number} memor{'y' if number == 1 else 'ies'}"


def retrieve_text(result: RetrieveResult, note: str | None, now: datetime | None = None) -> str:
    """The hits best first under one line that counts them; one line when there are none."""
    now = now or datetime.now(UTC)
    remarks = _remarks(note, result.degraded, result.unreadable)
    if not result.results:
        return "\n".join(["No memories match this query.", *remarks])
    head = f"{_count(len(result.results))}, best match first:"
    return "\n".join([head, *remarks, *(entry(hit.memory, now) for hit in result.results)])


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
