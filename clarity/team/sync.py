"""The team tier's background work on a developer's daemon: push the outbox, pull the replica
(docs/team.md).

One thread does both, so a push and a pull never race over one memory:

- **push**: the outbox's ops in order, in batches. A put is read from the local store as it is
  when it goes (the record, and the dense vector the local model made: the team server has no
  model). An op leaves the outbox once the server answered for it: applied, duplicate (sent
  before, its answer lost) or refused (logged, counted in the status, dropped: the server said
  why). Without an answer the ops stay and the thread tries again after a backoff (1 s doubling
  to 60 s); a server that asks to wait (429 or 503 with Retry-After, ``TeamBusy``) is waited for
  that long, up to ``BUSY_MAX``, and the status line says so rather than "unreachable"; a refused
  token (401) keeps them too, until it is fixed. The records a batch sends are read under the
  writer's lock: an op is journaled just before its write, under that lock (``memory.writes``).
- **pull**: every ``team.pull_seconds``, for each team project this daemon knows (a repository
  with a remote it has worked in, or one it shared a memory of), the changes since its cursor
  (less ``OVERLAP_MS``), oldest first, written into the LOCAL store as ordinary records with
  ours. A tombstone deletes the local copy. A memory with an op still waiting here is left alone
  (its local state is newer: the op is sent, and a later pull brings the team's copy with it),
  decided under the writer's lock, so an edit or delete made while a page is applied wins too;
  so is one made personal here. Each project's cursor is saved after each page.

Hooks and searches read only the local store, so they never wait on the network;
``status()`` says who this daemon shares as, how many writes wait, when it last pulled, or since
when the server has been unreachable.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from clarity.config import Settings
from clarity.memory import MemoryNotFound, MemoryService
from clarity.models import GLOBAL_SCOPE, Memory
from clarity.project import has_remote, known_roots
from clarity.team.client import TeamBusy, TeamClient, TeamRefused, TeamUnreachable
from clarity.team.outbox import FILE_NAME, Outbox, QueuedOp
from clarity.team.protocol import OVERLAP_MS, Change, DeleteOp, OpResult, PutOp, WhoAmI
from clarity.team.share import Sharing

log = logging.getLogger(__name__)

BATCH = 64  # ops per POST /ops: a put with a 384-number vector is about 8 KB of JSON
PAGE = 200  # changes per GET /changes: one page is parsed and written while hooks share the GIL
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 60.0
BUSY_MAX = 600.0  # the longest Retry-After honoured: one minute's write budget is 60 s at most
VECTOR_WAIT = 2.0  # a put whose memory has no dense vector yet (the model is loading) is retried after this
STOP_WAIT = 2.0  # seconds the daemon's shutdown waits for a request in flight


def wire(memory: Memory) -> Memory:
    """What the team receives of a memory: not this developer's session nor use of it."""
    return memory.model_copy(update={"session_id": None, "access_count": 0, "last_accessed_at": None})


class TeamSync:
    """The sync thread and the team tier's status on one daemon; ``start`` wires it to ``service``."""

    def __init__(self, settings: Settings, service: MemoryService, client: TeamClient | None = None) -> None:
        self.team = settings.team
        self.service = service
        self.outbox = Outbox(settings.storage.app_data_dir / FILE_NAME)
        self.client = client or TeamClient(self.team)
        self.whoami: WhoAmI | None = None
        self.user = self.outbox.fact("user")  # known offline from the last run
        self.unreachable_since: float | None = None
        self.error: str | None = None  # why the last attempt failed
        self.busy: tuple[float, float] | None = None  # (seconds the server asked to wait, when)
        self.last_pull: float | None = None
        self.refused = 0  # ops the server refused since start
        self.last_refusal: str | None = None
        self._checked: dict[str, bool] = {}  # project -> it is a repository with a remote
        self._batch = BATCH
        self._backoff = 0.0
        self._waiting_vector = False  # the head put's memory has no dense vector yet
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.writes = Sharing(self.team, self.outbox, lambda: self.user, self._wake.set, self.status)

    def start(self) -> None:
        self.service.team = self.writes
        self._thread = threading.Thread(target=self._run, name="clarity-team-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (a request in flight is given ``STOP_WAIT``), after the last write."""
        self.service.team = None
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(STOP_WAIT)
        self.client.close()
        if self._thread is None or not self._thread.is_alive():
            self.outbox.close()

    # -- the loop -----------------------------------------------------------------------------

    def _run(self) -> None:
        next_pull = 0.0
        while not self._stop.is_set():
            wait = max(0.0, next_pull - time.monotonic())
            try:
                self.round(pull=time.monotonic() >= next_pull)
                if time.monotonic() >= next_pull:
                    next_pull = time.monotonic() + self.team.pull_seconds
                    wait = self.team.pull_seconds
                if self._waiting_vector:
                    wait = min(wait, VECTOR_WAIT)
            except TeamBusy as exc:
                self._asked_to_wait(str(exc), exc.retry_after or BACKOFF_FIRST)
            except TeamUnreachable as exc:
                self._failed(str(exc), exc.retry_after)
            except TeamRefused as exc:  # the token or the whole request: nothing sent, ops kept
                self._failed(f"refused: {exc}", None)
            except Exception as exc:  # never let the thread die: say it, and try again later
                log.exception("team sync failed")
                self._failed(f"{type(exc).__name__}: {exc}", None)
            if self._backoff:
                self._stop.wait(self._backoff)  # new writes wait for the backoff too
            else:
                self._wake.wait(wait)
            self._wake.clear()

    def round(self, pull: bool = True) -> None:
        """One pass: who we are (once), every waiting op, and with ``pull`` every known project.
        Raises ``TeamUnreachable`` or ``TeamRefused`` when the server cannot be used now."""
        self._waiting_vector = False
        if self.whoami is None or (pull and self.whoami.model is None):  # the first put fixes the model
            self.whoami = self.client.whoami()
            if self.whoami.user != self.user:
                self.user = self.whoami.user
                self.outbox.set_fact("user", self.user)
        self.push()
        if pull:
            self.pull()
        if self.unreachable_since is not None:
            log.info("team server %s answers again", self.team.url)
        self.unreachable_since, self.error, self._backoff, self.busy = None, None, 0.0, None

    def _asked_to_wait(self, why: str, seconds: float) -> None:
        """The server answered and asked to wait (429 or 503 with Retry-After): it is reachable,
        and the next attempt comes that long after, not after a backoff of its own."""
        wait = min(BUSY_MAX, max(seconds, 0.1))
        log.info("team server %s asks to wait %.0f s: %s", self.team.url, wait, why)
        self.unreachable_since, self.error, self.busy = None, why, (wait, time.time())
        self._backoff = wait

    def _failed(self, why: str, retry_after: float | None) -> None:
        self.busy = None
        if self.unreachable_since is None:
            log.warning("team server %s: %s; shared writes wait in the outbox", self.team.url, why)
            self.unreachable_since = time.time()
        self.error = why
        self._backoff = min(BACKOFF_MAX, max(self._backoff * 2, BACKOFF_FIRST))
        if retry_after is not None:
            self._backoff = min(BACKOFF_MAX, max(retry_after, BACKOFF_FIRST))

    # -- push ---------------------------------------------------------------------------------

    def push(self) -> None:
        """Send every waiting op, oldest first, until none is left or one must wait."""
        while not self._stop.is_set():
            queued = self.outbox.head(self._batch)
            if not queued:
                return
            with self.service.writes_paused():  # a journaled write lands before its record is read
                ops, needless = self._ops(queued)
            self.outbox.remove(needless)
            if not ops:
                if self._waiting_vector:
                    return
                continue
            try:
                answer = self.client.push([op for _, op in ops])
            except TeamBusy as exc:  # what it answered for before it stopped leaves the outbox
                self._answered(ops, {result.op_id: result for result in exc.results})
                raise
            except TeamRefused as exc:
                if exc.status == 401:
                    raise  # the token: every op would be refused alike; they wait for a good one
                if len(ops) > 1:  # one op spoiled the batch: send one at a time to find it
                    self._batch = 1
                    continue
                self._refuse(ops[0][1], str(exc))
                self.outbox.remove([ops[0][0]])
                continue
            done = self._answered(ops, {result.op_id: result for result in answer.results})
            if done < len(ops):
                raise TeamUnreachable(f"the team server answered {done} of {len(ops)} ops")
            if self._batch == 1 and len(queued) == 1:
                self._batch = BATCH

    def _answered(self, ops: list[tuple[int, PutOp | DeleteOp]], results: dict[str, OpResult]) -> int:
        """Remove the leading ops the server answered for (refusals counted); how many."""
        done = []
        for seq, op in ops:
            result = results.get(op.op_id)
            if result is None:
                break  # the answer stops short: the rest are sent again (their ids dedupe)
            if result.status == "refused":
                self._refuse(op, result.error or "no reason given")
            done.append(seq)
        self.outbox.remove(done)
        return len(done)

    def _ops(self, queued: list[QueuedOp]) -> tuple[list[tuple[int, PutOp | DeleteOp]], list[int]]:
        """The ops to send for ``queued``, in order, and the rows that need no send: a put whose
        memory is gone or no longer shared (a delete follows it). Stops before a put whose
        memory has no dense vector yet: order is kept, it goes once the vector is there."""
        ops: list[tuple[int, PutOp | DeleteOp]] = []
        needless: list[int] = []
        for row in queued:
            if row.kind == "delete":
                ops.append((row.seq, DeleteOp(op_id=row.op_id, id=row.memory_id, project=row.project)))
                continue
            found = self.service.record_with_vector(row.memory_id)
            if found is None or not found[0].shared:
                needless.append(row.seq)
                continue
            memory, vector = found
            if vector is None:
                self._waiting_vector = True
                break
            model = self.service.embedder.identity
            ops.append((row.seq, PutOp(op_id=row.op_id, memory=wire(memory), vector=vector, model=model)))
        return ops, needless

    def _refuse(self, op: PutOp | DeleteOp, why: str) -> None:
        memory_id = op.memory.id if isinstance(op, PutOp) else op.id
        log.warning("team server refused the %s of memory %s: %s", op.kind, memory_id, why)
        self.refused += 1
        self.last_refusal = f"{op.kind} of {memory_id[:8]}: {why}"

    # -- pull ---------------------------------------------------------------------------------

    def projects(self) -> list[str]:
        """The team projects to pull: those this daemon shared in, and every repository with a
        remote it has worked in (the roots ``clarity.project`` keeps)."""
        fresh = []
        for scope, root in known_roots().items():
            if scope == GLOBAL_SCOPE or scope in self._checked:
                continue
            # A team project is a repository with a remote (its id comes from the remote's URL, the
            # same on every clone); a folder's own id would only tell the server a folder's name.
            self._checked[scope] = has_remote(root)
            if self._checked[scope]:
                fresh.append(scope)
        if fresh:
            self.outbox.know(fresh)
        return sorted(self.outbox.cursors())

    def pull(self) -> None:
        cursors = self.outbox.cursors()
        for project in self.projects():
            if self._stop.is_set():
                return
            self.pull_project(project, cursors.get(project, 0))
        self.last_pull = time.time()

    def pull_project(self, project: str, cursor: int) -> None:
        """Page through ``project``'s changes since ``cursor`` (less the overlap), applying each."""
        since = max(0, cursor - OVERLAP_MS) if cursor else 0
        while not self._stop.is_set():
            page = self.client.changes([project], since, PAGE)
            self.apply([change for change in page.changes if change.project == project])
            if page.cursor > cursor:
                self.outbox.set_cursor(project, page.cursor)
                cursor = page.cursor
            if not page.more or page.cursor <= since:
                return
            since = page.cursor

    def apply(self, changes: list[Change]) -> None:
        """Write a page of changes into the local store (the last change of an id wins). A memory
        with an op waiting is left alone, checked here (no embedding for it) and again under the
        writer's lock (``skip``): an edit made meanwhile journaled its op before it was written."""
        latest = {change.id: change for change in changes}
        busy = self.outbox.pending(latest)
        team_model = self.whoami.model if self.whoami else None
        reuse = self.service.embedder.made(team_model)
        memories: list[Memory] = []
        vectors: list[list[float] | None] = []
        for memory_id, change in latest.items():
            if memory_id in busy:
                continue
            local = self._local(memory_id)
            if local is not None and not local.shared:
                continue  # made personal here (it held a secret): the team's copy is not this one
            if change.kind == "delete" or change.memory is None:
                if local is not None:
                    self.service.delete(memory_id, replicate=False)
                continue
            remote = change.memory.model_copy(update={"shared": True})
            if remote.id != memory_id or remote.scope != change.project:
                log.warning("team change %s left out: its record names another id or project", memory_id)
                continue
            if local is not None:  # this developer's own use of it stays as it is
                keep = ("session_id", "access_count", "last_accessed_at")
                remote = remote.model_copy(update={key: getattr(local, key) for key in keep})
                if remote == local:
                    continue
            usable = (
                reuse and change.vector is not None and len(change.vector) == self.service.embedder.dimension
            )
            memories.append(remote)
            vectors.append(change.vector if usable else None)
        if memories:
            self.service.put_memories(memories, vectors, skip=self.outbox.pending)

    def _local(self, memory_id: str) -> Memory | None:
        try:
            return self.service.get(memory_id)
        except (MemoryNotFound, ValueError):  # ValueError: unreadable here; the team's copy replaces it
            return None

    # -- status -------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The team tier as ``clarity status``, REST stats and the dashboard show it."""
        waiting = self.outbox.waiting()
        now = time.time()
        report: dict[str, Any] = {
            "url": self.team.url,
            "user": self.user,
            "role": self.whoami.role if self.whoami else None,
            "model": self.whoami.model if self.whoami else None,
            "waiting": waiting,
            "oldest_waiting_seconds": None if not waiting else round(now - (self.outbox.oldest() or now), 1),
            "last_pull_seconds_ago": None if self.last_pull is None else round(now - self.last_pull, 1),
            "unreachable_since": self.unreachable_since,
            "error": self.error,
            "busy_retry_after": self.busy[0] if self.busy else None,
            "busy_since": self.busy[1] if self.busy else None,
            "refused": self.refused,
            "last_refusal": self.last_refusal,
            "lost": self.writes.lost,
        }
        report["line"] = status_line(report)
        return report


def status_line(report: dict[str, Any]) -> str:
    """``team: alice on https://team:8443, 3 writes waiting, last pull 12 s ago``, ``team: alice
    on https://team:8443, the server asked to wait 10 s (rate: ...), 3 writes waiting, ...``, or
    ``team https://team:8443 unreachable since 12:03 (ConnectError: ...), 3 writes waiting``."""
    waiting = report["waiting"]
    writes = f"{waiting} write{'' if waiting == 1 else 's'} waiting"
    refused = f", {report['refused']} refused ({report['last_refusal']})" if report.get("refused") else ""
    if report.get("lost"):
        refused += f", {report['lost']} could not be queued (see the daemon log)"
    since = report.get("unreachable_since")
    if since is not None:
        when = datetime.fromtimestamp(since).strftime("%H:%M")
        error = str(report.get("error") or "")
        state = "refuses this daemon" if error.startswith("refused") else "unreachable"
        return f"team {report['url']} {state} since {when} ({error}), {writes}{refused}"
    who = report.get("user") or "(not known yet)"
    ago = report.get("last_pull_seconds_ago")
    pulled = "not pulled yet" if ago is None else f"last pull {ago:.0f} s ago"
    busy = report.get("busy_retry_after")
    if busy is not None:
        asked = f"the server asked to wait {busy:.0f} s ({report.get('error')})"
        return f"team: {who} on {report['url']}, {asked}, {writes}, {pulled}{refused}"
    return f"team: {who} on {report['url']}, {writes}, {pulled}{refused}"


def start_team(settings: Settings, service: MemoryService) -> TeamSync | None:
    """The team tier on this daemon when ``team.url`` is set (None otherwise), running. Raises
    OSError or ValueError (a ``team.ca_file`` that is no CA) for the daemon's start-up line."""
    if settings.team.url is None:
        return None
    try:
        sync = TeamSync(settings, service)
    except sqlite3.Error as exc:  # ValueError (a bad ca_file) and OSError pass as they are
        raise OSError(f"the team outbox in {settings.storage.app_data_dir}: {exc}") from exc
    sync.start()
    log.info("team tier: %s, outbox %s", settings.team.url, Path(sync.outbox.path))
    return sync
