"""A memory's age, origin, anchors and short id, for every place that shows memories to a model.

The MCP tools' compact results (``clarity.mcp.results``) and the hooks' injected context
(``clarity.hooks.context``) say the same thing the same way: "3 days ago", "learned from a
failing `pnpm test`". Both read it from here. A foundation module, not part of ``clarity.memory``:
importing that package loads the service, numpy and the redactors, and the stdio MCP shim
imports the results module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import PurePath
from typing import Any

from clarity.models import Memory, MemoryType, Source
from clarity.text import one_line

# ``clarity.memory.ids.MIN_PREFIX``, the shortest prefix an id may be given by (tested equal):
# not imported, as ``clarity.memory`` loads the service, numpy and the redactors into the shim.
SHORT_ID_CHARS = 8
SHOWN_COMMAND_CHARS = 60  # a command named in a source: enough to recognise it
# Anchors named in a one-line answer; the rest are counted ("and 2 more"): five labels of long
# paths would double a store's answer, and the model named them itself.
SHOWN_ANCHORS = 2
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
    """What update_memory, delete_memory and `clarity delete` accept (an ambiguous one is refused)."""
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
    """Where a memory came from, in a few words: who shared it for a team memory ("shared by
    alice", the team server's user name), else what its door left in its metadata."""
    if memory.author:
        return f"shared by {memory.author}"
    said = _source(memory)
    return f"{said}, shared with the team" if memory.shared else said


def _source(memory: Memory) -> str:
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


def replaces(memory_id: str, reason: str, content: str) -> str:
    """The line that tells a model a new memory superseded an older one ("6543 -> 6544"): the
    "remember" hook's reply and store_memory's answer say it alike."""
    return f"It replaces {short_id(memory_id)} ({reason}): {content}"


def anchor_label(anchor: Mapping[str, Any]) -> str:
    """``src/cart.ts:12-30``, ``src/cart.ts (addItem)`` or ``src/cart.ts``: an anchor as stored
    (``Memory.anchors``, the JSON of ``clarity.memory.anchors.Anchor``), for a reader."""
    path, symbol, start, end = (anchor.get(key) for key in ("path", "symbol", "start", "end"))
    if symbol:
        return f"{path} ({symbol})"
    if not start:
        return str(path)
    return f"{path}:{start}" if start == end else f"{path}:{start}-{end}"


def anchored_to(anchors: Sequence[Mapping[str, Any]]) -> str:
    """``anchored to src/cart.ts:12-30`` (``and 3 more`` past ``SHOWN_ANCHORS``); "" for none."""
    if not anchors:
        return ""
    labels = [anchor_label(anchor) for anchor in anchors[:SHOWN_ANCHORS]]
    more = f" and {len(anchors) - SHOWN_ANCHORS} more" if len(anchors) > SHOWN_ANCHORS else ""
    return f"anchored to {', '.join(labels)}{more}"
