"""The team tier's races and windows on a developer's daemon (docs/team.md, "Offline first"): a
pull that brings the team's older copy while a local edit or delete lands, a kill -9 between a
shared write and its op, an edit of a teammate's memory, and a team server that asks to wait.

Everything is real: ``clarity serve --team`` over TLS with users made by ``clarity team user add``,
the model and the embedded engine; the developers' services run in this process with their sync
rounds run by the test (``team_local.attach``), except where a test runs the sync thread, and the
kill -9 test, whose writer is a child process killed by the signal at a chosen instant.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clarity.embedding import EmbeddingProvider
from clarity.memory import MemoryNotFound, MemoryService
from clarity.memory.service import TeamRefusal
from clarity.models import Memory, MemoryCreate, MemoryPatch, content_hash
from clarity.requests import ListRequest
from clarity.team.sync import TeamSync

from . import test_dashboard_team, test_team_share_later
from .conftest import make_settings, open_engine
from .daemon_util import free_port
from .team_local import attach, local_service
from .team_util import TeamServer, put
from .test_team_daemon import wait_for
from .test_team_share_later import PROJECT, changes, join, pull, rest

local = pytest.fixture(local_service, name="local")
team_server = test_dashboard_team.team_server
bob_service = test_team_share_later.bob_service

V1 = "The public API allows 100 requests a minute per token."
V2 = "The public API allows 300 requests a minute per token."  # from alice's other machine
V3 = "The public API allows 600 requests a minute per token, since the March upgrade."  # here


def audit_of(server: TeamServer, memory_id: str) -> list[str]:
    return [line["outcome"] for line in server.audit() if line.get("id") == memory_id]


@pytest.fixture
def alice(local: MemoryService, team_server: TeamServer) -> Iterator[tuple[TeamSync, str]]:
    """Alice's team tier on ``local`` and an admin's token to read what the team holds."""
    admin, syncs = join(team_server, alice=local)
    yield syncs["alice"], admin
    syncs["alice"].stop()


@pytest.mark.parametrize("local_change", ["edit", "delete"])
def test_a_local_change_made_while_a_pull_applies_the_teams_older_copy_wins(
    local: MemoryService, team_server: TeamServer, alice: tuple[TeamSync, str], local_change: str
) -> None:
    sync, admin = alice
    ours = local.store(MemoryCreate(content=V1, scope=PROJECT, shared=True)).memory
    sync.round()  # at the team, and back here with alice's name
    assert local.get(ours.id).author == "alice"
    # Alice's other machine changes it at the team (her token): the next pull brings V2.
    other = local.get(ours.id).model_copy(update={"content": V2, "content_hash": content_hash(V2)})
    record = json.loads(other.model_dump_json())
    op = {**put(record, model=local.embedder.identity), "vector": local.embedder.embed_documents([V2])[0]}
    with team_server.client(sync.team.token.get_secret_value()) as client:  # type: ignore[union-attr]
        assert client.post("/ops", json={"ops": [op]}).json()["results"][0]["status"] == "applied"

    # While the pull applies V2 (after it decided what to apply), a hook edits or deletes it here.
    real = local.put_memories
    landed: list[str] = []

    def racing(*args: Any, **kwargs: Any) -> dict[str, int]:
        if not landed:
            if local_change == "edit":
                local.update(ours.id, MemoryPatch(content=V3))
            else:
                local.delete(ours.id)
            landed.append(local_change)
        return real(*args, **kwargs)

    local.put_memories = racing  # type: ignore[method-assign]
    sync.pull()
    assert landed == [local_change]
    if local_change == "edit":
        assert local.get(ours.id).content == V3  # not overwritten by the team's older V2
        sync.round()  # the edit is sent; the pull brings the team's copy, which has it
        assert changes(team_server, admin)[ours.id]["memory"]["content"] == V3
        back = local.get(ours.id)
        assert (back.content, back.author) == (V3, "alice")
    else:
        with pytest.raises(MemoryNotFound):
            local.get(ours.id)  # not brought back by the pull
        sync.round()
        assert changes(team_server, admin)[ours.id]["kind"] == "delete"
        with pytest.raises(MemoryNotFound):
            local.get(ours.id)
    assert sync.outbox.waiting() == 0 and sync.refused == 0


# A developer's service in a child process, killed by SIGKILL at one instant of a shared store.
_CHILD = """
import os, signal, sys
from pathlib import Path
from clarity.config import Settings
from clarity.embedding import create_embedding_provider
from clarity.memory import MemoryService
from clarity.models import MemoryCreate
from tests.conftest import make_settings, open_engine
from tests.team_local import attach

root, url, token, ca, point, project, text = sys.argv[1:8]
embedder = create_embedding_provider(Settings().embedding)  # not waited for: stored lexical first
service = MemoryService(make_settings(Path(root)), open_engine("embedded", Path(root)), embedder)
sync = attach(service, url, token, ca_file=ca)
target, name = (service.db, "upsert") if point == "engine-write" else (sync.outbox, "enqueue")
real = getattr(target, name)

def then_die(*args, **kwargs):
    real(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)

setattr(target, name, then_die)
service.store(MemoryCreate(content=text, scope=project, shared=True))
print("not killed")
"""


@pytest.mark.parametrize("point", ["engine-write", "outbox-enqueue"])
def test_a_kill_9_during_a_shared_store_never_leaves_a_memory_the_team_never_gets(
    tmp_path: Path, embedder: EmbeddingProvider, team_server: TeamServer, point: str
) -> None:
    token, admin = team_server.add_user("alice"), team_server.add_user("root", role="admin")
    root = tmp_path / "alice"
    text = f"Nightly backups of the orders database run at 02:00 UTC ({point})."
    args = [root, team_server.url, token, team_server.ca, point, PROJECT, text]
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, *map(str, args)],
        cwd=Path(__file__).parent.parent,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == -9, (child.returncode, child.stdout, child.stderr)
    # The daemon starts again on the same storage and its sync thread runs.
    service = MemoryService(make_settings(root), open_engine("embedded", root), embedder)
    sync = attach(service, team_server.url, token, ca_file=str(team_server.ca))
    try:
        service.backfill_vectors()  # stored while the model was loading: its vector comes first
        sync.round()
        listed = service.list(ListRequest(scope=PROJECT, limit=100)).memories
        here: list[Memory] = [m for m in listed if m.content == text]
        at_team = [c for c in changes(team_server, admin).values() if c["memory"]["content"] == text]
        assert sync.outbox.waiting() == 0 and sync.refused == 0
        # Either the write happened and the team has it, applied once, or neither has it.
        assert len(here) == len(at_team), (point, here, at_team)
        if point == "engine-write":  # killed after the memory was written here
            assert len(here) == 1 and audit_of(team_server, here[0].id) == ["applied"]
    finally:
        sync.stop()
        service.close()


def test_an_edit_of_a_teammates_memory_is_refused_before_anything_changes(
    local: MemoryService, bob_service: MemoryService, team_server: TeamServer
) -> None:
    _, syncs = join(team_server, alice=local, bob=bob_service)
    alice, bob = syncs["alice"], syncs["bob"]
    try:
        ours = local.store(MemoryCreate(content=V1, scope=PROJECT, shared=True)).memory
        alice.round()
        pull(bob)
        with pytest.raises(TeamRefusal, match=r"^content: .* was shared by alice; only alice can change it"):
            bob_service.update(ours.id, MemoryPatch(content=V3))
        with rest(bob_service) as client:
            refused = client.patch(f"/api/memories/{ours.id}", json={"tags": ["limits"]})
            assert refused.status_code == 403, refused.text
            assert refused.json()["error"].startswith(f"tags: {ours.id[:8]} was shared by alice")
        kept = bob_service.get(ours.id)
        assert (kept.content, kept.tags, kept.author) == (V1, [], "alice")
        assert bob.outbox.waiting() == 0
        # Her own memory alice edits as before: sent to the team.
        assert local.update(ours.id, MemoryPatch(content=V3)).content == V3
        assert [op.kind for op in alice.outbox.head(10)] == ["put"]
    finally:
        alice.stop()
        bob.stop()


def test_a_team_server_that_asks_to_wait_is_busy_not_unreachable(
    tmp_path: Path, local: MemoryService
) -> None:
    """Past ``team.writes_per_minute`` the real team server answers 429 with Retry-After: the
    daemon says it was asked to wait, keeps only the ops not answered for, and waits that long."""
    server = TeamServer(
        tmp_path / "team", free_port(), tmp_path / "tls", env={"CLARITY_TEAM__WRITES_PER_MINUTE": "12"}
    )
    with server.running():
        token = server.add_user("alice")
        sync = attach(local, server.url, token, ca_file=str(server.ca))
        words = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india")
        texts = [f"Build runner r{i:02d} serves the {w} pipeline." for i, w in enumerate(words + words[:4])]
        stored = [local.store(MemoryCreate(content=t, scope=PROJECT, shared=True)).memory for t in texts]
        assert sync.outbox.waiting() == 13
        sync.start()
        try:
            status = wait_for("the 429", lambda: (s := sync.status())["busy_retry_after"] is not None and s)
            asked_at = time.monotonic()
            assert status["unreachable_since"] is None and status["waiting"] == 1, status
            line = status["line"]
            assert re.search(r"team: alice on \S+, the server asked to wait [1-9]\d* s \(rate: ", line), line
            assert "unreachable" not in line and "1 write waiting" in line
            wait = status["busy_retry_after"]
            wait_for("the last write sent", lambda: sync.outbox.waiting() == 0, timeout=wait + 30)
            assert time.monotonic() - asked_at >= wait - 1.5  # it waited as asked, not a 1 s backoff
            wait_for("the status line clears", lambda: sync.status()["busy_retry_after"] is None)
            for memory in stored:  # each applied once: the answered ones were not sent again
                outcomes = audit_of(server, memory.id)
                assert outcomes.count("applied") == 1 and "duplicate" not in outcomes, outcomes
        finally:
            sync.stop()
