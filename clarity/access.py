"""Use counts and last-used times, written in batches off the request path.

Bumping a counter on every retrieved memory would turn each search into several writes; at a
hook's pace that costs more than the search itself. Touches are coalesced in memory and written
every few seconds (and at shutdown), so a memory retrieved 50 times in a minute costs one write.
"""

from __future__ import annotations

import logging
import threading
import time

from clarity.models import saturating_add
from clarity.store.base import VectorStore

log = logging.getLogger(__name__)


class AccessTracker:
    def __init__(self, store: VectorStore, interval: float = 10.0) -> None:
        self._store = store
        self._interval = interval
        self._pending: dict[str, tuple[int, int, float]] = {}  # id -> (base count, extra uses, last used)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="clarity-access", daemon=True)
        self._thread.start()

    def touch(self, memory_id: str, stored_count: int) -> None:
        now = time.time()
        with self._lock:
            base, extra, _ = self._pending.get(memory_id, (stored_count, 0, now))
            self._pending[memory_id] = (base, extra + 1, now)

    def pending_uses(self, memory_id: str) -> int:
        with self._lock:
            entry = self._pending.get(memory_id)
        return entry[1] if entry else 0

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, {}
        if not batch:
            return
        updates = {
            memory_id: {"access_count": saturating_add(base, extra), "last_accessed_at": last_used}
            for memory_id, (base, extra, last_used) in batch.items()
        }
        try:
            retry = self._store.touch(updates)
        except Exception as exc:  # bookkeeping: worth a log line, never a failed request
            log.warning("access stats not written: %s", exc)
            retry = set(batch)
        with self._lock:
            for memory_id in retry:
                base, extra, last_used = batch[memory_id]
                newer = self._pending.get(memory_id)
                if newer is not None:
                    extra += newer[1]
                    last_used = max(last_used, newer[2])
                self._pending[memory_id] = (base, extra, last_used)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush()
