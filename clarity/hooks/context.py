"""How memories are worded when Clarity adds them to Claude's context.

Claude reads these as facts, so they are stated as facts, each with its id (so Claude can
correct or delete a wrong one with the MCP tools), and the whole block is capped: a hook that
floods the context costs the user tokens on every prompt.

Stored memories were redacted whole on the way in (``MemoryService``); where a line or the
block is cut here, the text is redacted again first (``redact_cut``), so even a record written
before redaction covered it cannot lose half a secret to the cut and show the other half.
"""

from __future__ import annotations

from collections.abc import Iterable

from clarity.models import Memory
from clarity.redact import redact_cut

HARD_CAP = 10_000  # Claude Code moves longer hook output to a file and shows a preview


def _line(memory: Memory) -> str:
    text = " ".join(memory.content.split())
    seen = f", seen {memory.occurrences} times" if memory.occurrences > 1 else ""
    return f"- [{memory.memory_type.value}] {text} (id {memory.id}{seen})"


def memory_block(title: str, memories: Iterable[Memory], limit: int) -> str | None:
    """Lines under a title, stopping before the cap; None when nothing fits."""
    limit = min(limit, HARD_CAP)
    lines = [title]
    used = len(title)
    for memory in memories:
        line = _line(memory)
        if used + 1 + len(line) > limit:
            room = limit - used - 2
            if room > 80 and len(lines) == 1:  # at least part of the best memory
                lines.append(redact_cut(line, room))
            break
        lines.append(line)
        used += 1 + len(line)
    return "\n".join(lines) if len(lines) > 1 else None


def clip(text: str, limit: int) -> str:
    limit = min(limit, HARD_CAP)
    return text if len(text) <= limit else redact_cut(text, limit)
