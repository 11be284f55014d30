"""``POST /team/v1/ops`` applied: each op once by its id, in the order sent, one request at a time
per process; across replicas, each op id is claimed in the shared state before it is applied
(``team.qdrant_state``), and an op another replica is applying stops the request (503, sent again).

The rules (docs/team.md), each refusal an ``OpResult`` with status "refused" and words naming
the field, so one bad op in a batch neither holds back the others nor is resent for ever:

- put: the record must be a shared project memory (``shared`` true, a project scope, never
  ``global``) that redaction does not flag (a second gate behind the daemon's own); its vector
  must come from the team's model (the first applied put fixes the identity and the length) and
  be finite and not all zeros; an id already held (or deleted) must be the sender's own, in the
  same project. The server sets ``author`` to the sender, whatever the record says.
- delete: by the memory's author, or by an admin; a delete of an id the server never held
  changes nothing.
- the sender's ``team.writes_per_minute``: past it, the request stops there and answers 429;
  what was applied reads as "duplicate" when the outbox sends the batch again.

Every op, applied, duplicate or refused, gets an audit line.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

from clarity.models import GLOBAL_SCOPE, Memory, parse_memory_id
from clarity.redact import contains_secret, redact_record
from clarity.team.audit import AuditLog
from clarity.team.backend import TeamLedger
from clarity.team.protocol import DeleteOp, OpResult, PutOp
from clarity.team.rate import WriteBudget
from clarity.team.state import ModelIdentity
from clarity.team.store import Stamps, TeamStore
from clarity.team.users import User

MIN_DIMENSION = 8  # embedding.dimension's lower limit (clarity/config.py)
BUSY_RETRY_SECONDS = 5  # Retry-After when another replica holds an op of the request


class Refused(Exception):
    """One op refused, with words naming the field."""


@dataclass(slots=True)
class Outcome:
    results: list[OpResult]
    retry_after: int | None = None  # the writes budget ran out: ops after the results wait this long
    busy: bool = False  # not the budget: another replica is applying the next op (503)


def secret_fields(memory: Memory) -> list[str]:
    """The fields of ``memory`` in which redaction finds a secret (identifiers left out)."""
    clean = redact_record(memory, skip=("id", "content_hash", "scope", "author"))
    found = [
        f"memory.{name}"
        for name in type(memory).model_fields
        if getattr(clean, name) != getattr(memory, name)
    ]
    found += [
        f"memory.previous_versions[{i}].content"
        for i, version in enumerate(memory.previous_versions)
        if contains_secret(version.content)
    ]
    return found


def check_vector(vector: list[float]) -> None:
    if len(vector) < MIN_DIMENSION:
        raise Refused(f"vector: {len(vector)} numbers; a model's vectors have at least {MIN_DIMENSION}")
    for i, value in enumerate(vector):
        if not math.isfinite(value):
            raise Refused(f"vector[{i}]: {value} is not a finite number")
    if not any(vector):
        raise Refused("vector: all zeros, which has no direction to compare by cosine")


def check_model(op: PutOp, team: ModelIdentity) -> None:
    if op.model != team.name:
        raise Refused(
            f"model: {op.model!r} made this vector, the team's vectors are made with {team.name!r} "
            "(fixed by its first put); use that model on this daemon (embedding.model)"
        )
    if len(op.vector) != team.dimension:
        raise Refused(f"vector: {len(op.vector)} numbers, the team's vectors have {team.dimension}")


class TeamWrites:
    def __init__(
        self, store: TeamStore, state: TeamLedger, audit: AuditLog, budget: WriteBudget, stamps: Stamps
    ) -> None:
        self._store = store
        self._state = state
        self._audit = audit
        self._budget = budget
        self._stamps = stamps
        self._lock = threading.Lock()  # one request at a time: op ids and order stay exact

    def apply(self, user: User, ops: list[PutOp | DeleteOp], remote: str) -> Outcome:
        """Apply ``ops`` in order for ``user``, who may write (the caller checked the role). An
        error of the store (a full disk) ends the request there; what was applied before it is
        still recorded and audited, and the error goes to the caller."""
        results: list[OpResult] = []
        entries: list[dict[str, Any]] = []
        applied: list[str] = []
        retry_after, busy = None, False
        with self._lock:
            team = self._state.model  # another replica may have fixed it since
            if team is not None:
                self._store.open(team.dimension)
            self._stamps.floor(self._state.last_stamp)  # after any replica's last recorded change
            claims = self._state.claim(list(dict.fromkeys(op.op_id for op in ops)))
            try:
                for op in ops:
                    line: dict[str, Any] = {
                        "user": user.name,
                        "op": op.kind,
                        "op_id": op.op_id,
                        "from": remote,
                    }
                    line.update(_target(op))
                    if op.op_id in applied or claims.status[op.op_id] == "applied":
                        results.append(OpResult(op_id=op.op_id, status="duplicate"))
                    elif claims.status[op.op_id] == "busy":
                        retry_after, busy = BUSY_RETRY_SECONDS, True
                        error = f"op_id: {op.op_id} is being applied by another replica; send again"
                        entries.append({**line, "outcome": "refused", "error": error})
                        break
                    elif not self._budget.take(user.name):
                        retry_after = self._budget.retry_after(user.name)
                        error = f"rate: {len(ops) - len(results)} ops over the limit"
                        entries.append({**line, "outcome": "refused", "error": error})
                        break
                    else:
                        results.append(self._apply_one(user, op, line, entries))
                        if results[-1].status == "applied":
                            applied.append(op.op_id)
                    result = results[-1]
                    entries.append(
                        {
                            **line,
                            "outcome": result.status,
                            **({"error": result.error} if result.error else {}),
                        }
                    )
            finally:
                self._state.finish(claims, applied, user.name, self._stamps.last)
                self._audit.write(entries)
        return Outcome(results, retry_after, busy)

    def _apply_one(
        self, user: User, op: PutOp | DeleteOp, line: dict[str, Any], entries: list[dict[str, Any]]
    ) -> OpResult:
        try:
            if isinstance(op, PutOp):
                self._put(user, op)
            else:
                self._delete(user, op)
        except Refused as exc:
            return OpResult(op_id=op.op_id, status="refused", error=str(exc))
        except Exception as exc:
            entries.append({**line, "outcome": "failed", "error": str(exc)[:500]})
            raise
        return OpResult(op_id=op.op_id, status="applied")

    def _put(self, user: User, op: PutOp) -> None:
        memory = op.memory
        if memory.scope == GLOBAL_SCOPE:
            raise Refused(
                "memory.scope: 'global': a global memory is never shared; team memories belong to a project"
            )
        if not memory.shared:
            raise Refused("memory.shared: false: a personal memory never goes to the team, only a shared one")
        check_vector(op.vector)
        team = self._state.model
        if team is not None:
            check_model(op, team)
        if flagged := secret_fields(memory):
            raise Refused(
                f"{', '.join(flagged)}: redaction flags a secret here; a memory that holds one stays personal"
            )
        stored = self._store.stored(memory.id)
        if stored is not None and stored.author != user.name:
            raise Refused(
                f"memory.id: {memory.id} is {stored.author}'s memory; only its author may change it"
            )
        if stored is not None and stored.project != memory.scope:
            raise Refused(
                f"memory.scope: memory {memory.id} is in project {stored.project}; a memory keeps its project"
            )
        if team is None:  # the first put, here or on another replica at the same time: one wins
            check_model(op, self._state.fix_model(ModelIdentity(op.model, len(op.vector))))
            self._store.open(len(op.vector))
        record = memory.model_copy(update={"author": user.name, "shared": True})
        self._store.put(record, op.vector, self._stamps.next())

    def _delete(self, user: User, op: DeleteOp) -> None:
        try:
            memory_id = parse_memory_id(op.id)
        except ValueError as exc:
            raise Refused(str(exc)) from None
        stored = self._store.stored(memory_id)
        if stored is None or stored.deleted:
            return  # nothing held, or already deleted: the state asked for is the state
        if stored.project != op.project:
            raise Refused(f"project: memory {memory_id} is in project {stored.project}, not {op.project}")
        if stored.author != user.name and user.role != "admin":
            raise Refused(
                f"id: {memory_id} is {stored.author}'s memory; only its author or an admin may delete it "
                f"({user.name} has the role {user.role})"
            )
        self._store.tombstone(memory_id, stored.project, stored.author, self._stamps.next())


def _target(op: PutOp | DeleteOp) -> dict[str, str]:
    if isinstance(op, PutOp):
        return {"id": op.memory.id, "project": op.memory.scope}
    return {"id": op.id, "project": op.project}
