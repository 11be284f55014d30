"""Three hosts on one machine: a team server and two developers' daemons, each in its own network
namespace, joined by veth pairs through a router namespace (``tests/netns_util.py``), all made
here and removed after.

- the team server, ``clarity serve --team`` over TLS on its own address (a private CA made here);
- alice's and bob's daemons, ``clarity serve`` with their own storage roots, reaching the team
  server only across the links, each in a clone of the same repository;
- hooks posted as Claude Code posts them (its captured payloads), to each daemon on its own host.

What crosses the server's link is captured by the test (a raw socket in the server's namespace)
and decrypted with the TLS secrets the daemons' own client logs (``SSLKEYLOGFILE``), so "her
personal memory never crossed" is checked on the actual bytes, beside the texts that did.

Needs root and ``ip netns``; skips with the reason elsewhere. The tests run in file order on one
set of hosts: the last revokes bob.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clarity.integrations.claude_entries import TIMEOUTS

from .daemon_util import run_clarity
from .netns_util import HostDaemon, HostTeamServer, Network, unavailable, wait_for
from .test_team_daemon import clone
from .wire_capture import Capture, read_keylog, tls_connections

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures" / "hook_payloads"
TEAM_PORT, DAEMON_PORT = 8443, 8000
SHARED = "the release train leaves Tuesdays at 10:00 from platform kestrel"
PERSONAL = "my scratch notes live in ~/scratch-ocelot-lantern"
PERSONAL_MARK = "ocelot-lantern"
PROMPT_BUDGET = TIMEOUTS["UserPromptSubmit"]  # seconds Claude Code gives Clarity's prompt hook


@dataclass
class Hosts:
    net: Network
    server: HostTeamServer
    alice: HostDaemon
    bob: HostDaemon
    repos: dict[str, Path]
    tokens: dict[str, str]
    capture: Capture


def _payload(event: str, cwd: Path, session: str, **fields: Any) -> dict[str, Any]:
    """Claude Code's own payload for ``event`` (captured from the CLI), for this project and session."""
    data: dict[str, Any] = json.loads((FIXTURES / f"{event}.json").read_text())
    data.update(cwd=str(cwd), session_id=session, **fields)
    return data


def prompt(hosts: Hosts, who: str, text: str, session: str | None = None) -> tuple[str, float]:
    """The prompt hook of ``who`` over HTTP: the context it added, and the seconds it took."""
    daemon: HostDaemon = getattr(hosts, who)
    body = _payload("UserPromptSubmit", hosts.repos[who], session or str(uuid.uuid4()), prompt=text)
    reply, took = daemon.post_hook("UserPromptSubmit", body)
    return str(reply.get("hookSpecificOutput", {}).get("additionalContext", "")), took


def team(daemon: HostDaemon) -> dict[str, Any]:
    answer = daemon.api("GET", "/team")
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["team"])


def memories(daemon: HostDaemon) -> list[dict[str, Any]]:
    answer = daemon.api("GET", "/memories", params={"scope": "all", "limit": 100})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["memories"])


def audit(hosts: Hosts) -> list[dict[str, Any]]:
    """The team server's audit lines so far (none before its first write)."""
    return hosts.server.audit() if (hosts.server.root / "app-data" / "team" / "audit.jsonl").exists() else []


def files_holding(root: Path, text: str) -> list[Path]:
    """Files under ``root`` whose bytes hold ``text``."""
    needle = text.encode()
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def developer(net: Network, name: str, root: Path, server: HostTeamServer, token: str) -> HostDaemon:
    env = {
        "CLARITY_TEAM__URL": server.url,
        "CLARITY_TEAM__TOKEN": token,
        "CLARITY_TEAM__CA_FILE": str(server.ca),
        "CLARITY_TEAM__PULL_SECONDS": "0.5",
        "SSLKEYLOGFILE": str(root / "tls-keys.log"),  # the test decrypts its capture with these
    }
    return HostDaemon(net.hosts[name], root, DAEMON_PORT, env=env)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("hosts")
    with Network(["server", "alice", "bob"]) as net:
        capture = Capture(net.hosts["server"]).start()  # before anyone connects: whole handshakes
        server = HostTeamServer(
            net.hosts["server"], base / "team", net.address("server"), TEAM_PORT, base / "tls"
        )
        started: list[HostDaemon] = [server]
        try:
            server.start()
            server.wait_healthy()
            tokens = {name: server.add_user(name) for name in ("alice", "bob")}
            tokens["ada"] = server.add_user("ada", role="admin")
            repos = {name: clone(base / f"{name}-shop") for name in ("alice", "bob")}
            alice = developer(net, "alice", base / "alice", server, tokens["alice"])
            bob = developer(net, "bob", base / "bob", server, tokens["bob"])
            for daemon in (alice, bob):
                started.append(daemon.start())
            for daemon in (alice, bob):
                daemon.wait_ready()
            yield Hosts(net, server, alice, bob, repos, tokens, capture)
        finally:
            for daemon in reversed(started):
                daemon.stop()
            capture.stop()


def test_alices_shared_memory_reaches_bobs_next_session_and_her_personal_one_never_leaves(
    hosts: Hosts,
) -> None:
    said, _ = prompt(hosts, "alice", f"remember for the team that {SHARED}")
    assert "shared with the team" in said
    prompt(hosts, "alice", f"remember that {PERSONAL}")
    on_alice = {m["content"]: m for m in memories(hosts.alice)}
    assert on_alice[PERSONAL]["shared"] is False and on_alice[SHARED]["shared"] is True

    # Bob's first session in his clone makes the project known to his daemon; his next one has it.
    hosts.bob.command_hook("SessionStart", _payload("SessionStart", hosts.repos["bob"], str(uuid.uuid4())))
    pulled = wait_for(
        "alice's memory in bob's replica",
        lambda: [m for m in memories(hosts.bob) if m["content"] == SHARED],
    )
    assert pulled[0]["author"] == "alice" and pulled[0]["shared"] is True
    session = str(uuid.uuid4())
    started = hosts.bob.command_hook("SessionStart", _payload("SessionStart", hosts.repos["bob"], session))
    brief = json.loads(started)["hookSpecificOutput"]["additionalContext"]
    assert SHARED in brief and "shared by alice" in brief, brief
    context, _ = prompt(hosts, "bob", "which platform does the release train leave from?")
    assert SHARED in context and "shared by alice" in context, context

    # Bob's side: nothing of alice's personal memory, in his answers or anywhere in his files.
    assert not any(PERSONAL_MARK in m["content"] for m in memories(hosts.bob))
    assert PERSONAL_MARK not in prompt(hosts, "bob", "where are the scratch notes?")[0]
    assert files_holding(hosts.bob.root, PERSONAL_MARK) == []
    assert files_holding(hosts.bob.root, SHARED)  # the same search finds what did arrive
    assert files_holding(hosts.alice.root, PERSONAL_MARK)  # and the personal memory at home

    # The team server: the shared memory with its author; the personal one in none of its files
    # (the engine's, its state, the audit log, its own log).
    project = on_alice[SHARED]["scope"]
    changes = hosts.server.request(hosts.tokens["ada"], "GET", "/changes", params={"projects": project})
    assert [(c["memory"]["content"], c["memory"]["author"]) for c in changes.json()["changes"]] == [
        (SHARED, "alice")
    ]
    assert files_holding(hosts.server.root, PERSONAL_MARK) == []
    assert files_holding(hosts.server.root, SHARED)
    assert any(line.get("outcome") == "applied" and line.get("user") == "alice" for line in audit(hosts))

    # The wire: every connection to the team server, decrypted. Alice's memory went up from her
    # address and down to bob's; her personal memory crossed in neither direction.
    keys = read_keylog(hosts.alice.root / "tls-keys.log", hosts.bob.root / "tls-keys.log")
    connections = tls_connections(hosts.capture.streams(), TEAM_PORT, keys)
    alice_at, bob_at = hosts.net.address("alice"), hosts.net.address("bob")
    assert any(c.flow[0] == alice_at and SHARED.encode() in c.sent for c in connections)
    assert any(c.flow[0] == bob_at and SHARED.encode() in c.received for c in connections)
    assert all(PERSONAL_MARK.encode() not in c.sent + c.received for c in connections)
    raw = hosts.capture.raw()
    assert SHARED.encode() not in raw and PERSONAL_MARK.encode() not in raw  # TLS on the wire


def test_the_team_server_will_not_serve_plain_http_beyond_loopback(hosts: Hosts, tmp_path: Path) -> None:
    """Why the capture is decrypted rather than read in the clear: a team server refuses to
    listen on its network address without TLS."""
    ns = hosts.net.hosts["server"]
    command = [sys.executable, "-m", "clarity", "serve", "--team", "--host", hosts.net.address("server")]
    env = {**hosts.server.env(), "CLARITY_STORAGE__ROOT": str(tmp_path / "plain")}
    for name in ("CLARITY_TEAM__TLS_CERT", "CLARITY_TEAM__TLS_KEY"):
        env.pop(name)
    done = subprocess.run(
        ns.argv(*command, "--port", "8080", "--storage-root", str(tmp_path / "plain")),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "binds beyond loopback only with TLS" in done.stdout + done.stderr


def test_bob_cannot_delete_alices_memory_but_an_admin_can(hosts: Hosts) -> None:
    text = "the staging database is rebuilt every night at 02:00 by the falcon job"
    assert "shared with the team" in prompt(hosts, "alice", f"remember for the team that {text}")[0]
    mine = wait_for(
        "alice's memory on bob's side", lambda: [m for m in memories(hosts.bob) if m["content"] == text]
    )[0]
    # Refused by bob's own daemon (it knows his role): nothing deleted there, nothing sent.
    answer = hosts.bob.api("DELETE", f"/memories/{mine['id']}")
    assert answer.status_code == 403 and "only alice or a team admin" in answer.json()["error"], answer.text
    assert hosts.bob.api("GET", f"/memories/{mine['id']}").status_code == 200
    # Sent anyway (an older daemon, or a hand-made op), the team server refuses it.
    forged = {"op_id": str(uuid.uuid4()), "kind": "delete", "id": mine["id"], "project": mine["scope"]}
    answer = hosts.server.request(hosts.tokens["bob"], "POST", "/ops", json={"ops": [forged]})
    assert answer.json()["results"][0]["status"] == "refused", answer.text
    lines = [line for line in audit(hosts) if line.get("id") == mine["id"]]
    assert [(line["user"], line["op"], line["outcome"]) for line in lines] == [
        ("alice", "put", "applied"),
        ("bob", "delete", "refused"),
    ]
    assert hosts.alice.api("GET", f"/memories/{mine['id']}").status_code == 200

    # ada, an admin, may delete anyone's: the tombstone reaches alice's replica.
    delete = {"op_id": str(uuid.uuid4()), "kind": "delete", "id": mine["id"], "project": mine["scope"]}
    answer = hosts.server.request(hosts.tokens["ada"], "POST", "/ops", json={"ops": [delete]})
    assert answer.json()["results"][0]["status"] == "applied", answer.text
    wait_for(
        "the admin's delete on alice's side",
        lambda: hosts.alice.api("GET", f"/memories/{mine['id']}").status_code == 404,
    )


def test_a_cut_link_keeps_hooks_in_budget_and_loses_no_write(hosts: Hosts) -> None:
    before = {
        who: [prompt(hosts, who, f"what do we know about releases? ({i})")[1] for i in range(8)]
        for who in ("alice", "bob")
    }
    hosts.net.cut("server")  # the server's cable pulled: connections hang, none is refused
    texts = [f"remember for the team that the canary bucket {n} is called heron-{n}" for n in range(3)]
    try:
        during: dict[str, list[float]] = {"alice": [], "bob": []}
        for n, text in enumerate(texts):
            said, took = prompt(hosts, "alice", text)
            assert "shared with the team" in said
            during["alice"].append(took)
            for i in range(4):
                for who in ("alice", "bob"):
                    during[who].append(prompt(hosts, who, f"which canary bucket is which? ({n}.{i})")[1])
        status = wait_for(
            "alice's status says the team server is unreachable",
            lambda: (t := team(hosts.alice))["unreachable_since"] and t,
            timeout=30,
        )
        assert status["waiting"] == 3 and "unreachable since" in status["line"], status
        assert "3 writes waiting" in status["line"]
        wait_for("bob's status too", lambda: "unreachable since" in team(hosts.bob)["line"], timeout=30)
        for who in ("alice", "bob"):
            print(
                f"{who}'s prompt hook, ms: before the cut p50 {statistics.median(before[who]) * 1000:.1f}; "
                f"during it p50 {statistics.median(during[who]) * 1000:.1f}, max {max(during[who]) * 1000:.1f} "
                f"({len(during[who])} calls); status: {team(getattr(hosts, who))['line']}"
            )
            assert max(during[who]) < PROMPT_BUDGET / 3, (who, during[who])
            assert statistics.median(during[who]) < statistics.median(before[who]) + 0.1, (
                who,
                before,
                during,
            )
    finally:
        hosts.net.restore("server")
    wait_for("alice's outbox drained", lambda: team(hosts.alice)["waiting"] == 0, timeout=120)
    contents = [t.removeprefix("remember for the team that ") for t in texts]
    got = wait_for(
        "bob received the three",
        lambda: (
            (found := {m["content"]: m for m in memories(hosts.bob) if m["content"] in contents})
            and len(found) == 3
            and found
        ),
        timeout=60,
    )
    assert {m["author"] for m in got.values()} == {"alice"}
    lines = audit(hosts)
    for memory in got.values():
        applied = [line for line in lines if line.get("id") == memory["id"] and line["outcome"] == "applied"]
        assert len(applied) == 1, applied


def test_an_answer_lost_on_the_way_back_is_not_applied_twice(hosts: Hosts) -> None:
    """The server applies alice's write and its answer never reaches her: she sends it again
    once the link heals, and the server applies it once and answers "duplicate"."""
    text = "the heron canary is promoted after 30 minutes without errors"
    hosts.net.drop("server", "alice")  # her requests arrive; nothing comes back
    try:
        said, took = prompt(hosts, "alice", f"remember for the team that {text}")
        assert "shared with the team" in said and took < PROMPT_BUDGET / 3
        mine = next(m for m in memories(hosts.alice) if m["content"] == text)
        wait_for(
            "the server applied it",
            lambda: any(line.get("id") == mine["id"] for line in audit(hosts)),
            timeout=30,
        )
        wait_for("alice saw no answer", lambda: team(hosts.alice)["unreachable_since"], timeout=30)
        assert team(hosts.alice)["waiting"] == 1
    finally:
        hosts.net.undrop()
    wait_for("alice's outbox drained", lambda: team(hosts.alice)["waiting"] == 0, timeout=120)
    outcomes = [line["outcome"] for line in audit(hosts) if line.get("id") == mine["id"]]
    assert outcomes == ["applied", "duplicate"], outcomes
    wait_for("bob has it once", lambda: [m["content"] for m in memories(hosts.bob)].count(text) == 1)


def test_a_revoked_token_is_refused(hosts: Hosts) -> None:
    revoked = run_clarity(
        hosts.server.env(), "team", "user", "revoke", "bob", "--storage-root", str(hosts.server.root)
    )
    assert revoked.returncode == 0, revoked.stderr
    status = wait_for(
        "bob's status says the team refuses him",
        lambda: "refuses this daemon" in (t := team(hosts.bob))["line"] and t,
    )
    assert "revoked" in status["error"], status
    said, _ = prompt(hosts, "bob", "remember for the team that the heron dashboard lives on grafana-2")
    assert "shared with the team" in said  # queued: it waits for a token that works
    wait_for(
        "bob's write refused at the team server",
        lambda: any(
            line["outcome"] == "refused"
            and line.get("from") == hosts.net.address("bob")
            and "revoked" in line["error"]
            for line in audit(hosts)
        ),
    )
    assert team(hosts.bob)["waiting"] == 1
    ns = hosts.net.hosts["bob"]
    command = ns.argv(sys.executable, "-m", "clarity", "status", "--url", hosts.bob.url)
    shown = subprocess.run(
        command, env=hosts.bob.env(), capture_output=True, text=True, timeout=120, check=False
    )
    assert "refuses this daemon" in shown.stdout and "1 write waiting" in shown.stdout, shown.stdout
    assert "team: alice on" in team(hosts.alice)["line"]  # alice's token still works
