"""Two team-server replicas with no state of their own, on one real Qdrant server (docs/team.md,
"Several replicas"): two ``clarity serve --team`` processes, each with its own storage root and
TLS, both on ``QDRANT_URL`` with one team collection, so users, op ids, the model identity and the
last change time are shared in the ``<collection>_team_*`` collections beside it.

They need a Qdrant server at ``QDRANT_URL`` (CI's test and team-cluster jobs have one) and skip
elsewhere with the reason; ``CLARITY_REQUIRE_QDRANT=1`` (set by CI) turns the skip into a failure.
tests/test_team_state_qdrant.py checks the same rules on qdrant-client's local mode.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clarity.team.protocol import OVERLAP_MS
from tests.conftest import REQUIRE_QDRANT
from tests.daemon_util import free_port, run_clarity
from tests.team_util import MODEL, TeamServer, delete, memory, put

QDRANT_URL = (os.environ.get("QDRANT_URL") or "").rstrip("/")


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TeamServer, TeamServer]]:
    if not QDRANT_URL:
        reason = "QDRANT_URL is not set: two team-server replicas share their state on a real Qdrant server"
        if REQUIRE_QDRANT:
            pytest.fail(f"CLARITY_REQUIRE_QDRANT=1 but {reason}")
        pytest.skip(reason)
    from qdrant_client import QdrantClient

    collection = f"team_replicas_{uuid.uuid4().hex[:10]}"
    env = {"QDRANT_URL": QDRANT_URL, "CLARITY_QDRANT__COLLECTION": collection}
    if os.environ.get("QDRANT_API_KEY"):
        env["QDRANT_API_KEY"] = os.environ["QDRANT_API_KEY"]
    root = tmp_path_factory.mktemp("replicas")
    one = TeamServer(root / "one", free_port(), root / "tls-one", env=env)
    two = TeamServer(root / "two", free_port(), root / "tls-two", env=env)
    try:
        with one.running(), two.running():
            yield one, two
    finally:
        client = QdrantClient(url=QDRANT_URL, api_key=env.get("QDRANT_API_KEY"))
        for name in (collection, *(f"{collection}_team_{part}" for part in ("users", "ops", "meta"))):
            if client.collection_exists(name):
                client.delete_collection(name)
        client.close()


@pytest.fixture(scope="module")
def alice(replicas: tuple[TeamServer, TeamServer]) -> str:
    """A writer added with ``clarity team user add`` through the first replica's settings."""
    return replicas[0].add_user("alice", "write")


def _ops(server: TeamServer, token: str, *ops: dict[str, Any], status: int = 200) -> list[dict[str, Any]]:
    with server.client(token) as client:
        response = client.post("/ops", json={"ops": list(ops)})
    assert response.status_code == status, response.text
    return response.json()["results"]


def _changes(server: TeamServer, token: str, project: str, since: int = 0) -> dict[str, Any]:
    with server.client(token) as client:
        response = client.get("/changes", params={"projects": project, "since": since})
    assert response.status_code == 200, response.text
    return response.json()


def _whoami(server: TeamServer, token: str) -> Any:
    with server.client(token) as client:
        return client.get("/whoami")


def test_a_user_added_through_one_replica_is_accepted_by_the_other(
    replicas: tuple[TeamServer, TeamServer], alice: str
) -> None:
    for server in replicas:
        answer = _whoami(server, alice)
        assert answer.status_code == 200, answer.text
        assert answer.json()["user"] == "alice"


def test_an_op_sent_to_each_replica_is_applied_once(
    replicas: tuple[TeamServer, TeamServer], alice: str
) -> None:
    one, two = replicas
    project = "github.com-acme-replica-once"
    record = memory("Releases are cut on Tuesdays", project)
    op = put(record, seed=1)
    assert [r["status"] for r in _ops(one, alice, op)] == ["applied"]
    # The answer was lost; the outbox sends the op again and the balancer picks the other replica.
    assert [r["status"] for r in _ops(two, alice, op)] == ["duplicate"]
    for server in replicas:
        assert [c["id"] for c in _changes(server, alice, project)["changes"]] == [record["id"]]


def test_a_model_fixed_on_one_replica_is_refused_on_the_other(
    replicas: tuple[TeamServer, TeamServer], alice: str
) -> None:
    one, two = replicas
    project = "github.com-acme-replica-model"
    assert [r["status"] for r in _ops(one, alice, put(memory("CI runs on arm64", project), seed=2))] == [
        "applied"
    ]
    assert _whoami(two, alice).json()["model"] == MODEL
    other = put(memory("Nightly tests at 2", project), seed=3, model="another-model@sha256:x")
    (result,) = _ops(two, alice, other)
    assert result["status"] == "refused"
    assert MODEL in result["error"]


def test_a_revoked_token_is_refused_by_both_replicas(replicas: tuple[TeamServer, TeamServer]) -> None:
    one, two = replicas
    token = two.add_user("carol", "read")
    assert all(_whoami(server, token).status_code == 200 for server in replicas)
    done = run_clarity(one.env(), "team", "user", "revoke", "carol", "--storage-root", str(one.root))
    assert done.returncode == 0, done.stderr
    for server in replicas:
        answer = _whoami(server, token)
        assert answer.status_code == 401, answer.text
        assert "revoked" in answer.json()["error"]


def test_pulls_through_either_replica_see_every_change(
    replicas: tuple[TeamServer, TeamServer], alice: str
) -> None:
    one, two = replicas
    project = "github.com-acme-replica-pull"
    records = [memory(f"Service {i} owns port {8000 + i}", project) for i in range(6)]
    for i, record in enumerate(records):  # alternate replicas, as a balancer spreads requests
        assert [r["status"] for r in _ops(replicas[i % 2], alice, put(record, seed=10 + i))] == ["applied"]
    assert [r["status"] for r in _ops(one, alice, delete(records[0]["id"], project))] == ["applied"]
    seen = [_changes(server, alice, project) for server in replicas]
    assert seen[0]["changes"] == seen[1]["changes"]
    assert {(c["id"], c["kind"]) for c in seen[0]["changes"]} == {
        (records[0]["id"], "delete"),
        *((r["id"], "put") for r in records[1:]),
    }
    times = [c["changed_at"] for c in seen[0]["changes"]]
    assert times == sorted(times) and len(set(times)) == len(times)

    # A daemon's next pull, from its cursor less the overlap, through the other replica.
    late = memory("Service 9 owns port 8009", project)
    assert [r["status"] for r in _ops(two, alice, put(late, seed=30))] == ["applied"]
    since = max(0, seen[0]["cursor"] - OVERLAP_MS)
    pulled = _changes(one, alice, project, since=since)["changes"]
    assert late["id"] in [c["id"] for c in pulled]
    assert pulled[-1]["changed_at"] > seen[0]["cursor"]  # stamped after every earlier change


def test_each_replica_writes_its_own_audit_log(replicas: tuple[TeamServer, TeamServer], alice: str) -> None:
    for server in replicas:
        logs = list(Path(server.root, "app-data", "team").glob("audit.*.jsonl"))
        assert len(logs) == 1, logs
        assert logs[0].read_text(encoding="utf-8").strip()
