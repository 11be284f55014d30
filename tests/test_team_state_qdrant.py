"""The team server's state in Qdrant (``clarity.team.qdrant_state``), as two replicas share it: each
"replica" here is its own backend objects (and its own ``TeamWrites``, stamps and audit log) on
one client: of the Qdrant server at QDRANT_URL when set (CI), else qdrant-client's local mode.
tests/integration/test_team_replicas.py runs two team-server processes on a real Qdrant server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from clarity.store.server import ServerStore
from clarity.team.audit import AuditLog
from clarity.team.protocol import PutOp
from clarity.team.qdrant_state import CLAIM_SECONDS, QdrantState, QdrantTeamState, QdrantUsers
from clarity.team.rate import WriteBudget
from clarity.team.state import ModelIdentity
from clarity.team.store import Stamps, TeamStore
from clarity.team.users import Unauthorized, User, UserError
from clarity.team.writes import TeamWrites

from .conftest import QDRANT_URL, _server_store, make_settings
from .team_util import DIMENSION, MODEL, memory, put

ALICE = User("alice", "write", 0.0)


class Clock:
    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def client() -> Iterator[QdrantClient]:
    shared = QdrantClient(url=QDRANT_URL) if QDRANT_URL else QdrantClient(location=":memory:")
    yield shared
    if QDRANT_URL:
        for name in [c.name for c in shared.get_collections().collections if c.name.startswith(TEAM)]:
            shared.delete_collection(name)
    shared.close()


TEAM = f"t_state_{uuid.uuid4().hex[:8]}"  # this run's collections, on a shared server too


def _state(client: QdrantClient) -> QdrantState:
    return QdrantState(client, TEAM)


def _replica(client: QdrantClient, clock: Clock | None = None) -> QdrantTeamState:
    return QdrantTeamState(_state(client), clock=clock or Clock())


class Replica:
    """One team-server replica's writes on the shared state and the shared store."""

    def __init__(
        self, client: QdrantClient, store: ServerStore, tmp_path: Path, name: str, ms: float
    ) -> None:
        self.state = _replica(client)
        self.stamps = Stamps(clock=lambda: ms / 1000)
        team = TeamStore(make_settings(tmp_path), None, opened=store)
        audit = AuditLog(tmp_path / name)
        self.writes = TeamWrites(team, self.state, audit, WriteBudget(600), self.stamps)


@pytest.fixture
def replicas(client: QdrantClient, tmp_path: Path) -> Iterator[tuple[Replica, Replica]]:
    store = _server_store(make_settings(tmp_path), TEAM)
    assert isinstance(store, ServerStore) and store.dimension == DIMENSION
    # b's clock is 10 s behind a's: its changes must still stamp after a's recorded ones.
    yield (
        Replica(client, store, tmp_path, "a", 1_750_000_010_000),
        Replica(client, store, tmp_path, "b", 1_750_000_000_000),
    )
    store.close()


def test_an_op_claimed_by_one_replica_is_busy_on_another_then_a_duplicate(client: QdrantClient) -> None:
    a, b = _replica(client), _replica(client)
    claims = a.claim(["op-1", "op-2"])
    assert claims.status == {"op-1": "new", "op-2": "new"}
    assert b.claim(["op-1", "op-2"]).status == {"op-1": "busy", "op-2": "busy"}
    a.finish(claims, ["op-1"], "alice", 5)  # op-2 refused: its claim is released
    again = b.claim(["op-1", "op-2"])
    assert again.status == {"op-1": "applied", "op-2": "new"}
    assert a.claim(["op-2"]).status == {"op-2": "busy"}


def test_a_claim_left_by_a_stopped_replica_is_taken_over_after_its_time(client: QdrantClient) -> None:
    clock = Clock()
    stopped, other = _replica(client, clock), _replica(client, clock)
    stopped.claim(["op-1"])  # ... and the replica stops before it finishes
    assert other.claim(["op-1"]).status == {"op-1": "busy"}
    clock.now += CLAIM_SECONDS + 1
    taken = other.claim(["op-1"])
    assert taken.status == {"op-1": "new"}
    other.finish(taken, ["op-1"], "alice", 7)
    assert stopped.claim(["op-1"]).status == {"op-1": "applied"}


def test_the_model_is_fixed_once_and_read_by_every_replica(client: QdrantClient) -> None:
    a, b = _replica(client), _replica(client)
    assert a.model is None and b.model is None  # b has looked, and found none yet
    first = ModelIdentity(MODEL, DIMENSION)
    assert a.fix_model(first) == first
    assert b.fix_model(ModelIdentity("other-model@sha256:x", 768)) == first  # the first put won
    assert b.model == first


def test_the_last_change_time_only_rises(client: QdrantClient) -> None:
    a, b = _replica(client), _replica(client)
    a.finish(a.claim(["op-1"]), ["op-1"], "alice", 2_000)
    b.finish(b.claim(["op-2"]), ["op-2"], "alice", 1_000)  # a replica whose clock is behind
    assert a.last_stamp == b.last_stamp == 2_000


def test_users_added_and_revoked_anywhere_count_on_every_replica(client: QdrantClient) -> None:
    command = QdrantUsers(_state(client))  # `clarity team user` on some host
    one, two = QdrantUsers(_state(client)), QdrantUsers(_state(client))
    token = command.add("alice", "write")
    for replica in (one, two):
        assert replica.authenticate(f"Bearer {token}").name == "alice"
    with pytest.raises(UserError, match="already has a token"):
        command.add("alice", "admin")
    assert command.revoke("alice").revoked_at is not None
    for replica in (one, two):
        with pytest.raises(Unauthorized, match="revoked"):
            replica.authenticate(f"Bearer {token}")
    new = command.add("alice", "admin")  # a lost laptop: revoke, then add again
    assert one.authenticate(f"Bearer {new}").role == "admin"
    with pytest.raises(Unauthorized):
        two.authenticate(f"Bearer {token}")
    with pytest.raises(Unauthorized, match="not a team user"):
        two.authenticate("Bearer not-a-token")
    with pytest.raises(UserError, match="no user bob"):
        command.revoke("bob")
    assert [(u.name, u.role) for u in two.list()] == [("alice", "admin")]


def test_an_op_sent_to_each_replica_is_applied_once(replicas: tuple[Replica, Replica]) -> None:
    a, b = replicas
    record = memory("The deploy key rotates every 90 days", "github.com-acme-replicas")
    op = PutOp.model_validate(put(record, seed=1))
    assert [r.status for r in a.writes.apply(ALICE, [op], "10.0.0.1").results] == ["applied"]
    # The answer was lost; the outbox sends it again and the balancer picks the other replica.
    assert [r.status for r in b.writes.apply(ALICE, [op], "10.0.0.1").results] == ["duplicate"]
    # A later change through b is stamped after a's, though b's clock is 10 s behind.
    later = PutOp.model_validate(put(memory("Rotation is automated", "github.com-acme-replicas"), seed=2))
    assert [r.status for r in b.writes.apply(ALICE, [later], "10.0.0.1").results] == ["applied"]
    assert b.stamps.last > a.stamps.last


def test_a_replica_refuses_another_model_than_the_one_fixed_elsewhere(
    replicas: tuple[Replica, Replica],
) -> None:
    a, b = replicas
    project = "github.com-acme-models"
    first = PutOp.model_validate(put(memory("Builds run on arm64", project), seed=3))
    assert [r.status for r in a.writes.apply(ALICE, [first], "10.0.0.1").results] == ["applied"]
    other = PutOp.model_validate(put(memory("Tests run nightly", project), seed=4, model="other@sha256:y"))
    (result,) = b.writes.apply(ALICE, [other], "10.0.0.2").results
    assert result.status == "refused" and result.error and MODEL in result.error


def test_an_op_another_replica_is_applying_stops_the_request(
    client: QdrantClient, replicas: tuple[Replica, Replica]
) -> None:
    a, _ = replicas
    project = "github.com-acme-busy"
    first = PutOp.model_validate(put(memory("The cache is warmed at 6", project), seed=5))
    held = PutOp.model_validate(put(memory("The cache holds 2 GB", project), seed=6))
    elsewhere = _replica(client).claim([held.op_id])  # in flight on a third replica
    outcome = a.writes.apply(ALICE, [first, held], "10.0.0.1")
    assert [r.status for r in outcome.results] == ["applied"]
    assert outcome.busy and outcome.retry_after
    # Once the other replica is done, the resend finds it applied there.
    _replica(client).finish(elsewhere, [held.op_id], "alice", 1)
    assert [r.status for r in a.writes.apply(ALICE, [first, held], "10.0.0.1").results] == [
        "duplicate",
        "duplicate",
    ]
