"""Writes per user and minute (``team.writes_per_minute``): a token bucket per user that holds a
minute's worth of writes and refills at that rate, so a burst of a full minute's writes passes at
once and a steady stream at the limit never waits. Constant memory per user, where a log of each
write's time would hold up to the limit's count (a million, at the setting's maximum).

Each replica counts its own users' writes: behind a load balancer that spreads one user over N
replicas, a user may write up to N times the limit (docs/team.md).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class WriteBudget:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._rate = per_minute / 60.0  # writes per second
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # user -> (writes left, when)
        self._lock = threading.Lock()

    def _left(self, user: str, now: float) -> float:
        left, when = self._buckets.get(user, (float(self.per_minute), now))
        return min(float(self.per_minute), left + (now - when) * self._rate)

    def take(self, user: str) -> bool:
        """Spend one write of ``user``'s budget; False (nothing spent) when none is left."""
        with self._lock:
            now = self._clock()
            left = self._left(user, now)
            if left < 1.0:
                self._buckets[user] = (left, now)
                return False
            self._buckets[user] = (left - 1.0, now)
            return True

    def retry_after(self, user: str) -> int:
        """Whole seconds until ``user`` may write once more (at least 1)."""
        with self._lock:
            left = self._left(user, self._clock())
        return max(1, math.ceil((1.0 - left) / self._rate))
