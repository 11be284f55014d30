"""The team tier on the dashboard, over plain HTTP: the status line under every page's header (the
one ``clarity status`` prints), the mark on shared memories in lists and search results, and a
memory's page saying whether it is shared, by whom, and what an edit or a delete does at the team.

Everything is real: a ``clarity serve --team`` process over TLS with users made by ``clarity team
user add``, the model and the embedded engine; the first test runs the app in this process and
the sync rounds itself, the second runs two developers' daemons with their own sync threads.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from clarity.http.app import create_app
from clarity.memory import MemoryService
from clarity.models import MemoryCreate

from .daemon_util import Daemon, free_port
from .team_local import attach, local_service
from .team_util import TeamServer, memory, put
from .test_dashboard_anchors import token
from .test_team_daemon import clone, developer, prompt, wait_for

BASE = "http://127.0.0.1:8000"
PROJECT = "shop-0123456789ab"
OURS = "The release train leaves every second Tuesday at 10:00."
MINE = "My scratch notes live in ~/scratch-zebra."
BOBS = "Production deploys need two approvals in the deploys channel."

local = pytest.fixture(local_service, name="local")


def text(body: str, element_id: str | None = None) -> str:
    """A page (or the element with ``element_id``) as the words a reader sees."""
    if element_id is not None:
        found = re.search(rf'<(\w+)[^>]*id="{element_id}"[^>]*>(.*?)</\1>', body, re.S)
        if found is None:
            return ""
        body = found.group(2)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def row(body: str, memory_id: str) -> str:
    """A memory's row in a list or in search results, as words."""
    found = re.search(rf'<tr data-id="{memory_id}">(.*?)</tr>', body, re.S)
    assert found, f"no row for {memory_id}"
    return text(found.group(1))


@pytest.fixture
def team_server(tmp_path: Path) -> Iterator[TeamServer]:
    server = TeamServer(tmp_path / "team", free_port(), tmp_path / "tls")
    with server.running():
        yield server


@pytest.fixture
def client(local: MemoryService) -> Iterator[TestClient]:
    app = create_app(local.settings, local)
    try:
        yield TestClient(app, base_url=BASE, follow_redirects=False)
    finally:
        app.state.hooks.close()


def get(client: TestClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return response.text


def test_the_line_the_marks_and_the_memory_page_follow_the_team(
    local: MemoryService, client: TestClient, team_server: TeamServer
) -> None:
    # No team server set: no line on any page, the overview says so, the fragment is empty.
    for path in ("/", "/overview", "/injections", "/forget"):
        assert 'id="team-status"' not in get(client, path), path
    assert "No team server is set (team.url): every memory stays on this machine" in text(
        get(client, "/overview"), "no-team"
    )
    assert get(client, "/fragments/team").strip() == ""

    tokens = {name: team_server.add_user(name) for name in ("alice", "bob")}
    sync = attach(local, team_server.url, tokens["alice"], ca_file=str(team_server.ca))
    try:
        ours = local.store(MemoryCreate(content=OURS, scope=PROJECT, shared=True)).memory
        mine = local.store(MemoryCreate(content=MINE, scope=PROJECT)).memory
        assert ours.shared and not mine.shared

        # Before any round: who we are is not known, the write waits; the line is on every page.
        page = get(client, "/")
        line = text(page, "team-status")
        assert line == f"team: (not known yet) on {team_server.url}, 1 write waiting, not pulled yet"
        assert line == sync.status()["line"]
        assert line in text(get(client, "/injections"), "team-status")
        assert line == text(get(client, "/fragments/team"), "team-status")
        assert "shared with the team" in row(page, ours.id)
        assert "shared" not in row(page, mine.id)
        detail = get(client, f"/memory/{ours.id}")
        assert text(detail, "shared") == "with the team"
        assert text(detail, "author") == "you (the team server adds your name when it sends it back)"
        assert text(get(client, f"/memory/{mine.id}"), "shared") == "no: personal, it stays on this machine"
        assert 'id="author"' not in get(client, f"/memory/{mine.id}")

        # Bob shares a memory of the same project with the team.
        vector = local.embedder.embed_documents([BOBS])[0]
        bobs = memory(BOBS, PROJECT)
        sync.round()  # ours goes to the team (fixing its model), and the pull brings it back
        op = {**put(bobs, model=local.embedder.identity), "vector": vector}
        with team_server.client(tokens["bob"]) as bob:
            assert bob.post("/ops", json={"ops": [op]}).json()["results"][0]["status"] == "applied"
        sync.round()

        page = get(client, "/")
        line = text(page, "team-status")
        assert re.fullmatch(
            rf"team: alice on {re.escape(team_server.url)}, 0 writes waiting, last pull \d+ s ago", line
        ), line
        assert "shared by alice" in row(page, ours.id)
        assert "shared by bob" in row(page, bobs["id"])
        assert "shared" not in row(page, mine.id)
        found = get(client, "/?q=how+many+approvals+does+a+production+deploy+need")
        assert "shared by bob" in row(found, bobs["id"])

        detail = get(client, f"/memory/{ours.id}")
        assert text(detail, "author") == "alice (you)"
        assert text(detail, "edit-team") == "Saving sends the change to the team."
        detail = get(client, f"/memory/{bobs['id']}")
        assert text(detail, "shared") == "with the team" and text(detail, "author") == "bob"
        # A teammate's memory: no edit form (the daemon refuses the edit with 403, as the team would).
        assert text(detail, "edit-team") == "Shared by bob: only bob can change it."
        assert 'id="edit"' not in detail and f'href="/memory/{bobs["id"]}/delete"' in detail
        # An edit form from a page loaded before the pull (a tired user's old tab) is refused, not
        # a 400, and changes nothing.
        stale = client.post(
            f"/memory/{bobs['id']}",
            data={"csrf_token": token(get(client, f"/memory/{mine.id}")), "content": "edited by alice"},
        )
        assert stale.status_code == 403 and "only bob can change it" in html.unescape(stale.text)
        assert local.get(bobs["id"]).content == BOBS
        assert text(get(client, f"/memory/{bobs['id']}/delete"), "delete-team") == (
            "Shared by bob: only bob or a team admin can delete it."
        )
        facts = text(get(client, "/overview"), "team-facts")
        assert f"Server {team_server.url}" in facts and "Shares as alice (role write)" in facts
        assert f"Team model {local.embedder.identity}" in facts and "Writes waiting 0" in facts
    finally:
        sync.stop()
    # The daemon's shutdown takes the team tier away: the line goes with it.
    assert 'id="team-status"' not in get(client, "/")


# -- two developers' daemons ----------------------------------------------------------------------


def dashboard(daemon: Any, path: str = "/") -> str:
    response = httpx.get(daemon.url + path, timeout=30)
    assert response.status_code == 200, response.text
    return response.text


def test_daemons_show_writes_waiting_while_the_team_is_down_and_the_author_after_a_pull(
    tmp_path: Path,
) -> None:
    server = TeamServer(tmp_path / "team", free_port(), tmp_path / "tls")
    with server.running():
        tokens = {name: server.add_user(name) for name in ("alice", "bob")}
    alice_repo, bob_repo = clone(tmp_path / "alice-shop"), clone(tmp_path / "bob-shop")
    alice = developer(tmp_path / "alice", server.url, tokens["alice"], ca=server.ca)
    bob = developer(tmp_path / "bob", server.url, tokens["bob"], ca=server.ca)
    with alice.running(ready=True):
        # The team server is down: the share waits in the outbox, and every page says so.
        said, _ = prompt(alice, alice_repo, f"remember for the team that {OURS}")
        assert "shared with the team" in said
        prompt(alice, alice_repo, f"remember that {MINE}")  # personal
        line = wait_for(
            "the line says unreachable",
            lambda: "unreachable since" in (found := text(dashboard(alice), "team-status")) and found,
        )
        assert line.startswith(f"team {server.url} unreachable since ") and line.endswith(", 1 write waiting")
        listed = alice.api("GET", "/memories", params={"scope": "all"}).json()["memories"]
        ours = next(m for m in listed if "release train" in m["content"])
        mine = next(m for m in listed if "zebra" in m["content"])
        page = dashboard(alice)
        assert "shared with the team" in row(page, ours["id"]) and "shared" not in row(page, mine["id"])
        assert "1 write waiting" in text(dashboard(alice, f"/memory/{ours['id']}"), "team-status")
        assert "Unreachable since" in text(dashboard(alice, "/overview"), "team-facts")

        with server.running(), bob.running(ready=True):
            prompt(bob, bob_repo, "hello")  # bob works in his clone: his daemon pulls the project
            wait_for(
                "alice's line is back to normal",
                lambda: "0 writes waiting, last pull" in text(dashboard(alice), "team-status"),
            )
            assert f"team: alice on {server.url}" in text(dashboard(alice), "team-status")
            page = wait_for(
                "alice's memory on bob's dashboard with her name",
                lambda: ours["id"] in (found := dashboard(bob)) and found,
            )
            assert "shared by alice" in row(page, ours["id"])
            assert mine["id"] not in page and "zebra" not in page
            assert f"team: bob on {server.url}, 0 writes waiting" in text(page, "team-status")
            detail = dashboard(bob, f"/memory/{ours['id']}")
            assert text(detail, "author") == "alice" and text(detail, "shared") == "with the team"
            on_bob = bob.api("GET", f"/memories/{ours['id']}").json()
            assert on_bob["author"] == "alice" and on_bob["shared"] is True
            # Alice's own copy came back from the team with her name.
            assert "shared by alice" in row(dashboard(alice), ours["id"])

    # A daemon without a team server: no line anywhere.
    with Daemon(tmp_path / "plain", free_port()).running() as plain:
        for path in ("/", "/overview"):
            assert 'id="team-status"' not in dashboard(plain, path)
