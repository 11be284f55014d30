"""The developer's side of the team tier, on disk: shared writes waiting to be sent, and how far
each team project has been pulled (docs/team.md).

A shared write (the store, update or delete of a shared memory) is recorded here after the local
write and sent by ``sync.py`` in the background, so the hook or tool call that made it never
waits on the network. One sqlite file in app-data, WAL with ``synchronous=FULL``: an enqueue
returns once its row is on disk (fsync of the log), so a write survives a ``kill -9`` or a power
cut between the enqueue and the send. Rows leave in the order they came, and only once the team
server has answered for them; each row keeps the op id it was given here on every resend, so a
server that applied an op and lost its answer says "duplicate" the second time and never applies
it twice (``protocol.py``).

An op names a memory, not its text: a put is sent with the record and vector as they are when it
goes (the latest state is what the team should have, and a memory stored while the model was
loading gets its vector before it goes), a delete with its id and project. So two puts of one
memory waiting side by side send the same state twice, which the server applies twice to no
effect, and a put whose memory was deleted meanwhile is dropped (its delete follows it).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

FILE_NAME = "team-outbox.sqlite3"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS ops (seq INTEGER PRIMARY KEY AUTOINCREMENT, op_id TEXT NOT NULL UNIQUE, "
    "kind TEXT NOT NULL CHECK (kind IN ('put', 'delete')), memory_id TEXT NOT NULL, "
    "project TEXT NOT NULL, queued_at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS ops_memory ON ops (memory_id)",
    # How far each team project was pulled (the server's change time, ms); a project is known to
    # the replica once it has a row here.
    "CREATE TABLE IF NOT EXISTS cursors (project TEXT PRIMARY KEY, cursor INTEGER NOT NULL)",
    # Small facts kept across restarts: the team user last seen, for a status line while offline.
    "CREATE TABLE IF NOT EXISTS facts (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)

Kind = Literal["put", "delete"]


@dataclass(frozen=True, slots=True)
class QueuedOp:
    seq: int
    op_id: str
    kind: Kind
    memory_id: str
    project: str
    queued_at: float


class Outbox:
    """The outbox and the pull cursors of one storage root; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = path
        self._lock = threading.Lock()
        # isolation_level=None: each statement commits by itself, and ``_transaction`` groups them.
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit returns after the log is fsynced. The daemon's storage lock makes it the
        # only writer; ``timeout`` covers a reader such as a test or a second process at start.
        self._conn.execute("PRAGMA synchronous=FULL")
        with self._transaction() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)
        path.chmod(0o600)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, args: Iterable[object] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            return list(self._conn.execute(sql, tuple(args)))

    # -- the outbox ---------------------------------------------------------------------------

    def enqueue(self, kind: Kind, memory_id: str, project: str) -> str:
        """Record one op durably (on disk when this returns) and make its project one the replica
        pulls; returns its op id."""
        op_id = str(uuid.uuid4())
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO ops (op_id, kind, memory_id, project, queued_at) VALUES (?, ?, ?, ?, ?)",
                (op_id, kind, memory_id, project, time.time()),
            )
            conn.execute("INSERT OR IGNORE INTO cursors (project, cursor) VALUES (?, 0)", (project,))
        return op_id

    def head(self, limit: int) -> list[QueuedOp]:
        """The oldest ``limit`` ops, in the order they were enqueued."""
        rows = self._query(
            "SELECT seq, op_id, kind, memory_id, project, queued_at FROM ops ORDER BY seq LIMIT ?", [limit]
        )
        return [QueuedOp(*row) for row in rows]  # type: ignore[arg-type]

    def remove(self, seqs: Iterable[int]) -> None:
        """Ops the team server answered for (applied, duplicate or refused), or that need no send."""
        with self._transaction() as conn:
            conn.executemany("DELETE FROM ops WHERE seq = ?", [(seq,) for seq in seqs])

    def waiting(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM ops")[0][0])  # type: ignore[call-overload]

    def oldest(self) -> float | None:
        """When the oldest waiting op was enqueued (epoch seconds), or None."""
        found = self._query("SELECT MIN(queued_at) FROM ops")[0][0]
        return float(found) if isinstance(found, int | float) else None

    def pending(self, memory_ids: Iterable[str]) -> set[str]:
        """Those of ``memory_ids`` with an op still waiting: their local state is newer than the
        team's, so a pull leaves them alone until it is sent."""
        ids = list(memory_ids)
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._query(f"SELECT DISTINCT memory_id FROM ops WHERE memory_id IN ({marks})", chunk)
            found.update(str(row[0]) for row in rows)
        return found

    # -- pull cursors -------------------------------------------------------------------------

    def cursors(self) -> dict[str, int]:
        """Each known team project and how far it was pulled (0: not yet)."""
        return {str(p): int(c) for p, c in self._query("SELECT project, cursor FROM cursors")}  # type: ignore[call-overload]

    def know(self, projects: Iterable[str]) -> None:
        """Start pulling ``projects`` (from the beginning) unless already pulled."""
        with self._transaction() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO cursors (project, cursor) VALUES (?, 0)", [(p,) for p in projects]
            )

    def set_cursor(self, project: str, cursor: int) -> None:
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO cursors (project, cursor) VALUES (?, ?)", (project, cursor))

    # -- facts --------------------------------------------------------------------------------

    def fact(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM facts WHERE key = ?", [key])
        return str(rows[0][0]) if rows else None

    def set_fact(self, key: str, value: str) -> None:
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO facts (key, value) VALUES (?, ?)", (key, value))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
