"""What the hooks told Claude, and how fast they answered: a bounded in-memory log for the dashboard.

Every hook reply that carries ``additionalContext`` is recorded with the memories it names, their
scores and the exact text, so a user can see why a memory reached a prompt and correct it. Hook
call counts and latencies are kept per event. Nothing here is persisted: the log covers what
this daemon process served (the last ``capacity`` injections), which is what "recent" means.

The log shows what users typed (prompts, commands), so ``record`` redacts every text it keeps,
whole, before cutting it to the size the dashboard shows: no secret is kept here or shown there.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from clarity.redact import redact_cut
from clarity.requests import RankWhy

DEFAULT_CAPACITY = 500
LATENCY_WINDOW = 2000  # per event: the percentiles describe the most recent calls
# What an entry keeps of each text, in characters, cut after redaction.
TRIGGER_CHARS = 500
MEMORY_CHARS = 300
CONTEXT_CHARS = 10_000  # hooks.context_chars' upper limit
ID_CHARS = 200


@dataclass(frozen=True)
class InjectedMemory:
    id: str
    memory_type: str
    content: str
    score: float | None = None
    similarity: float | None = None
    why: RankWhy | None = None  # how its score was made (a retrieval's result; None in the brief)


@dataclass(frozen=True)
class Injection:
    seq: int
    at: float
    event: str
    session_id: str
    scope: str
    trigger: str  # the prompt, or a one-line summary of the tool call
    context: str  # the exact additionalContext Claude Code received
    memories: tuple[InjectedMemory, ...] = ()
    tool_name: str | None = None


@dataclass
class _EventStats:
    calls: int = 0
    injected: int = 0
    errors: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))


def _shown(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters: redacted whole, then cut (see ``redact_cut``)."""
    line = " ".join(redact_cut(text, 2 * limit).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


class InjectionLog:
    """Thread-safe: hooks record from worker threads while the dashboard reads."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._entries: deque[Injection] = deque(maxlen=capacity)
        self._events: dict[str, _EventStats] = {}
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self.started_at = time.time()

    # -- writes -----------------------------------------------------------------------------

    def record(
        self,
        event: str,
        session_id: str,
        scope: str,
        trigger: str,
        context: str,
        memories: Iterable[InjectedMemory] = (),
        tool_name: str | None = None,
    ) -> Injection:
        """Keep one reply. Every text is redacted here, whole, then cut: the prompt or command
        (``trigger``), the context, the memories' contents, the session id and names."""
        kept = tuple(replace(m, content=_shown(m.content, MEMORY_CHARS)) for m in memories)
        session_id = redact_cut(session_id, ID_CHARS)
        scope, trigger = redact_cut(scope, ID_CHARS), _shown(trigger, TRIGGER_CHARS)
        context = redact_cut(context, CONTEXT_CHARS)
        tool_name = None if tool_name is None else redact_cut(tool_name, ID_CHARS)
        with self._lock:
            entry = Injection(
                seq=next(self._seq),
                at=time.time(),
                event=event,
                session_id=session_id,
                scope=scope,
                trigger=trigger,
                context=context,
                memories=kept,
                tool_name=tool_name,
            )
            self._entries.append(entry)
            self._events.setdefault(event, _EventStats()).injected += 1
        return entry

    def record_call(self, event: str, seconds: float, failed: bool = False) -> None:
        with self._lock:
            stats = self._events.setdefault(event, _EventStats())
            stats.calls += 1
            stats.errors += int(failed)
            stats.latencies.append(seconds)

    def record_error(self, event: str) -> None:
        """A failure in work done after the reply, whose call ``record_call`` has already counted."""
        with self._lock:
            self._events.setdefault(event, _EventStats()).errors += 1

    # -- reads ------------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        with self._lock:
            return self._entries[-1].seq if self._entries else 0

    def recent(
        self, limit: int = 50, event: str | None = None, memory_id: str | None = None
    ) -> list[Injection]:
        """Newest first, optionally only one event's or only those that named one memory."""
        with self._lock:
            entries = list(self._entries)
        found = []
        for entry in reversed(entries):
            if event and entry.event != event:
                continue
            if memory_id and all(m.id != memory_id for m in entry.memories):
                continue
            found.append(entry)
            if len(found) >= limit:
                break
        return found

    def get(self, seq: int) -> Injection | None:
        with self._lock:
            return next((e for e in self._entries if e.seq == seq), None)

    def last_scope(self) -> str | None:
        with self._lock:
            return self._entries[-1].scope if self._entries else None

    def hook_stats(self) -> dict[str, dict[str, Any]]:
        """Per event: calls, replies with context, errors, and latency percentiles in ms."""
        with self._lock:
            snapshot = {
                name: (s.calls, s.injected, s.errors, sorted(s.latencies)) for name, s in self._events.items()
            }
        out: dict[str, dict[str, Any]] = {}
        for name, (calls, injected, errors, ordered) in sorted(snapshot.items()):
            out[name] = {
                "calls": calls,
                "injected": injected,
                "errors": errors,
                "p50_ms": round(_percentile(ordered, 0.50) * 1000, 1),
                "p95_ms": round(_percentile(ordered, 0.95) * 1000, 1),
                "p99_ms": round(_percentile(ordered, 0.99) * 1000, 1),
                "max_ms": round((ordered[-1] if ordered else 0.0) * 1000, 1),
            }
        return out

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
