"""The team tier on the dashboard in a real browser (headless chromium): a developer's daemon
with a team server set, a real ``clarity serve --team`` over TLS that is down, then up.

The page is opened once and never reloaded while the team server comes back: the status line and
the list refresh themselves (htmx), from "unreachable, 1 write waiting" and "shared with the team"
to "0 writes waiting" and "shared by alice"; a teammate's memory pulled meanwhile shows "shared
by bob". Each state is checked through the REST API as well.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from clarity.embedding import EmbeddingProvider
from clarity.team.share import QUEUED, WITHDRAWN

from ..daemon_util import free_port
from ..team_util import TeamServer, memory, put
from ..test_team_daemon import clone, developer, prompt, team, wait_for
from . import test_dashboard
from .test_dashboard import Watched

pytestmark = pytest.mark.slow
watched = test_dashboard.watched

OURS = "the release train leaves every second Tuesday at 10:00"
BOBS = "Production deploys need two approvals in the deploys channel."
WAIT = 60_000  # ms: the sync thread backs off up to 60 s while the server is down


def test_the_team_line_and_the_shared_marks_follow_the_team_server_live(
    tmp_path: Path, watched: Watched, screenshots: Path, embedder: EmbeddingProvider
) -> None:
    page = watched.page
    server = TeamServer(tmp_path / "team", free_port(), tmp_path / "tls")
    with server.running():
        tokens = {name: server.add_user(name) for name in ("alice", "bob")}
    repo = clone(tmp_path / "shop")
    alice = developer(tmp_path / "alice", server.url, tokens["alice"], ca=server.ca)
    with alice.running(ready=True):
        assert "shared with the team" in prompt(alice, repo, f"remember for the team that {OURS}")[0]
        prompt(alice, repo, "remember that my scratch notes live in ~/scratch-zebra")  # personal
        listed = alice.api("GET", "/memories", params={"scope": "all"}).json()["memories"]
        ours = next(m for m in listed if "release train" in m["content"])
        mine = next(m for m in listed if "zebra" in m["content"])

        page.goto(alice.url + "/")
        bar = page.locator("#team-status")
        page.locator("#team-status", has_text="unreachable since").wait_for(timeout=WAIT)
        assert bar.inner_text().endswith(", 1 write waiting") and "warn" in (bar.get_attribute("class") or "")
        assert team(alice)["waiting"] == 1
        assert page.locator(f"tr[data-id='{ours['id']}'] .team-mark").inner_text() == "shared with the team"
        assert page.locator(f"tr[data-id='{mine['id']}'] .team-mark").count() == 0
        page.screenshot(path=str(screenshots / "team-offline.png"), full_page=True)

        with server.running():
            # No reload from here: the line polls every 5 s, the list too.
            page.locator("#team-status", has_text="0 writes waiting, last pull").wait_for(timeout=WAIT)
            assert bar.inner_text().startswith(f"team: alice on {server.url}")
            assert "warn" not in (bar.get_attribute("class") or "")
            assert team(alice)["waiting"] == 0
            page.locator(f"tr[data-id='{ours['id']}'] .team-mark", has_text="shared by alice").wait_for(
                timeout=WAIT
            )
            assert alice.api("GET", f"/memories/{ours['id']}").json()["author"] == "alice"

            # Bob shares a memory of the project; alice's daemon pulls it in the background.
            record = memory(BOBS, ours["scope"], id=str(uuid.uuid4()))
            op = {**put(record, model=embedder.identity), "vector": embedder.embed_documents([BOBS])[0]}
            with server.client(tokens["bob"]) as bob:
                assert bob.post("/ops", json={"ops": [op]}).json()["results"][0]["status"] == "applied"
            mark = page.locator(f"tr[data-id='{record['id']}'] .team-mark")
            mark.wait_for(timeout=WAIT)
            assert mark.inner_text() == "shared by bob"
            assert page.locator(f"tr[data-id='{mine['id']}'] .team-mark").count() == 0
            page.screenshot(path=str(screenshots / "team.png"), full_page=True)

            page.click(f"tr[data-id='{record['id']}'] td.content a")
            page.wait_for_url(f"**/memory/{record['id']}")
            assert page.locator("h1 .team-mark").inner_text() == "shared by bob"
            assert page.locator("#author").inner_text() == "bob"
            assert page.locator("#shared").inner_text() == "with the team"
            # A teammate's memory: only its author changes it, so there is no edit form to fill in.
            assert page.locator("#edit-team").inner_text() == "Shared by bob: only bob can change it."
            assert page.locator("#edit").count() == 0
            page.screenshot(path=str(screenshots / "memory-team.png"), full_page=True)
        page.goto("about:blank")  # nothing polls the daemon while it stops


def test_the_share_button_shares_a_personal_memory_and_stops_sharing_it(
    tmp_path: Path, watched: Watched, screenshots: Path
) -> None:
    """The memory page's "Share with the team" and "Stop sharing" (a form with its CSRF token): the
    page says what became of the memory, and the team server has it, then its tombstone."""
    page = watched.page
    server = TeamServer(tmp_path / "team", free_port(), tmp_path / "tls")
    with server.running():
        alice_token, admin = server.add_user("alice"), server.add_user("root", role="admin")
        alice = developer(tmp_path / "alice", server.url, alice_token, ca=server.ca)
        with alice.running(ready=True), server.client(admin) as root:
            project = "shop-0123456789ab"
            stored = alice.api("POST", "/memories", project=project, json={"content": OURS}).json()["memory"]

            def on_team() -> dict[str, str]:
                found = root.get("/changes", params={"projects": project, "since": 0}).json()["changes"]
                return {change["id"]: change["kind"] for change in found}

            page.goto(f"{alice.url}/memory/{stored['id']}")
            assert page.locator("#shared").inner_text() == "no: personal, it stays on this machine"
            page.click("#share button")
            assert page.locator("#team-note").inner_text() == QUEUED
            assert page.locator("#shared").inner_text() == "with the team"
            page.screenshot(path=str(screenshots / "memory-shared-later.png"), full_page=True)
            wait_for("the share reaches the team", lambda: on_team().get(stored["id"]) == "put")

            assert page.locator("#share button").inner_text() == "Stop sharing"
            page.click("#share button")
            assert page.locator("#team-note").inner_text() == WITHDRAWN
            assert page.locator("#share button").inner_text() == "Share with the team"
            wait_for("the withdrawal reaches the team", lambda: on_team().get(stored["id"]) == "delete")
            assert alice.api("GET", f"/memories/{stored['id']}").json()["shared"] is False
            page.goto("about:blank")  # nothing polls the daemon while it stops
