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

A memory stored personal can be shared afterwards (``MemoryPatch.shared``, ``patched``) through
the same gate, judged on what it holds now: its text was redacted when stored, so a redaction
marker in a field it would send says the original held a secret, and it stays personal. Sharing
it again changes nothing; ``shared: false`` withdraws one's own shared memory from the team (a
delete op) and keeps it here as a personal memory, and a teammate's only with the admin role, as
for a delete. An edit of a teammate's shared memory is refused (``TeamRefusal``, a 403) before
anything changes, whatever the role: the team server takes a change from the memory's author only,
so an edit kept here would differ from the team's copy until a pull overwrote it. An update that
brings a secret into a shared memory makes it personal again and withdraws it from the team (a
delete op) rather than refuse the edit: the caller's correction is kept, here, and the answer says
why it left the team. The team server runs the same gate on what it receives.

``Sharing`` is what ``MemoryService``'s writer calls for each shared write (``service.team``),
under its lock just before the local write (``clarity.memory.writes``): it enqueues an op in the
outbox and wakes the sync thread, nothing more, so a hook that stores a shared memory pays one
local sqlite commit, never a network round trip, and a kill between the two leaves an op rather
than a shared memory the team never gets.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from clarity.config_team import TeamSettings
from clarity.memory.service import TeamRefusal
from clarity.models import GLOBAL_SCOPE, Memory, MemoryCreate, MemoryPatch
from clarity.redact import contains_secret, redact_record
from clarity.team.outbox import Kind, Outbox

log = logging.getLogger(__name__)

SHARED = "shared with the team"
HELD_SECRET = "kept personal: it held a secret"
GLOBAL_NEVER = "kept personal: a global memory is never shared"
QUEUED = "shared with the team: queued, sent in the background"
ALREADY = "already shared with the team"
WITHDRAWN = "withdrawn from the team: kept here as a personal memory"
NOT_SHARED = "personal already: nothing to withdraw from the team"
# The store answers a caller with these; the session id never leaves the machine (``sync.wire``),
# so it is not judged.
_NOT_SENT = ("scope", "session_id")
# Identifiers, and what the team server sets itself: never judged for secrets (as it does).
_IDENTIFIERS = ("id", "scope", "session_id", "content_hash", "author")
MARKER = "[REDACTED:"  # what ``clarity.redact`` puts where a secret was


def flagged(record: MemoryCreate | MemoryPatch) -> bool:
    """Whether redaction would change any field of ``record`` that the team would receive."""
    return redact_record(record, skip=_NOT_SENT) is not record


def flagged_fields(patch: MemoryPatch) -> list[str]:
    """The fields of ``patch`` (the caller's original values) in which redaction finds a secret."""
    clean = redact_record(patch, skip=_NOT_SENT)
    return [name for name in sorted(patch.model_fields_set) if getattr(clean, name) != getattr(patch, name)]


def held_secret(memory: Memory, patch: MemoryPatch) -> list[str]:
    """The fields through which sharing ``memory`` as ``patch`` leaves it would send a secret:
    the patch's new values, judged before redaction, and the stored fields it keeps, judged by
    the redaction markers in them (the store redacted the original text: a marker is the trace
    of a secret, and what surrounded it stays private too) and by redaction itself (a rule newer
    than the store). Text a patch replaces stays in ``previous_versions``, which goes along."""
    replaced = patch.model_fields_set - {"shared"}
    found = flagged_fields(patch)
    stored = memory.model_dump(mode="json", exclude={*_IDENTIFIERS, *(replaced - {"content"})})
    clean = redact_record(memory, skip=_IDENTIFIERS)
    for name, value in stored.items():
        where = "previous_versions" if name == "content" and "content" in replaced else name
        secret = getattr(clean, name) != getattr(memory, name) or (
            name == "previous_versions" and any(contains_secret(v.content) for v in memory.previous_versions)
        )
        if (secret or MARKER in json.dumps(value)) and where not in found:
            found.append(where)
    return found


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

    def storing(self, memory: Memory) -> None:
        """Before a store is written: a shared memory of ours goes to the team (a new one, or one
        stored again, which may have shared it now or changed its tags and importance). A
        teammate's memory stored again here only counts locally: its author's copy is the team's."""
        if memory.shared and memory.author in (None, self._user()):
            self._enqueue("put", memory)

    def patched(self, patch: MemoryPatch, memory: Memory) -> tuple[dict[str, Any], str | None]:
        """Before an update of ``memory``: the sharing fields the update sets, and what the
        caller is told (None: nothing to say). ``shared: true`` shares a personal project memory
        unless it holds a secret (``held_secret``); again, it changes nothing; ``shared: false``
        withdraws it (``TeamRefusal`` for a teammate's memory and a role that is not admin). An
        edit of a teammate's shared memory is ``TeamRefusal`` (``refuses_edit``); one that brings
        a secret into a shared memory makes it personal. The caller checked that a memory to share
        is not global."""
        if patch.shared is False:
            if not memory.shared:
                return {}, NOT_SHARED
            if (refusal := self._refusal(memory, "shared", "stop sharing it")) is not None:
                raise TeamRefusal(refusal)
            return {"shared": False}, WITHDRAWN
        if patch.shared is None and not memory.shared:
            return {}, None
        if (refusal := self.refuses_edit(memory, patch)) is not None:
            raise TeamRefusal(refusal)
        # Sharing judges what the memory holds now; an edit of a shared one, what the edit brings.
        secret = held_secret(memory, patch) if patch.shared and not memory.shared else flagged_fields(patch)
        if secret:
            said = f"{HELD_SECRET} ({', '.join(secret)})"
            return ({"shared": False}, f"{said}; withdrawn from the team") if memory.shared else ({}, said)
        if patch.shared is None:
            return {}, None
        if memory.shared:
            return {}, ALREADY
        return {"shared": True, "author": self._user()}, QUEUED

    def updating(self, before: Memory, memory: Memory) -> None:
        """Before an update is written: a memory that was shared and is no longer is withdrawn
        from the team (a delete op); a shared one sends its new state (a put). A teammate's memory
        gets here only while this daemon does not know its user yet (``refuses_edit``): then the
        team server decides, and the status line counts a refusal."""
        if before.shared and not memory.shared:
            self._enqueue("delete", memory)
        elif memory.shared:
            self._enqueue("put", memory)

    def refuses_delete(self, memory: Memory) -> str | None:
        """Why this daemon's user may not delete ``memory`` (a teammate's, and not an admin), or
        None. Said before the local delete: deleted here only, it would stay at the team and be
        missing from this replica until its author changed it. Unknown until the first whoami:
        then the server decides."""
        return self._refusal(memory, "id", "delete it")

    def refuses_edit(self, memory: Memory, patch: MemoryPatch) -> str | None:
        """Why this daemon's user may not edit ``memory`` (a teammate's shared memory: the team
        server takes a change from its author only, an admin's too), or None."""
        edits = sorted(patch.model_fields_set - {"shared"})
        user = self._user()
        if not edits or not memory.shared or user is None or memory.author in (None, user):
            return None
        return (
            f"{edits[0]}: {memory.id[:8]} was shared by {memory.author}; only {memory.author} can change "
            f"it (the team server takes a change from its author only; you are {user}). Withdrawing it "
            "from the team (shared: false, author or admin) makes it a personal memory you can edit"
        )

    def _refusal(self, memory: Memory, field: str, what: str) -> str | None:
        user, role = self._user(), self.status().get("role")
        if not memory.shared or memory.author in (None, user) or role in (None, "admin"):
            return None
        return (
            f"{field}: {memory.id[:8]} was shared by {memory.author}; only {memory.author} or a team "
            f"admin can {what} (you are {user}, role {role})"
        )

    def deleting(self, memory: Memory) -> None:
        """Before the delete of a shared memory here: deleted at the team too (if the role allows)."""
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
