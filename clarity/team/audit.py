"""The team server's audit log: one JSON line for every write, delete and refused write (time,
user, op, memory id, project, outcome), appended and synced before the answer goes out.

``<root>/app-data/team/audit.jsonl``; past MAX_BYTES it is renamed ``audit.jsonl.1`` (the older
ones moving up, the oldest past KEEP dropped), so the log is capped at (KEEP + 1) * MAX_BYTES and
a flood of refused requests cannot fill the disk. Lines are never rewritten. A request's lines are
written together and synced once: a batch of 256 ops costs one fsync, not 256.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

NAME = "audit.jsonl"
MAX_BYTES = 64 * 1024 * 1024  # ~250,000 lines of ~250 bytes
KEEP = 9  # rotated files kept: 640 MB of history at most


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AuditLog:
    def __init__(
        self, directory: Path, max_bytes: int = MAX_BYTES, keep: int = KEEP, name: str = NAME
    ) -> None:
        """``name``: the file; a replica of several names it by its host (``team.backend``)."""
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = directory / name
        self.name = name
        self.max_bytes = max_bytes
        self.keep = keep
        self._lock = threading.Lock()

    def write(self, entries: Iterable[dict[str, Any]]) -> None:
        """Append ``entries`` (each given a time) and sync them to disk. A failure is logged, not
        raised: the writes it records are already applied, and their answer must still go out."""
        stamp = now_iso()
        lines = "".join(json.dumps({"time": stamp, **entry}, ensure_ascii=False) + "\n" for entry in entries)
        if not lines:
            return
        data = lines.encode("utf-8")
        with self._lock:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                try:
                    os.write(fd, data)
                    os.fsync(fd)
                    size = os.fstat(fd).st_size
                finally:
                    os.close(fd)
                if size >= self.max_bytes:
                    self._rotate()
            except OSError as exc:
                log.error("audit log %s: cannot write %d lines: %s", self.path, lines.count("\n"), exc)

    def _rotate(self) -> None:
        oldest = self.path.with_name(f"{self.name}.{self.keep}")
        if oldest.exists():
            oldest.unlink()
        for number in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.name}.{number}")
            if older.exists():
                older.rename(self.path.with_name(f"{self.name}.{number + 1}"))
        self.path.rename(self.path.with_name(f"{self.name}.1"))
