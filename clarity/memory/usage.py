"""Use counts and last-used times: a sidecar file beside the engine, written off the request path.

Which memories were retrieved, and how often, is bookkeeping that only the dashboard and the
export read; no search depends on it. So it lives in a small SQLite file under the storage root
(``usage.sqlite3``: one row per memory id), not in the engine's payloads, where every update of
a point in an indexed segment moved it into the brute-force one.

Bumping a counter on every retrieved memory would turn each search into a write; at a hook's
pace that costs more than the search itself. Uses are coalesced in memory and written by one
thread every few seconds (and at close), so a memory retrieved 50 times in a minute costs one
write and no request waits for the disk. Reads show what is written (a page of memories is one
query); the dashboard adds the uses still waiting, as it did when they waited for the engine.

A record's own ``access_count`` and ``last_accessed_at`` (stores from before the sidecar) are the
base the sidecar adds to; an import or restore sets a row, a delete drops it. The counts are
never worth a failed request: a damaged or unreadable file is moved aside
(``usage.sqlite3.damaged-<time>``) and counting starts again from the records; while the disk is
full the uses wait in memory and are written once there is room.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cachetools import LRUCache

from clarity.models import EARLIEST, LATEST, MAX_COUNT, Memory, saturating_add

log = logging.getLogger(__name__)

FILE_NAME = "usage.sqlite3"
READ_CACHE_IDS = 10_000  # about 1.5 MB
Use = tuple[int, float | None]  # (uses, last used in epoch seconds, or None)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS usage "
    "(id TEXT PRIMARY KEY, count INTEGER NOT NULL, last_used REAL) WITHOUT ROWID"
)
_READ = "SELECT id, count, last_used FROM usage WHERE id IN (SELECT value FROM json_each(?))"
_DROP = "DELETE FROM usage WHERE id = ?"
_SET = "INSERT OR REPLACE INTO usage (id, count, last_used) VALUES (?, ?, ?)"
_ADD = (
    "INSERT INTO usage (id, count, last_used) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
    f"count = MIN(count + ?, {MAX_COUNT}), "
    "last_used = COALESCE(MAX(last_used, excluded.last_used), excluded.last_used)"
)
# Primary result codes that say the file itself cannot be used, as opposed to a full disk, a lock
# or an I/O error, which pass.
_UNUSABLE_CODES = {
    sqlite3.SQLITE_CORRUPT,
    sqlite3.SQLITE_NOTADB,
    sqlite3.SQLITE_CANTOPEN,
    sqlite3.SQLITE_READONLY,
}


class _Unusable(Exception):
    """The file is there but is not a sidecar this version can use."""


def sidecar_path(root: Path) -> Path:
    return root / FILE_NAME


def recorded_use(memory: Memory) -> Use:
    """The count and last use a record itself holds (the base the sidecar adds to)."""
    last = memory.last_accessed_at
    return memory.access_count, last.timestamp() if last is not None else None


def _unusable(exc: BaseException) -> bool:
    if isinstance(exc, _Unusable):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _UNUSABLE_CODES


def _later(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


@dataclass(slots=True)
class _Change:
    """What waits to be written for one id."""

    base: int = 0  # the count uses add to where nothing is written; for a set, the count set
    extra: int = 0  # uses on top of it
    last: float | None = None  # the last of those uses
    replace: bool = False  # an import or restore set the count: the row is replaced, not added to
    set_last: float | None = None  # the last use the import brought
    drop: bool = False  # the memory was deleted: its row goes

    def onto(self, written: Use, base: Use, uses: bool = True) -> Use:
        """The count and last use once this change is written over ``written`` (``base`` is the
        record's own); without ``uses``, only an import's count or a delete, not the uses."""
        if self.drop:
            return base
        count, last = (self.base, self.set_last) if self.replace else written
        if not uses:
            return count, last
        return saturating_add(count, self.extra), _later(last, self.last)

    def row(self) -> Use:
        """What the row holds once this change is written where the file had none."""
        return saturating_add(self.base, self.extra), _later(self.set_last, self.last)


def valid_use(count: object, last: object) -> Use | None:
    """A row as stored, if it holds what a record accepts (a damaged row counts from the base)."""
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        return None
    if isinstance(last, int | float) and not isinstance(last, bool):
        if not math.isfinite(last) or not EARLIEST.timestamp() <= last < LATEST.timestamp():
            return None
        return min(count, MAX_COUNT), float(last)
    return (min(count, MAX_COUNT), None) if last is None else None


def _connect(path: Path, read_only: bool) -> sqlite3.Connection:
    if not path.exists() and not path.is_symlink():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))  # owner only, as the WAL
    elif not path.is_file():
        raise _Unusable("is not a regular file")
    conn = sqlite3.connect(
        path, timeout=0.2 if read_only else 2.0, check_same_thread=False, isolation_level=None
    )
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        if read_only:
            conn.execute("PRAGMA query_only=1")
        else:
            conn.execute(_SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(usage)")}
        if not {"id", "count", "last_used"} <= columns:
            raise _Unusable("holds no use-count table this version can read")
        return conn
    except BaseException:
        conn.close()
        raise


class UsageCounts:
    """The sidecar of one storage root: ``touch`` on every retrieval, ``set`` on an import,
    ``forget`` on a delete; ``apply`` for a page of memories, ``waiting`` for the dashboard."""

    def __init__(self, path: Path, interval: float = 10.0) -> None:
        self.path = path
        self._interval = interval
        self._lock = threading.Lock()  # the changes below
        self._pending: dict[str, _Change] = {}
        self._inflight: dict[str, _Change] = {}  # being written: reads still add them
        self._batches = 0  # batches written; a read that saw one land meanwhile reads again
        # Rows as last read (None: no row), so a retrieve of memories read before costs no query:
        # the SQLite read was 0.06-0.1 ms of a 1.2 ms retrieve at 10k memories (docs/benchmarks.md).
        # A written batch drops its ids; a read that saw a batch land meanwhile caches nothing.
        self._read_cache: LRUCache[str, Use | None] = LRUCache(maxsize=READ_CACHE_IDS)
        self._db_lock = threading.Lock()  # the connections, replaced when a file is moved aside
        self._flush_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._damaged = False  # a read found the file damaged: the next write moves it aside
        self._failing = False  # the last open or write failed (logged once until one succeeds)
        self._closed = False
        self._ready()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="clarity-usage", daemon=True)
        self._thread.start()

    # -- changes (the request path: memory only) ----------------------------------------------

    def touch(self, memory_id: str, stored_count: int) -> None:
        """One more use. ``stored_count`` is what the record shows: where the file has no row
        yet, the uses are added to it."""
        now = time.time()
        with self._lock:
            change = self._pending.get(memory_id)
            if change is None:
                earlier = self._inflight.get(memory_id)
                if earlier is not None and earlier.drop:
                    return  # a use of a memory deleted meanwhile
                self._pending[memory_id] = _Change(base=stored_count, extra=1, last=now)
            elif not change.drop:
                change.extra += 1
                change.last = _later(change.last, now)

    def set(self, uses: Mapping[str, Use]) -> None:
        """Counts an import or a restore brings: they replace what the file holds."""
        with self._lock:
            for memory_id, (count, last) in uses.items():
                self._pending[memory_id] = _Change(base=min(count, MAX_COUNT), set_last=last, replace=True)

    def forget(self, ids: Iterable[str]) -> None:
        """Deleted memories: their rows go."""
        with self._lock:
            for memory_id in ids:
                self._pending[memory_id] = _Change(drop=True)

    # -- reads --------------------------------------------------------------------------------

    def effective(self, bases: Mapping[str, Use]) -> dict[str, Use]:
        """The count and last use of each id the sidecar knows of, as written: its row (or the
        record's own ``bases`` value where there is none), with what an import set or a delete
        dropped. Uses still waiting are left to ``waiting``, as they were when they waited for
        the engine; ids the sidecar knows nothing of are left out. One query for all of them."""
        if not bases:
            return {}
        for _ in range(3):
            with self._lock:
                batches = self._batches
                changes = [
                    (memory_id, self._inflight.get(memory_id), self._pending.get(memory_id))
                    for memory_id in bases
                ]
                known = {i: self._read_cache[i] for i in bases if i in self._read_cache}
            missing = [i for i in bases if i not in known]
            read = self._rows(missing) if missing else {}
            with self._lock:
                if self._batches == batches:  # no batch landed between the changes and the rows
                    if read is not None:
                        self._read_cache.update({i: read.get(i) for i in missing})
                    break
        read = read or {}
        rows = {i: use for i, use in {**known, **read}.items() if use is not None}
        found: dict[str, Use] = {}
        for memory_id, inflight, pending in changes:
            use = rows.get(memory_id)
            if (
                use is None
                and inflight is None
                and (pending is None or not (pending.replace or pending.drop))
            ):
                continue
            base = bases[memory_id]
            use = use or base
            if inflight is not None:  # being written: as good as written
                use = inflight.onto(use, base)
            if pending is not None:
                use = pending.onto(use, base, uses=False)
            found[memory_id] = use
        return found

    def waiting(self, ids: Iterable[str]) -> dict[str, int]:
        """Uses not yet written, by id (the dashboard adds them to the written count)."""
        with self._lock:
            return {
                memory_id: change.extra
                for memory_id in ids
                if (change := self._pending.get(memory_id)) is not None and change.extra
            }

    def apply(self, memories: list[Memory]) -> list[Memory]:
        """``memories`` with their counts and last uses from the sidecar (one query); a record
        the sidecar knows nothing of keeps its own."""
        uses = self.effective({memory.id: recorded_use(memory) for memory in memories})
        for memory in memories:
            if memory.id in uses:
                count, last = uses[memory.id]
                memory.access_count = count
                memory.last_accessed_at = None if last is None else datetime.fromtimestamp(last, UTC)
        return memories

    def _rows(self, ids: list[str]) -> dict[str, Use] | None:
        """The rows of ``ids`` that hold a valid use; None if the file could not be read."""
        with self._db_lock:
            if self._reader is None or self._damaged:
                return None
            try:
                rows = self._reader.execute(_READ, (json.dumps(ids),)).fetchall()
            except sqlite3.Error as exc:
                self._damaged = self._damaged or _unusable(exc)
                self._failed(
                    f"use counts not read from {self.path}: {exc}; the stored records' counts are shown"
                )
                return None
        return {row[0]: use for row in rows if (use := valid_use(row[1], row[2])) is not None}

    # -- writes (the writer thread, and close) -------------------------------------------------

    def flush(self) -> bool:
        """Write what waits; False if it could not be written (it waits for the next round)."""
        with self._flush_lock:
            with self._lock:
                if not self._pending and not self._damaged:
                    return True
                batch, self._pending = self._pending, {}
                self._inflight = batch
            written = self._write(batch)
            with self._lock:
                self._inflight = {}
                if written:
                    self._batches += 1
                    for memory_id in batch:
                        self._read_cache.pop(memory_id, None)
                else:
                    self._requeue(batch)
            return written

    def _write(self, batch: dict[str, _Change]) -> bool:
        for _ in range(2):  # a file found damaged is moved aside and the batch goes to a fresh one
            conn = self._ready()
            if conn is None:
                return False
            if not batch:
                return True
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(_DROP, [(i,) for i, c in batch.items() if c.drop])
                conn.executemany(_SET, [(i, *c.row()) for i, c in batch.items() if c.replace])
                conn.executemany(
                    _ADD, [(i, *c.row(), c.extra) for i, c in batch.items() if not (c.drop or c.replace)]
                )
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                if not _unusable(exc):
                    self._failed(f"use counts not written to {self.path}: {exc}; they wait in memory")
                    return False
                self._damaged = True
                continue
            if self._failing:
                self._failing = False
                log.info("use counts written to %s again", self.path)
            return True
        return False

    def _requeue(self, batch: dict[str, _Change]) -> None:
        """A batch that was not written goes back under what arrived meanwhile."""
        for memory_id, failed in batch.items():
            newer = self._pending.get(memory_id)
            if newer is None or (failed.drop and not newer.replace):
                self._pending[memory_id] = failed
            elif not (newer.drop or newer.replace):  # more uses on top of the failed ones
                failed.extra += newer.extra
                failed.last = _later(failed.last, newer.last)
                self._pending[memory_id] = failed

    def _ready(self) -> sqlite3.Connection | None:
        """The writer's connection, opened (again) if needed; a file that cannot be used is
        moved aside once and a fresh one started. None if there is no sidecar for now."""
        if self._writer is not None and not self._damaged:
            return self._writer
        with self._db_lock:
            self._disconnect()
            if self._damaged:
                self._damaged = False
                self._move_aside("is damaged")
            for attempt in range(2):
                try:
                    self._writer = _connect(self.path, read_only=False)
                    self._reader = _connect(self.path, read_only=True)
                    return self._writer
                except (sqlite3.Error, OSError, _Unusable) as exc:
                    self._disconnect()
                    if attempt or not _unusable(exc) or not self._move_aside(f"cannot be used ({exc})"):
                        self._failed(f"use counts cannot be kept in {self.path} for now: {exc}")
                        return None
        return None

    def _move_aside(self, why: str) -> bool:
        """Keep a file this version cannot use under a name that says so; never delete it."""
        if not self.path.exists() and not self.path.is_symlink():
            return False
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        number = 1
        while aside.exists():
            number += 1
            aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}-{number}")
        with self._lock:  # what was read from the old file no longer holds
            self._read_cache.clear()
            self._batches += 1
        try:
            self.path.rename(aside)
            for suffix in ("-wal", "-shm", "-journal"):
                companion = self.path.with_name(self.path.name + suffix)
                if companion.exists():
                    companion.rename(aside.with_name(aside.name + suffix))
        except OSError as exc:
            self._failed(f"use counts: {self.path} {why} and cannot be moved aside: {exc}")
            return False
        log.warning(
            "use counts: %s %s; moved it to %s, counting again from the stored records", self.path, why, aside
        )
        return True

    def _disconnect(self) -> None:
        for conn in (self._writer, self._reader):
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
        self._writer = self._reader = None

    def _failed(self, message: str) -> None:
        """Bookkeeping: one log line when the trouble starts, none while it lasts."""
        if not self._failing:
            self._failing = True
            log.warning(message)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except Exception:  # never let the writer die: the next round tries again
                log.exception("use counts: write failed")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush()
        with self._db_lock:
            self._disconnect()
