"""The team tier's Qdrant cluster as compose.team.yaml deploys it, with Clarity's server engine on it.

These tests need a real cluster of three peers at ``QDRANT_URL``: CI's team-cluster job starts one
with ``docker compose -f compose.team.yaml up -d --wait qdrant-1 qdrant-2 qdrant-3`` and sets
``QDRANT_URL`` to qdrant-1. Anywhere else they skip with the reason; ``REQUIRE_TEAM_CLUSTER=1``
(set by that job) turns the skip into a failure. The names carry no ``CLARITY_`` prefix because
tests/conftest.py clears every ``CLARITY_*`` variable before the tests run.

The team collection is made with the shard and replica counts compose.team.yaml gives the team
server (read from the file), through ``ServerStore``, the engine the team server stores with, so
what is checked is the deployment as written. The node-loss test stops and starts qdrant-3 of the
compose project named by ``TEAM_COMPOSE_PROJECT``. The last test talks to the team server that
compose.team.yaml runs on the cluster, with the daemon's own client: ``TEAM_SERVER_URL``,
``TEAM_SERVER_CA`` (the certificate to trust) and ``TEAM_SERVER_TOKEN`` (an admin's), required
when ``REQUIRE_TEAM_SERVER=1``.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parents[2]
TEAM_COMPOSE = REPO / "compose.team.yaml"
QDRANT_URL = (os.environ.get("QDRANT_URL") or "").rstrip("/")
REQUIRED = os.environ.get("REQUIRE_TEAM_CLUSTER") == "1"
COMPOSE_PROJECT = os.environ.get("TEAM_COMPOSE_PROJECT", "")
PEERS = 3
DIMENSION = 8  # the cluster does not care about the size; small vectors keep the test light
POINTS = 60


def _get_json(url: str, timeout: float = 5) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read().decode("utf-8"))


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def _cluster_reason() -> str | None:
    """None when QDRANT_URL is a peer of a cluster of three, else why the tests cannot run."""
    if not QDRANT_URL:
        return "QDRANT_URL is not set (start compose.team.yaml's qdrant-1..3 and point it at qdrant-1)"
    try:
        cluster = _get_json(f"{QDRANT_URL}/cluster")["result"]
    except (OSError, ValueError, KeyError) as exc:
        return f"no Qdrant cluster answers at {QDRANT_URL}/cluster: {exc}"
    if cluster.get("status") != "enabled":
        return f"the Qdrant at {QDRANT_URL} is not in cluster mode (QDRANT__CLUSTER__ENABLED)"
    peers = len(cluster.get("peers") or {})
    if peers < PEERS:
        return f"the cluster at {QDRANT_URL} has {peers} peer(s), these tests need {PEERS}"
    return None


SKIP_REASON = _cluster_reason()


@pytest.fixture(autouse=True)
def _need_cluster() -> None:
    if SKIP_REASON is None:
        return
    if REQUIRED:
        pytest.fail(f"REQUIRE_TEAM_CLUSTER=1 but {SKIP_REASON}")
    pytest.skip(f"needs a 3-node Qdrant cluster: {SKIP_REASON}")


# --- what compose.team.yaml says ------------------------------------------------------------


def _interpolate(value: str) -> str:
    """Compose's ${VAR:-default} (and ${VAR:?message}), from this process's environment."""

    def one(match: re.Match[str]) -> str:
        name, sep, rest = match.group(1), match.group(2) or "", match.group(3) or ""
        set_value = os.environ.get(name)
        if set_value:
            return set_value
        return rest if sep == ":-" else ""

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, value)


def _compose() -> dict[str, Any]:
    return yaml.safe_load(TEAM_COMPOSE.read_text(encoding="utf-8"))


def team_collection_layout() -> tuple[int, int]:
    """(shard_number, replication_factor) that compose.team.yaml gives the team server."""
    env = _compose()["services"]["team"]["environment"]
    return (
        int(_interpolate(str(env["CLARITY_QDRANT__SHARD_NUMBER"]))),
        int(_interpolate(str(env["CLARITY_QDRANT__REPLICATION_FACTOR"]))),
    )


def node_http_url(service: str) -> str:
    """The 127.0.0.1 URL compose.team.yaml publishes a node's HTTP port on."""
    (port,) = _compose()["services"][service]["ports"]
    host, published, _ = _interpolate(str(port)).rsplit(":", 2)
    return f"http://{host}:{published}"


# --- the team store on the cluster ----------------------------------------------------------


def _open_team_store(name: str) -> Any:
    from clarity.config import QdrantSettings
    from clarity.store.server import ServerStore

    shards, replicas = team_collection_layout()
    settings = QdrantSettings(
        url=QDRANT_URL, collection=name, timeout=60, shard_number=shards, replication_factor=replicas
    )
    return ServerStore(settings, DIMENSION)


def _points(count: int, seed: int) -> list[Any]:
    from clarity.store.base import PointData

    rng = random.Random(seed)
    points = []
    for i in range(count):
        dense = [rng.uniform(-1, 1) for _ in range(DIMENSION)]
        payload = {"scope": "team-cluster-test", "content": f"memory {i}", "importance": 0.5}
        points.append(PointData(str(uuid.UUID(int=rng.getrandbits(128))), dense, ([i + 1], [1.0]), payload))
    return points


@pytest.fixture
def team_store() -> Iterator[Any]:
    store = _open_team_store(f"team_cluster_{uuid.uuid4().hex[:10]}")
    try:
        yield store
    finally:
        store.client.delete_collection(store.collection)
        store.close()


def _replicas(collection: str) -> dict[int, list[tuple[int, str]]]:
    """shard id -> [(peer id, replica state)], as the cluster reports it."""
    info = _get_json(f"{QDRANT_URL}/collections/{collection}/cluster")["result"]
    shards: dict[int, list[tuple[int, str]]] = {}
    for shard in info["local_shards"]:
        shards.setdefault(shard["shard_id"], []).append((info["peer_id"], shard["state"]))
    for shard in info["remote_shards"]:
        shards.setdefault(shard["shard_id"], []).append((shard["peer_id"], shard["state"]))
    return shards


def _all_active(collection: str) -> bool:
    return all(state == "Active" for copies in _replicas(collection).values() for _, state in copies)


def _wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last is True:
                return
        except Exception as exc:  # a node coming back may refuse a request or two
            last = exc
        time.sleep(1)
    raise AssertionError(f"{what} within {timeout:.0f} s; last: {last!r}")


def _assert_all_there(store: Any, points: list[Any]) -> None:
    from clarity.store.base import MemoryFilter

    assert store.count() == len(points)
    assert {hit.id for hit in store.get([p.id for p in points])} == {p.id for p in points}
    probe = points[7]
    hits = store.search(probe.dense, None, MemoryFilter(), limit=3, mode="dense", exact=True)
    assert hits and hits[0].id == probe.id


def test_team_cluster_has_three_ready_peers_and_a_leader() -> None:
    cluster = _get_json(f"{QDRANT_URL}/cluster")["result"]
    assert cluster["status"] == "enabled"
    assert len(cluster["peers"]) == PEERS, cluster["peers"]
    assert cluster["raft_info"]["leader"] is not None, cluster["raft_info"]
    assert _ready(QDRANT_URL)


def test_team_store_spreads_shards_and_replicas_over_the_cluster(team_store: Any) -> None:
    shards, replicas = team_collection_layout()
    params = team_store.client.get_collection(team_store.collection).config.params
    assert (params.shard_number, params.replication_factor) == (shards, replicas)

    # Replicas start as "Initializing" on the peers that make them, then turn active.
    _wait_until(lambda: _all_active(team_store.collection), 60, "every replica active")
    layout = _replicas(team_store.collection)
    assert sorted(layout) == list(range(shards)), layout
    for shard_id, copies in layout.items():
        peers = {peer for peer, _ in copies}
        assert len(peers) == replicas, f"shard {shard_id} is on {sorted(peers)}, wanted {replicas} peers"
    assert len({peer for copies in layout.values() for peer, _ in copies}) == PEERS

    points = _points(POINTS, seed=1)
    team_store.upsert(points)
    _assert_all_there(team_store, points)
    team_store.delete([points[0].id])
    assert team_store.count() == POINTS - 1


@pytest.mark.docker
def test_team_store_keeps_answering_and_writing_with_a_node_down(team_store: Any) -> None:
    """With two copies of every shard, losing one node of three loses no memory and no write."""
    if not COMPOSE_PROJECT or shutil.which("docker") is None:
        reason = "TEAM_COMPOSE_PROJECT (the compose project of compose.team.yaml) and docker are needed"
        if REQUIRED:
            pytest.fail(f"REQUIRE_TEAM_CLUSTER=1 but {reason}")
        pytest.skip(reason)
    _, replicas = team_collection_layout()
    assert replicas >= 2, "compose.team.yaml keeps one copy of each shard: losing a node loses memories"
    # Compose reads the whole file, TLS folder included, for any command.
    env = {**os.environ, "CLARITY_TEAM_TLS_DIR": os.environ.get("CLARITY_TEAM_TLS_DIR", "/nonexistent")}
    compose = ["docker", "compose", "-f", str(TEAM_COMPOSE), "-p", COMPOSE_PROJECT]

    points = _points(POINTS, seed=2)
    team_store.upsert(points)
    subprocess.run([*compose, "stop", "qdrant-3"], env=env, check=True, timeout=120)
    try:
        _wait_until(lambda: _assert_all_there(team_store, points) or True, 60, "every memory read back")
        late = _points(1, seed=3)
        team_store.upsert(late)
        _assert_all_there(team_store, points + late)
    finally:
        subprocess.run([*compose, "start", "qdrant-3"], env=env, check=True, timeout=120)
        _wait_until(lambda: _ready(node_http_url("qdrant-3")), 180, "qdrant-3 ready again")
    # The node that was away catches up: every copy active again, nothing lost.
    _wait_until(lambda: _all_active(team_store.collection), 180, "every replica active again")
    _assert_all_there(team_store, points + late)


def test_deployed_team_server_keeps_team_memories_on_the_cluster() -> None:
    """compose.team.yaml's team server, over TLS, stores in the cluster with the file's layout."""
    from clarity.config_team import TeamSettings
    from clarity.team.client import TeamClient
    from clarity.team.protocol import DeleteOp, PutOp
    from tests.team_util import memory, put

    url, ca, token = (os.environ.get(f"TEAM_SERVER_{k}", "") for k in ("URL", "CA", "TOKEN"))
    if not (url and ca and token):
        reason = "TEAM_SERVER_URL, TEAM_SERVER_CA and TEAM_SERVER_TOKEN name no team server"
        if os.environ.get("REQUIRE_TEAM_SERVER") == "1":
            pytest.fail(f"REQUIRE_TEAM_SERVER=1 but {reason}")
        pytest.skip(reason)
    client = TeamClient(TeamSettings(url=url, token=token, ca_file=Path(ca)))
    try:
        who = client.whoami()
        project = f"team-cluster-{uuid.uuid4().hex[:12]}"
        record = memory("the team server stores on three Qdrant nodes", project)
        op = PutOp.model_validate(put(record, seed=4))
        assert [r.status for r in client.push([op]).results] == ["applied"]
        assert [r.status for r in client.push([op]).results] == ["duplicate"]  # an outbox's resend
        (change,) = client.changes([project], 0, 10).changes
        assert (change.kind, change.memory and change.memory.author) == ("put", who.user)
        assert change.vector and len(change.vector) == len(op.vector)

        # Where it went: the team collection on the cluster, laid out as compose.team.yaml says.
        collection = str(_compose()["services"]["team"]["environment"]["CLARITY_QDRANT__COLLECTION"])
        params = _get_json(f"{QDRANT_URL}/collections/{collection}")["result"]["config"]["params"]
        assert (params["shard_number"], params["replication_factor"]) == team_collection_layout()
        layout = _replicas(collection)
        assert len({peer for copies in layout.values() for peer, _ in copies}) == PEERS

        gone = DeleteOp(op_id=str(uuid.uuid4()), id=record["id"], project=project)
        assert [r.status for r in client.push([gone]).results] == ["applied"]
        assert [c.kind for c in client.changes([project], 0, 10).changes] == ["delete"]
    finally:
        client.close()
