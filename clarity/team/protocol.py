"""What a developer's daemon and the team server say to each other (docs/team.md).

JSON over HTTPS, each request with ``Authorization: Bearer <token>`` (a team server user's).
Three calls, all under ``/team/v1``:

- ``GET /whoami``: the token's user and role; a daemon asks it once at start and says in its
  status line who it shares as.
- ``POST /ops``: writes, in the order the developer made them. Each op has an id the daemon gave
  it when it entered the outbox; the server applies an id once and answers ``duplicate`` for it
  again, so an outbox that resends after a lost answer writes exactly once. A ``put`` carries the
  whole record and its dense vector: the server has no model, and refuses a vector made by
  another model than the team's (the first put fixes it). The server sets ``author`` itself, from
  the token, whatever the record says, and refuses a record redaction flags (a second gate behind
  the daemon's own).
- ``GET /changes?projects=a,b&since=<cursor>&limit=<n>``: what changed in those projects since a
  cursor, oldest first: puts with their record and vector, deletes as tombstones. A cursor is the
  server's change time in milliseconds; replicas of the server stamp changes from their own
  clocks, so a daemon asks again from ``since - OVERLAP_MS`` and drops what it already holds
  (a change is (id, changed_at)).

Roles: ``read`` pulls; ``write`` also puts and deletes its own memories; ``admin`` also deletes
anyone's. A refusal is an HTTP error with ``{"error": "..."}`` naming the field and the limit.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from clarity.models import MAX_VECTOR_DIMENSION, SCOPE_PATTERN, Memory

PREFIX = "/team/v1"
MAX_OPS = 256  # per POST /ops
MAX_CHANGES = 1_000  # per GET /changes
MAX_PROJECTS = 64  # per GET /changes
OVERLAP_MS = 5_000  # a daemon asks again from this long before its cursor (clocks of several replicas)
USER_PATTERN = r"^[a-z][a-z0-9_.-]{0,63}$"

Role = Literal["read", "write", "admin"]
UserName = Annotated[str, StringConstraints(pattern=USER_PATTERN)]
ProjectId = Annotated[str, StringConstraints(pattern=SCOPE_PATTERN)]
OpId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f-]{36}$")]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WhoAmI(_Wire):
    user: UserName
    role: Role
    model: str | None = Field(
        None, description="the model identity the team's vectors are made with, once set"
    )


class PutOp(_Wire):
    op_id: OpId
    kind: Literal["put"] = "put"
    memory: Memory
    vector: Annotated[list[float], Field(min_length=1, max_length=MAX_VECTOR_DIMENSION)]
    model: str = Field(max_length=256, description="the identity of the model that made the vector")


class DeleteOp(_Wire):
    op_id: OpId
    kind: Literal["delete"] = "delete"
    id: str = Field(max_length=64)
    project: ProjectId


Op = Annotated[PutOp | DeleteOp, Field(discriminator="kind")]


class OpsRequest(_Wire):
    ops: Annotated[list[Op], Field(min_length=1, max_length=MAX_OPS)]


class OpResult(_Wire):
    op_id: str
    status: Literal["applied", "duplicate", "refused"]
    error: str | None = None  # refused: why, naming the field


class OpsResponse(_Wire):
    results: list[OpResult]


class Change(_Wire):
    id: str
    project: ProjectId
    kind: Literal["put", "delete"]
    changed_at: int = Field(ge=0, description="the server's change time, milliseconds since the epoch")
    memory: Memory | None = None  # put
    vector: list[float] | None = None  # put


class ChangesResponse(_Wire):
    changes: list[Change]
    cursor: int = Field(ge=0, description="ask again from here (less OVERLAP_MS)")
    more: bool = Field(description="more changes wait past this page")
