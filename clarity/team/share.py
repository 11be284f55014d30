"""Which memories go to the team, the secret gate in front of it, and the writes it enqueues
(docs/team.md).

Personal memories never leave this machine. A new memory goes to the team when its caller asks
(``MemoryCreate.shared``: store_memory's ``shared``, "remember for the team that ...") or when
``team.share`` is "project" (every project memory), and only when

- it is a project memory: a global one is about this developer, never a team's;
- redaction flags none of the fields it would carry, judged on the caller's ORIGINAL text, before
  the store redacts it. A memory that held a secret is stored redacted and personal, and the
  caller is told "kept personal: it held a secret": what sits around a secret (a host, an
  account, a path) is often private too, so the redacted text is not shared either.

An update that brings a secret into a shared memory makes it personal again and withdraws it
from the team (a delete op). The team server runs the same gate on what it receives.

``Sharing`` is what ``MemoryService`` calls after each local write (``service.team``): it
enqueues an op in the outbox and wakes the sync thread, nothing more, so a hook that stores a
shared memory pays one local sqlite commit, never a network round trip.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from clarity.config_team import TeamSettings
from clarity.models import GLOBAL_SCOPE, Memory, MemoryCreate, MemoryPatch
from clarity.redact import redact_record
from clarity.requests import StoreResult
from clarity.team.outbox import Kind, Outbox

log = logging.getLogger(__name__)

SHARED = "shared with the team"
HELD_SECRET = "kept personal: it held a secret"
GLOBAL_NEVER = "kept personal: a global memory is never shared"
# The store answers a caller with these; the session id never leaves the machine (``sync.wire``),
# so it is not judged.
_NOT_SENT = ("scope", "session_id")


def flagged(record: MemoryCreate | MemoryPatch) -> bool:
    """Whether redaction would change any field of ``record`` that the team would receive."""
    return redact_record(record, skip=_NOT_SENT) is not record


def decide(request: MemoryCreate, team: TeamSettings) -> tuple[MemoryCreate, str | None]:
    """``request`` with ``shared`` set to what will happen, and what to tell the caller (None when
    sharing was neither asked for nor configured). Called with the caller's original request."""
    wanted = request.shared or (team.share == "project" and request.scope != GLOBAL_SCOPE)
    if not wanted:
        return (request.model_copy(update={"shared": False}) if request.shared else request), None
    if request.scope == GLOBAL_SCOPE:
        return request.model_copy(update={"shared": False}), GLOBAL_NEVER
    if flagged(request):
        return request.model_copy(update={"shared": False}), HELD_SECRET
    return (request if request.shared else request.model_copy(update={"shared": True})), SHARED


class Sharing:
    """The team tier's side of local writes: ops into the outbox, then a wake-up for the sender."""

    def __init__(
        self,
        team: TeamSettings,
        outbox: Outbox,
        user: Callable[[], str | None],
        wake: Callable[[], None],
        status: Callable[[], dict[str, Any]],
    ) -> None:
        self.settings = team
        self.outbox = outbox
        self._user = user
        self._wake = wake
        self.status = status
        self.lost = 0  # ops that could not be queued (the outbox's disk full or damaged)

    def gate(self, request: MemoryCreate) -> tuple[MemoryCreate, str | None]:
        """Before the store: the share decision and the secret gate (``decide``)."""
        return decide(request, self.settings)

    def stored(self, result: StoreResult) -> None:
        """After a store: a shared memory of ours goes to the team (a new one, or one stored
        again, which may have shared it now or changed its tags and importance). A teammate's
        memory stored again here only counts locally: its author's copy is the team's."""
        memory = result.memory
        if memory.shared and memory.author in (None, self._user()):
            self._enqueue("put", memory)

    def unshares(self, patch: MemoryPatch, current: Callable[[], Memory]) -> bool:
        """Before an update: whether it brings a secret into a shared memory, which then turns
        personal (``current`` reads the memory, only when the patch is flagged)."""
        return flagged(patch) and current().shared

    def updated(self, memory: Memory, unshared: bool) -> None:
        """After an update of a shared memory: its new state goes to the team, or its withdrawal.
        A teammate's memory too: the server lets an admin change anyone's and says no to others."""
        if unshared:
            self._enqueue("delete", memory)
        elif memory.shared:
            self._enqueue("put", memory)

    def refuses_delete(self, memory: Memory) -> str | None:
        """Why this daemon's user may not delete ``memory`` (a teammate's, and not an admin), or
        None. Said before the local delete: deleted here only, it would stay at the team and be
        missing from this replica until its author changed it. Unknown until the first whoami:
        then the server decides."""
        user, role = self._user(), self.status().get("role")
        if not memory.shared or memory.author in (None, user) or role in (None, "admin"):
            return None
        return (
            f"id: {memory.id[:8]} was shared by {memory.author}; only {memory.author} or a team admin "
            f"can delete it (you are {user}, role {role})"
        )

    def deleted(self, memory: Memory) -> None:
        """After the delete of a shared memory here: deleted at the team too (if the role allows)."""
        if memory.shared:
            self._enqueue("delete", memory)

    def _enqueue(self, kind: Kind, memory: Memory) -> None:
        """The local write is done whatever happens here: a full disk loses the op (logged and
        counted in the status), never the memory."""
        try:
            self.outbox.enqueue(kind, memory.id, memory.scope)
        except sqlite3.Error as exc:
            self.lost += 1
            log.error("the %s of shared memory %s could not be queued for the team: %s", kind, memory.id, exc)
            return
        self._wake()
