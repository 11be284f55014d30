"""Sharing a memory after it was stored, and withdrawing it (``MemoryPatch.shared``, docs/team.md):
through the secret gate, to a real team server and a teammate's replica, refused for a teammate's
memory without the admin role, on every surface (the service, REST, the dashboard's button with its
CSRF token, and the MCP tool over both transports).

Everything is real: ``clarity serve --team`` over TLS with users made by ``clarity team user add``,
the model and the embedded engine. Developers' services run in this process with their sync
rounds run by the test (``team_local.attach``), except the last test's daemon, which runs its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from starlette.testclient import TestClient

from clarity.embedding import EmbeddingProvider
from clarity.http.app import create_app
from clarity.memory import MemoryService
from clarity.memory.service import TeamRefusal
from clarity.models import MemoryCreate, MemoryPatch
from clarity.team.share import ALREADY, HELD_SECRET, NOT_SHARED, QUEUED, WITHDRAWN
from clarity.team.sync import TeamSync

from . import test_dashboard_team
from .conftest import make_settings, open_engine
from .team_local import attach, local_service
from .team_util import TeamServer
from .test_dashboard_anchors import token
from .test_dashboard_team import text
from .test_mcp import http_client, stdio_client
from .test_team_daemon import developer, wait_for

PROJECT = "shop-0123456789ab"
TOKEN = "ghp_1234567890abcdefghijklmnopqrstuvwxyzAB"
LATER = "Feature flags live in config/flags.yaml and ship with the release."

local = pytest.fixture(local_service, name="local")
team_server = test_dashboard_team.team_server


@pytest.fixture
def bob_service(tmp_path: Path, embedder: EmbeddingProvider) -> Iterator[MemoryService]:
    """A teammate's daemon on its own storage root (the same model, as a team needs)."""
    root = tmp_path / "bob"
    service = MemoryService(make_settings(root), open_engine("embedded", root), embedder)
    yield service
    service.close()


@contextmanager
def rest(service: MemoryService) -> Iterator[TestClient]:
    """The daemon's app on ``service``, in this process (the dashboard and REST)."""
    app = create_app(service.settings, service)
    try:
        yield TestClient(app, base_url="http://127.0.0.1:8000", follow_redirects=False)
    finally:
        app.state.hooks.close()


def join(server: TeamServer, **services: MemoryService) -> tuple[str, dict[str, TeamSync]]:
    """A team server user (role write) for each developer's service, its team tier attached; and
    an admin's token, to read what the team holds."""
    syncs = {
        name: attach(service, server.url, server.add_user(name), ca_file=str(server.ca))
        for name, service in services.items()
    }
    return server.add_user("root", role="admin"), syncs


def changes(server: TeamServer, admin: str) -> dict[str, dict[str, Any]]:
    """The team's last change of each memory of the project, as an admin reads it."""
    with server.client(admin) as client:
        found = client.get("/changes", params={"projects": PROJECT, "since": 0}).json()["changes"]
    return {change["id"]: change for change in found}


def pull(sync: TeamSync) -> None:
    sync.outbox.know([PROJECT])  # the teammate works in the project's repository
    sync.round()


def test_share_afterwards_reaches_the_team_and_a_teammates_replica_once(
    local: MemoryService, bob_service: MemoryService, team_server: TeamServer
) -> None:
    admin, syncs = join(team_server, alice=local, bob=bob_service)
    alice, bob = syncs["alice"], syncs["bob"]
    try:
        stored = local.store(MemoryCreate(content=LATER, scope=PROJECT)).memory
        alice.round()
        assert not stored.shared and changes(team_server, admin) == {}  # personal: never sent

        shared = local.update(stored.id, MemoryPatch(shared=True))
        assert (shared.team, shared.shared, shared.author) == (QUEUED, True, "alice")
        again = local.update(stored.id, MemoryPatch(shared=True))
        assert again.team == ALREADY and again.updated_at == shared.updated_at  # nothing written
        assert [(op.kind, op.memory_id) for op in alice.outbox.head(10)] == [("put", stored.id)]
        alice.round()
        on_team = changes(team_server, admin)[stored.id]
        assert (on_team["kind"], on_team["memory"]["author"], on_team["memory"]["content"]) == (
            "put",
            "alice",
            LATER,
        )
        applied = [line for line in team_server.audit() if line.get("id") == stored.id]
        assert [line["outcome"] for line in applied] == ["applied"]

        pull(bob)
        replica = bob_service.get(stored.id)
        assert (replica.shared, replica.author, replica.content) == (True, "alice", LATER)

        # An edit of a shared memory of one's own goes to the team, and on to the replica.
        edited = local.update(stored.id, MemoryPatch(content=LATER.replace("config/", "conf/")))
        assert edited.shared and edited.team is None
        alice.round()
        assert changes(team_server, admin)[stored.id]["memory"]["content"] == edited.content
        pull(bob)
        assert bob_service.get(stored.id).content == edited.content
    finally:
        alice.stop()
        bob.stop()


def test_a_memory_that_held_a_secret_stays_personal_and_never_reaches_the_team(
    local: MemoryService, team_server: TeamServer
) -> None:
    admin, syncs = join(team_server, alice=local)
    alice = syncs["alice"]
    try:
        in_text = local.store(MemoryCreate(content=f"Deploy db7 with the token {TOKEN}.", scope=PROJECT))
        in_tag = local.store(MemoryCreate(content="The zebra deploy tag.", tags=[TOKEN], scope=PROJECT))
        earlier = local.store(MemoryCreate(content=f"Host kudu-9 takes {TOKEN}.", scope=PROJECT)).memory
        local.update(earlier.id, MemoryPatch(content="Host kudu-9 takes the deploy token."))
        plain = local.store(MemoryCreate(content="The okapi job runs nightly.", scope=PROJECT)).memory
        answers = {
            "content": local.update(in_text.id, MemoryPatch(shared=True)),
            "tags": local.update(in_tag.id, MemoryPatch(shared=True)),
            "previous_versions": local.update(earlier.id, MemoryPatch(shared=True)),
            # A secret brought in by the very patch that shares it: judged before redaction.
            "content, tags": local.update(
                plain.id, MemoryPatch(content=f"okapi uses {TOKEN}", tags=[TOKEN], shared=True)
            ),
        }
        for fields, answer in answers.items():
            assert (answer.team, answer.shared) == (f"{HELD_SECRET} ({fields})", False), answer
            assert local.get(answer.id).shared is False
        assert "[REDACTED:" in local.get(plain.id).content  # the edit is kept, redacted, here
        assert alice.outbox.waiting() == 0
        clean = local.store(MemoryCreate(content=LATER, scope=PROJECT)).memory
        assert local.update(clean.id, MemoryPatch(shared=True)).team == QUEUED  # the control
        alice.round()
        assert list(changes(team_server, admin)) == [clean.id]
        seen = str(team_server.audit()) + team_server.log()
        for word in ("db7", "zebra", "kudu", "okapi", "REDACTED", TOKEN[4:20]):
            assert word not in seen, word

        # A global memory is about the developer: never shared, a 400 naming the field.
        mine = local.store(MemoryCreate(content="I like short answers.", scope="global")).memory
        with pytest.raises(ValueError, match=r"^shared: memory \w{8} is a global memory"):
            local.update(mine.id, MemoryPatch(shared=True))
        with rest(local) as client:
            answer = client.patch(f"/api/memories/{mine.id}", json={"shared": True})
            assert answer.status_code == 400 and answer.json()["error"].startswith("shared: "), answer.text
            kept = client.patch(f"/api/memories/{in_text.id}", json={"shared": True})
            assert kept.status_code == 200 and kept.json()["team"] == f"{HELD_SECRET} (content)"
            assert kept.json()["shared"] is False
            null = client.patch(f"/api/memories/{in_text.id}", json={"shared": None})
            assert null.status_code == 400 and "shared" in null.text, null.text
        assert alice.outbox.waiting() == 0
    finally:
        alice.stop()


def test_stop_sharing_withdraws_ones_own_and_refuses_a_teammates_without_admin(
    local: MemoryService, bob_service: MemoryService, team_server: TeamServer, tmp_path: Path
) -> None:
    admin, syncs = join(team_server, alice=local, bob=bob_service)
    alice, bob = syncs["alice"], syncs["bob"]
    try:
        ours = local.store(MemoryCreate(content=LATER, scope=PROJECT, shared=True)).memory
        other = local.store(MemoryCreate(content="Releases are cut on Tuesdays.", scope=PROJECT)).memory
        local.update(other.id, MemoryPatch(shared=True))
        alice.round()
        pull(bob)
        assert bob_service.get(ours.id).author == "alice"

        # Bob (role write) may not withdraw alice's memory: refused before anything changes.
        with pytest.raises(TeamRefusal, match="only alice or a team admin can stop sharing it"):
            bob_service.update(ours.id, MemoryPatch(shared=False))
        with rest(bob_service) as client:
            refused = client.patch(f"/api/memories/{ours.id}", json={"shared": False})
            assert refused.status_code == 403 and "only alice" in refused.json()["error"], refused.text
        assert bob_service.get(ours.id).shared is True and bob.outbox.waiting() == 0

        # Alice withdraws hers: the team's copy goes (a tombstone), hers stays, personal.
        withdrawn = local.update(ours.id, MemoryPatch(shared=False))
        assert (withdrawn.team, withdrawn.shared) == (WITHDRAWN, False)
        assert local.update(ours.id, MemoryPatch(shared=False)).team == NOT_SHARED
        assert [op.kind for op in alice.outbox.head(10)] == ["delete"]
        alice.round()  # the pull brings the tombstone back: the personal copy is left alone
        assert changes(team_server, admin)[ours.id]["kind"] == "delete"
        kept = local.get(ours.id)
        assert (kept.shared, kept.content) == (False, LATER)
        pull(bob)
        with pytest.raises(LookupError):
            bob_service.get(ours.id)

        # An admin may withdraw a teammate's memory: it leaves the team, the admin keeps a copy.
        root_root = tmp_path / "root"
        root_service = MemoryService(
            make_settings(root_root), open_engine("embedded", root_root), local.embedder
        )
        root = attach(root_service, team_server.url, admin, ca_file=str(team_server.ca))
        try:
            pull(root)
            assert root_service.update(other.id, MemoryPatch(shared=False)).team == WITHDRAWN
            root.round()
            assert changes(team_server, admin)[other.id]["kind"] == "delete"
            assert root_service.get(other.id).shared is False
        finally:
            root.stop()
            root_service.close()
    finally:
        alice.stop()
        bob.stop()


def test_the_dashboard_button_shares_and_stops_sharing_with_its_csrf_token(
    local: MemoryService, team_server: TeamServer
) -> None:
    memory = local.store(MemoryCreate(content=LATER, scope=PROJECT)).memory
    secret = local.store(MemoryCreate(content=f"The gnu token is {TOKEN}.", scope=PROJECT)).memory
    with rest(local) as client:
        assert 'id="share"' not in client.get(f"/memory/{memory.id}").text  # no team server set
        admin, syncs = join(team_server, alice=local)
        alice = syncs["alice"]
        try:
            page = client.get(f"/memory/{memory.id}").text
            assert text(page, "share") == "Share with the team"
            csrf = token(page)
            share = f"/memory/{memory.id}/share"
            assert client.post(share, data={"shared": "1"}).status_code == 403  # no CSRF token
            assert client.post(share, data={"shared": "1", "csrf_token": "0" * 64}).status_code == 403
            assert local.get(memory.id).shared is False and alice.outbox.waiting() == 0

            done = client.post(share, data={"shared": "1", "csrf_token": csrf})
            assert done.status_code == 200, done.text
            assert text(done.text, "team-note") == QUEUED
            assert text(done.text, "shared") == "with the team" and text(done.text, "share") == "Stop sharing"
            assert "1 write waiting" in text(done.text, "team-status")  # read after the op was queued
            alice.round()
            assert changes(team_server, admin)[memory.id]["kind"] == "put"

            held = client.post(f"/memory/{secret.id}/share", data={"shared": "1", "csrf_token": csrf})
            assert text(held.text, "team-note") == f"{HELD_SECRET} (content)"
            assert text(held.text, "shared") == "no: personal, it stays on this machine"

            done = client.post(share, data={"shared": "0", "csrf_token": csrf})
            assert text(done.text, "team-note") == WITHDRAWN and local.get(memory.id).shared is False
            bad = client.post(share, data={"shared": "yes", "csrf_token": csrf})
            assert bad.status_code == 400 and "shared: &#39;yes&#39;" in bad.text, bad.text
            alice.round()
            assert changes(team_server, admin)[memory.id]["kind"] == "delete"
            assert secret.id not in changes(team_server, admin)
        finally:
            alice.stop()


def test_update_memory_shares_over_both_mcp_transports(tmp_path: Path, team_server: TeamServer) -> None:
    alice_token, admin = team_server.add_user("alice"), team_server.add_user("root", role="admin")
    alice = developer(tmp_path / "alice", team_server.url, alice_token, ca=team_server.ca)
    with alice.running(ready=True):
        stored = alice.api("POST", "/memories", project=PROJECT, json={"content": LATER}).json()
        memory_id = stored["memory"]["id"]
        shared = anyio.run(_update_over_mcp, alice, tmp_path, memory_id, True)
        assert shared.endswith(f"Note: {QUEUED}."), shared
        wait_for("the share reaches the team", lambda: memory_id in changes(team_server, admin))
        withdrawn = anyio.run(_update_over_mcp, alice, tmp_path, memory_id, False)
        assert withdrawn.endswith(f"Note: {WITHDRAWN}."), withdrawn
        wait_for(
            "the withdrawal reaches the team",
            lambda: changes(team_server, admin)[memory_id]["kind"] == "delete",
        )
        outcomes = [
            (line["op"], line["outcome"]) for line in team_server.audit() if line.get("id") == memory_id
        ]
        assert outcomes == [("put", "applied"), ("delete", "applied")], outcomes
        assert alice.api("GET", f"/memories/{memory_id}").json()["shared"] is False  # kept, personal


async def _update_over_mcp(daemon: Any, cwd: Path, memory_id: str, shared: bool) -> str:
    """update_memory's answer: sharing over streamable HTTP, withdrawing over stdio (``clarity mcp``)."""
    arguments = {"memory_id": memory_id[:8], "shared": shared}
    if shared:
        async with http_client(daemon, PROJECT) as client:
            answer = await client.call_tool("update_memory", arguments)
    else:
        async with stdio_client(daemon, cwd) as client:
            answer = await client.call_tool("update_memory", arguments)
    return re.sub(r"\s+", " ", answer.content[0].text)
