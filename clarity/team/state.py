"""The team server's own state beside its store: which op ids it has applied, and the team's model
identity (docs/team.md). One sqlite file, ``<root>/app-data/team/team.sqlite3``, holds these and
the users (``clarity.team.users``), so ``clarity team user add`` on the host and the running
server share it: WAL lets the command write while the server reads.

This is one process's state, the backend of a team server on the embedded engine. Replicas of a
team server on a Qdrant server share theirs in Qdrant instead (``clarity.team.qdrant_state``);
``clarity.team.backend`` picks one.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

DB_NAME = "team.sqlite3"
# Op ids are kept this long after they were applied: an outbox resends an op when the answer to
# it was lost, at once or when the server is back; a resend months later is not one.
KEEP_OP_IDS_SECONDS = 90 * 86_400

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    revoked_at REAL
);
CREATE TABLE IF NOT EXISTS applied_ops (
    op_id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    applied_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS applied_ops_at ON applied_ops (applied_at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def team_dir(root: Path) -> Path:
    """Where a team server keeps its state and audit log, under its storage root's app-data."""
    return root / "app-data" / "team"


def connect(directory: Path) -> sqlite3.Connection:
    """The state file, made private and given its tables. Autocommit: writes that belong together
    run in ``transaction``. ``synchronous=FULL``: an applied op id survives a power cut, else a
    resend after one would apply an op twice."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / DB_NAME
    connection = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    # chmod, not an open and close of the file: closing any descriptor of it drops the POSIX locks
    # SQLite holds on it through another connection of this process, and a user command's
    # connection then deletes the WAL the server still reads (it kept seeing a revoked token).
    os.chmod(path, 0o600)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.executescript(_SCHEMA)
    return connection


def first_row(connection: sqlite3.Connection, sql: str, args: tuple[object, ...] = ()) -> tuple | None:
    """The first row of a query, its statement finished: a statement left open after
    ``fetchone()`` keeps its read transaction, and with it a WAL snapshot in which a user added
    or revoked since never shows (a revoked token would keep working)."""
    rows = connection.execute(sql, args).fetchall()
    return rows[0] if rows else None


@contextlib.contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back if the block fails."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


@dataclass(frozen=True, slots=True)
class ModelIdentity:
    """What made the team's vectors: the daemon's model identity (``clarity.model_identity``) and
    the vectors' length. The first put fixes both; a vector of another model is refused, as it
    would rank against the others by a meaningless cosine."""

    name: str
    dimension: int


ClaimStatus = Literal["new", "applied", "busy"]


@dataclass(frozen=True, slots=True)
class Claims:
    """A request's op ids as the state found them: ``new`` (this request may apply it),
    ``applied`` (a duplicate), ``busy`` (another replica is applying it now). ``token`` tells
    this request's claims from another's (the Qdrant backend; empty for sqlite)."""

    status: dict[str, ClaimStatus]
    token: str = ""
    new: list[str] = field(default_factory=list)


class TeamState:
    """Op ids applied and the model identity. Callers serialise writes (``team.writes``): one
    process, so an op id not yet applied is this request's to apply (never ``busy``)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._model = self._read_model()
        self._pruned_at = 0.0

    def _read_model(self) -> ModelIdentity | None:
        rows = dict(self._db.execute("SELECT key, value FROM meta WHERE key IN ('model', 'dimension')"))
        if "model" not in rows or "dimension" not in rows:
            return None
        return ModelIdentity(rows["model"], int(rows["dimension"]))

    @property
    def model(self) -> ModelIdentity | None:
        return self._model

    def fix_model(self, identity: ModelIdentity) -> ModelIdentity:
        """Record the team's model identity, once (the first applied put); the one recorded."""
        if self._model is None:
            with transaction(self._db):
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('model', ?)", (identity.name,))
                self._db.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('dimension', ?)", (str(identity.dimension),)
                )
            self._model = self._read_model()
        assert self._model is not None
        return self._model

    def applied(self, op_id: str) -> bool:
        return first_row(self._db, "SELECT 1 FROM applied_ops WHERE op_id = ?", (op_id,)) is not None

    def claim(self, op_ids: list[str]) -> Claims:
        status: dict[str, ClaimStatus] = {i: "applied" if self.applied(i) else "new" for i in op_ids}
        return Claims(status, new=[i for i, s in status.items() if s == "new"])

    def finish(self, claims: Claims, applied: list[str], user: str, last_stamp: int) -> None:
        """The end of a request: its applied op ids recorded (``record``); nothing to release."""
        self.record(applied, user, last_stamp)

    def close(self) -> None:
        self._db.close()

    @property
    def last_stamp(self) -> int:
        """The last change time a run gave (``team.store.Stamps``), 0 before the first."""
        row = first_row(self._db, "SELECT value FROM meta WHERE key = 'last_stamp'")
        return int(row[0]) if row else 0

    def record(self, op_ids: list[str], user: str, last_stamp: int) -> None:
        """Note a request's ``op_ids`` as applied, with the last change time given, in one
        transaction (one fsync) after their writes reached the store. A crash in between makes a
        resend apply them again: each writes its state again, in the same order, so the store
        ends as it was, unless another user changed the same memory in between (an admin's
        delete of it would be undone; a window of one request, only at a crash)."""
        if not op_ids:
            return
        now = time.time()
        if now - self._pruned_at > 86_400:  # at start and then daily, so a server up for months prunes
            self.prune(now)
            self._pruned_at = now
        with transaction(self._db):
            self._db.executemany(
                "INSERT OR IGNORE INTO applied_ops VALUES (?, ?, ?)", [(op_id, user, now) for op_id in op_ids]
            )
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('last_stamp', ?)", (str(last_stamp),))

    def prune(self, now: float | None = None) -> int:
        """Forget op ids older than KEEP_OP_IDS_SECONDS; how many went."""
        cutoff = (time.time() if now is None else now) - KEEP_OP_IDS_SECONDS
        return self._db.execute("DELETE FROM applied_ops WHERE applied_at < ?", (cutoff,)).rowcount
