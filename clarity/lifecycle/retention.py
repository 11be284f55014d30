"""The storage cap: warn before the embedded engine's files reach ``storage.max_bytes``, and past
it forget the oldest low-importance memories first, so the disk never fills up unnoticed.

Only what holds the memories counts: the live shards in the engine's directory, by the blocks
they really occupy (the engine preallocates sparse files whose apparent size says nothing).
Backups, index-build copies, logs and caches live outside it or are skipped, since an eviction
triggered by a transient copy deletes memories for nothing; and while a backup runs no eviction
happens at all, so a backup never races the cap for the memories it is saving. A deleted
point's space comes back only when the engine compacts, so how many memories to drop is
estimated from the average size per memory rather than by deleting until the number moves.
"""

from __future__ import annotations

import logging
import math
import os
import stat
import threading
import time
from pathlib import Path

from pydantic import BaseModel, Field

from clarity.config import Settings
from clarity.lifecycle.backup import backup_running
from clarity.memory import MemoryService
from clarity.store.edge.manifest import live_shards
from clarity.store.space import InsufficientStorage

log = logging.getLogger(__name__)

# Importance ceilings tried in turn: everything at or below 0.2 goes (oldest first) before
# anything at 0.4, and so on; preferences and decisions are usually stored well above these.
_TIERS = (0.2, 0.4, 0.6, 0.8, 1.0)
_TARGET = 0.8  # after an eviction, aim this far below the cap so the next one is not immediate


def disk_usage(root: Path) -> int:
    """Bytes the memories take. Transient copies are left out, since a merge copies up to a whole
    segment and that must not make the cap evict memories: index-build copies (``build-*``) and,
    in the embedded engine's directory, shards its manifest no longer lists (retired by a swap)."""
    total = 0
    for directory, subdirectories, files in os.walk(root):
        live = live_shards(Path(directory))
        subdirectories[:] = [
            name
            for name in subdirectories
            if not name.startswith("build-") and (live is None or name in live)
        ]
        for name in files:
            try:
                info = os.lstat(os.path.join(directory, name))
            except OSError:
                continue  # a file removed while walking (a retired shard)
            if stat.S_ISREG(info.st_mode):
                total += info.st_blocks * 512
    return total


class SizeReport(BaseModel):
    used_bytes: int
    max_bytes: int
    state: str  # ok, warning, over, unlimited, remote (the server engine: its disk is the server's)
    path: str = ""
    checked_at: float = Field(default_factory=time.time)
    evicted: int = 0

    @property
    def share(self) -> float:
        return self.used_bytes / self.max_bytes if self.max_bytes else 0.0


class SizeGuard:
    def __init__(self, settings: Settings, service: MemoryService) -> None:
        self.storage = settings.storage
        self.service = service
        self.last: SizeReport | None = None
        self._warned_at = 0.0
        self._stop = threading.Event()

    def check(self) -> SizeReport:
        cap = self.storage.max_bytes
        engine_dir = self.storage.qdrant_dir
        if self.service.db.engine != "embedded":
            self.last = SizeReport(used_bytes=0, max_bytes=cap, state="remote")
            return self.last
        used = disk_usage(engine_dir)
        if not cap:
            report = SizeReport(used_bytes=used, max_bytes=0, state="unlimited")
        elif used >= cap:
            evicted = self._evict_unless_busy(used, cap)
            report = SizeReport(used_bytes=used, max_bytes=cap, state="over", evicted=evicted)
            log.warning(
                "storage %s uses %.1f MB, over its cap of %.1f MB: forgot the %d oldest low-importance memories",
                engine_dir,
                used / 1e6,
                cap / 1e6,
                evicted,
            )
        elif used >= cap * self.storage.warn_fraction:
            report = SizeReport(used_bytes=used, max_bytes=cap, state="warning")
            if time.monotonic() - self._warned_at > 3600:
                self._warned_at = time.monotonic()
                log.warning(
                    "storage %s is at %.0f%% of its %.1f MB cap; past it the oldest low-importance memories "
                    "are forgotten (raise storage.max_bytes, or `clarity forget` what you do not need)",
                    engine_dir,
                    100 * used / cap,
                    cap / 1e6,
                )
        else:
            report = SizeReport(used_bytes=used, max_bytes=cap, state="ok")
        report.path = str(engine_dir)
        self.last = report
        return report

    def _evict_unless_busy(self, used: int, cap: int) -> int:
        """No eviction during a backup (the next check decides), nor while a purge is pending (the
        space of what was deleted has not come back yet), nor below the free-space floor (a delete
        is a write; the store has logged why)."""
        if backup_running():
            log.info("storage over its cap during a backup: eviction waits for the next check")
            return 0
        if self.service.db.info().get("purge_pending"):
            # Deleted memories still occupy their shards until the purge rewrites them; counting
            # them would evict live memories for space that is about to come back.
            log.info("storage over its cap while deleted memories await their purge: eviction waits")
            return 0
        try:
            return self.evict(used, cap)
        except InsufficientStorage:
            return 0

    def evict(self, used: int, cap: int) -> int:
        count = self.service.db.count()
        if not count:
            return 0
        per_memory = used / count
        wanted = min(count, math.ceil((used - cap * _TARGET) / per_memory))
        evicted = 0
        for ceiling in _TIERS:
            if evicted >= wanted:
                break
            evicted += self.service.evict_oldest(wanted - evicted, max_importance=ceiling)
        return evicted

    def run_every(self, seconds: float, first_after: float | None = None) -> threading.Thread:
        def loop() -> None:
            delay = seconds if first_after is None else first_after
            while not self._stop.wait(delay):
                delay = seconds
                try:
                    self.check()
                except Exception:
                    log.exception("storage size check failed")

        thread = threading.Thread(target=loop, name="clarity-size-guard", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
