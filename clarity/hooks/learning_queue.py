"""The learner's queue: tool events wait here between the hook's reply and the learner thread.

Bounded in events and in bytes of text (``hooks.learning_queue``, ``hooks.learning_queue_bytes``),
so a flood of 1 MB tool events costs lost learning, never the daemon's memory: past either bound
the oldest waiting events are dropped and counted (/readyz reports them).
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from clarity.hooks.events import HookEvent

Gate = Callable[[HookEvent], bool]


@dataclass(frozen=True)
class QueuedEvent:
    handler: Callable[[HookEvent], None]
    event: HookEvent
    gate: Gate | None
    size: int  # bytes of text the event holds


def queued_size(event: HookEvent) -> int:
    """What a queued event keeps in memory, about: its strings plus a fixed overhead."""
    texts = [event.session_id, event.cwd, event.error or "", *(event.tool_input or {}).values()]
    return 1024 + sum(sys.getsizeof(t) for t in texts if isinstance(t, str))


class LearningQueue:
    """A FIFO bounded in events and in bytes of text: past either bound the OLDEST waiting
    events are dropped, and counted, so a flood of events costs lost learning, never memory.
    The newest event is always kept; the one being learned is not counted as waiting."""

    def __init__(self, max_events: int, max_bytes: int) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.dropped = 0
        self._items: deque[QueuedEvent] = deque()
        self._bytes = 0
        self._busy = 0
        self._closed = False
        self._cond = threading.Condition()

    def put(self, item: QueuedEvent) -> int:
        """Queue ``item``; returns how many older events it pushed out."""
        dropped = 0
        with self._cond:
            self._items.append(item)
            self._bytes += item.size
            while len(self._items) > 1 and (
                len(self._items) > self.max_events or self._bytes > self.max_bytes
            ):
                self._bytes -= self._items.popleft().size
                dropped += 1
            self.dropped += dropped
            self._cond.notify()
        return dropped

    def get(self) -> QueuedEvent | None:
        """The oldest event, waiting for one; None once closed and empty."""
        with self._cond:
            while not self._items and not self._closed:
                self._cond.wait()
            if not self._items:
                return None
            item = self._items.popleft()
            self._bytes -= item.size
            self._busy += 1
            return item

    def done(self) -> None:
        with self._cond:
            self._busy -= 1
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def unfinished(self) -> int:
        with self._cond:
            return len(self._items) + self._busy

    @property
    def held_bytes(self) -> int:
        with self._cond:
            return self._bytes

    def wait_empty(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._items and not self._busy, timeout)
