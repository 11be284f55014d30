"""How memories are worded when Clarity adds them to Claude's context.

Claude reads these as facts, so they are stated as facts, one line each with how old the memory
is and where it came from (``clarity.describe``, the words the MCP tools use: "3 days ago; learned
from a failing `pnpm test`"), and its short id, the 8-character prefix the MCP tools accept, so
Claude can correct or delete a wrong one. The whole block is capped: a hook that floods the
context costs the user tokens on every prompt.

A memory anchored to code was checked against the working tree on the way out
(``ScoredMemory.anchors``): one whose file is gone or whose code was rewritten is left out
(``injectable``), and one whose code changed a little says so at the end of its line ("...; id
1a2b3c4d; may be out of date: src/cart.py (add_item) changed 2 days ago"), so Claude weighs it
against the code rather than trusting it as a fact.

Stored memories were redacted whole on the way in (``MemoryService``); where a line or the
block is cut here, the text is redacted again first (``redact_cut``), so even a record written
before redaction covered it cannot lose half a secret to the cut and show the other half.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from clarity.describe import age, origin, short_id
from clarity.models import Memory
from clarity.redact import redact_cut
from clarity.requests import ScoredMemory

HARD_CAP = 10_000  # Claude Code moves longer hook output to a file and shows a preview

T = TypeVar("T")


def line(memory: Memory, now: datetime, content_chars: int | None = None, note: str = "") -> str:
    """``- [fix] text (3 days ago; learned from a fix; id 1a2b3c4d)``, on one line; the text cut
    (redacted first) to ``content_chars`` when given; ``note`` (an anchor check's "may be out of
    date: ...") last in the brackets."""
    text = " ".join(memory.content.split())
    if content_chars is not None and len(text) > content_chars:
        text = redact_cut(text, content_chars)
    when = age(memory.created_at, now)
    if memory.occurrences > 1:
        when += f", seen {memory.occurrences} times"
    extra = f"; {' '.join(note.split())}" if note else ""
    return (
        f"- [{memory.memory_type.value}] {text} ({when}; {origin(memory)}; id {short_id(memory.id)}{extra})"
    )


def injectable(found: Sequence[ScoredMemory]) -> list[ScoredMemory]:
    """``found`` without the memories whose anchors keep them out of Claude's context (a file
    gone, the code rewritten); they stay stored, for history and the dashboard."""
    return [f for f in found if f.anchors is None or f.anchors.injectable]


def note_of(found: ScoredMemory) -> str:
    """What a check of its anchors says to a reader, or ""."""
    return found.anchors.note if found.anchors is not None else ""


def fit(
    title: str,
    items: Sequence[T],
    limit: int,
    memory_of: Callable[[T], Memory],
    now: datetime | None = None,
    notes: Callable[[T], str] | None = None,
) -> tuple[str | None, list[T]]:
    """Lines under a title, stopping before the cap, and the items whose lines are in it; (None,
    []) when nothing fits. The first line may be cut (redacted first) rather than left out.
    ``notes`` gives an item's anchor note for its line."""
    now = now or datetime.now(UTC)
    limit = min(limit, HARD_CAP)
    lines = [title]
    kept: list[T] = []
    used = len(title)
    for item in items:
        text = line(memory_of(item), now, note=notes(item) if notes else "")
        if used + 1 + len(text) > limit:
            room = limit - used - 2
            if room > 80 and not kept:  # at least part of the best memory
                lines.append(redact_cut(text, room))
                kept.append(item)
            break
        lines.append(text)
        kept.append(item)
        used += 1 + len(text)
    return ("\n".join(lines), kept) if kept else (None, [])


def clip(text: str, limit: int) -> str:
    limit = min(limit, HARD_CAP)
    return text if len(text) <= limit else redact_cut(text, limit)
