"""The team tier on real daemons: hooks never wait on the network, a shared write survives a
kill -9 of the daemon and reaches the team server once, and two developers' daemons share through
a real ``clarity serve --team`` (TLS with a private CA, users made with ``clarity team user add``).

A team server that accepts connections and never answers is a listening socket nobody accepts
from (``tests/team_stub.py``); everything else is real: the daemons, the team server, the model."""

from __future__ import annotations

import signal
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from .daemon_util import Daemon, free_port, run_clarity
from .team_stub import silent_port
from .team_util import TeamServer
from .test_mcp import http_client

REMOTE = "git@example.com:acme/shop.git"


def clone(path: Path) -> Path:
    """A checkout of the team's repository: a remote, so the same project id on every clone."""
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    subprocess.run(["git", "-C", str(path), "remote", "add", "origin", REMOTE], check=True)
    return path


def developer(root: Path, url: str, token: str, ca: Path | None = None, **team: str) -> Daemon:
    env = {"CLARITY_TEAM__URL": url, "CLARITY_TEAM__TOKEN": token, "CLARITY_TEAM__PULL_SECONDS": "0.5"}
    env.update({f"CLARITY_TEAM__{key.upper()}": value for key, value in team.items()})
    if ca is not None:
        env["CLARITY_TEAM__CA_FILE"] = str(ca)
    return Daemon(root, free_port(), env=env)


def prompt(daemon: Daemon, cwd: Path, text: str, session: str | None = None) -> tuple[str, float]:
    """The prompt hook's context and how long the daemon took to answer it."""
    event = {
        "hook_event_name": "UserPromptSubmit",
        "session_id": session or uuid.uuid4().hex,
        "cwd": str(cwd),
        "prompt": text,
    }
    started = time.perf_counter()
    answer = httpx.post(f"{daemon.url}/hooks/UserPromptSubmit", json=event, timeout=30)
    took = time.perf_counter() - started
    assert answer.status_code == 200, answer.text
    return answer.json().get("hookSpecificOutput", {}).get("additionalContext", ""), took


def team(daemon: Daemon) -> dict[str, Any]:
    return daemon.api("GET", "/team").json()["team"]


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout}s: {what}")


def test_hooks_never_wait_on_a_team_server_that_never_answers(tmp_path: Path) -> None:
    repo = clone(tmp_path / "shop")
    with silent_port() as url:
        alice = developer(tmp_path / "alice", url, "t-alice", timeout_seconds="5")
        with alice.running(ready=True):
            said, took = prompt(alice, repo, "remember for the team that staging runs pg 16.4 on db-stage-3")
            assert "shared with the team" in said and took < 1.0
            timings = [prompt(alice, repo, f"which postgres does staging run? ({i})")[1] for i in range(30)]
            # A hook that waited for the team server would take its 5 s timeout.
            assert max(timings) < 1.0, timings
            assert statistics.median(timings) < 0.1, timings
            status = wait_for(
                "the status says unreachable", lambda: team(alice)["unreachable_since"] and team(alice)
            )
            assert status["waiting"] == 1
            assert "unreachable since" in status["line"] and "1 write waiting" in status["line"]
            shown = run_clarity(alice.env(), "status", "--url", alice.url)
            assert "1 write waiting" in shown.stdout, shown.stdout + shown.stderr
            answers = anyio.run(_store_over_mcp, alice, "shop-0123456789ab")
            assert answers[0].endswith("Note: shared with the team.")
            assert answers[1].endswith("Note: kept personal: it held a secret.")
            assert "shared" not in answers[2] and "personal" not in answers[2]
            assert team(alice)["waiting"] == 2


async def _store_over_mcp(daemon: Daemon, project: str) -> list[str]:
    """store_memory's answers through a real MCP client: shared, shared with a secret, personal."""
    texts = []
    async with http_client(daemon, project) as client:
        for content, shared in (
            ("Feature flags live in config/flags.yaml.", True),
            ("The staging API key is ghp_1234567890abcdefghijklmnopqrstuvwxyzAB.", True),
            ("I review pull requests in the morning.", False),
        ):
            result = await client.call_tool("store_memory", {"content": content, "shared": shared})
            texts.append(result.content[0].text)
    return texts


@pytest.fixture
def team_server(tmp_path: Path) -> Any:
    server = TeamServer(tmp_path / "team", free_port(), tmp_path / "tls")
    with server.running():
        yield server


def test_a_shared_write_survives_a_kill_9_and_reaches_the_team_once(tmp_path: Path) -> None:
    port = free_port()
    server = TeamServer(tmp_path / "team", port, tmp_path / "tls")
    server.start()
    server.wait_healthy()
    token = server.add_user("alice")
    server.stop()  # the team server is down while alice works
    alice = developer(tmp_path / "alice", server.url, token, ca=server.ca)
    alice.start()
    alice.wait_ready()
    project = "shop-0123456789ab"
    stored = alice.api(
        "POST",
        "/memories",
        project=project,
        json={"content": "Release branches are cut on Tuesdays.", "shared": True},
    ).json()
    assert stored["team"] == "shared with the team"
    assert team(alice)["waiting"] == 1
    alice.stop(signal.SIGKILL)  # between the enqueue and any send
    with server.running(), alice.running(ready=True):
        wait_for("the outbox drains", lambda: team(alice)["waiting"] == 0)
        outcomes = [line["outcome"] for line in server.audit() if line.get("id") == stored["id"]]
        assert outcomes.count("applied") == 1, server.audit()


def test_two_developers_share_through_a_real_team_server(tmp_path: Path, team_server: TeamServer) -> None:
    tokens = {name: team_server.add_user(name) for name in ("alice", "bob")}
    admin = team_server.client(team_server.add_user("root", role="admin"))
    alice_repo, bob_repo = clone(tmp_path / "alice-shop"), clone(tmp_path / "bob-shop")
    alice = developer(tmp_path / "alice", team_server.url, tokens["alice"], ca=team_server.ca)
    bob = developer(tmp_path / "bob", team_server.url, tokens["bob"], ca=team_server.ca)
    with alice.running(ready=True), bob.running(ready=True):
        said, _ = prompt(
            alice, alice_repo, "remember for the team that the release train leaves Tuesdays at 10:00"
        )
        assert "shared with the team" in said
        prompt(alice, alice_repo, "remember that my scratch notes live in ~/scratch-zebra")  # personal
        prompt(bob, bob_repo, "hello")  # bob works in his clone: the project is known to his daemon
        context = wait_for(
            "alice's memory in bob's prompt context",
            lambda: (
                (found := prompt(bob, bob_repo, "when does the release train leave?")[0])
                and "shared by alice" in found
                and found
            ),
        )
        assert "release train leaves Tuesdays at 10:00" in context
        project = alice.api("GET", "/memories", params={"scope": "all"}).json()["memories"][0]["scope"]
        everything = admin.get("/changes", params={"projects": project, "since": 0}).json()["changes"]
        assert [c["memory"]["content"] for c in everything] == ["the release train leaves Tuesdays at 10:00"]
        assert "zebra" not in str(team_server.audit()) and "zebra" not in team_server.log()
        on_bob = bob.api("GET", "/memories", params={"scope": "all"}).json()["memories"]
        assert not any("zebra" in m["content"] for m in on_bob)
        # Bob may not delete alice's memory: refused by his own daemon, which knows his role, before
        # anything is deleted (deleted only here, it would be missing from his replica).
        shared_id = everything[0]["id"]
        answer = bob.api("DELETE", f"/memories/{shared_id}")
        assert answer.status_code == 403 and "only alice or a team admin" in answer.json()["error"], (
            answer.text
        )
        assert bob.api("GET", f"/memories/{shared_id}").status_code == 200
        assert team(bob)["waiting"] == 0
        kept = admin.get("/changes", params={"projects": project, "since": 0}).json()["changes"]
        assert [c["kind"] for c in kept] == ["put"]
        assert alice.api("GET", f"/memories/{shared_id}").status_code == 200
        assert "team: alice on" in team(alice)["line"] and "0 writes waiting" in team(alice)["line"]
