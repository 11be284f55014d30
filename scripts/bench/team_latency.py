"""What the team tier costs a developer's prompt hook over a slow link, and how long a shared
memory takes to reach a teammate.

    .venv/bin/python scripts/bench/team_latency.py [--quick] [--calls 200] [--rtt-ms 20]
        [--memories 200] [--pull-seconds 1] [--trials 10] [--out DIR]

Needs root (network namespaces); everything it makes is removed at the end. Four namespaces on this machine (``tests/netns_util.py``): a
router, the team server (``clarity serve --team`` over TLS), alice and bob. In alice's namespace
run two daemons over the same repository: one with the team tier (team.url set, pulling every
``--pull-seconds``) and one local-only (no team.url). The router holds every packet to or from
alice and bob for half of ``--rtt-ms`` (a delay line on a TUN device, ``tests/netns_util.py``:
``tc netem`` needs sch_netem, which not every kernel is built with), so each of them is
``--rtt-ms`` from the team server; the round trip is measured (TCP connect) and printed.

Both of alice's daemons hold the same memories: ``--memories`` stored in the project (personal),
plus the ones bob shares: the team daemon pulls them, the local one has the same texts stored
personal. While the prompt hooks are timed, bob shares a memory every second, so the team
daemon's sync thread pulls real changes across the slow link the whole time.

- **prompt hook**: Claude Code's UserPromptSubmit payload posted to each daemon on a fresh
  connection, each call a different question, alternating team/local call by call (ABBA), p50 and
  p95 of each side; the target is the team p50 within 5 ms of the local-only p50.
- **sharing prompt**: "remember for the team that ..." on the team daemon against "remember
  that ..." on the local one (a store, and for the team one an outbox row), alternated too.
- **reach**: alice shares a memory through her prompt hook; the time until the team server
  applied it (its audit line) and until it is in bob's replica (his REST API polled every 20 ms),
  ``--trials`` times, each started at a random point of bob's pull cycle.

The 1-minute load is printed with every figure.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from common import ROOT, SUBJECTS, machine, parser, synthetic, write_results
from rich.console import Console

from clarity.project import project_scope
from tests.netns_util import HostDaemon, HostTeamServer, Network, unavailable, wait_for

console = Console()
PAYLOAD = json.loads((ROOT / "tests" / "fixtures" / "hook_payloads" / "UserPromptSubmit.json").read_text())
REMOTE = "git@example.com:acme/shop.git"
TEAM_PORT = 8443


def load() -> float:
    return round(os.getloadavg()[0], 2)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 2),
        "p95_ms": round(pct(ms, 0.95), 2),
        "max_ms": round(max(ms), 2),
    }


def clone(path: Path) -> Path:
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    subprocess.run(["git", "-C", str(path), "remote", "add", "origin", REMOTE], check=True)
    return path


def prompt(daemon: HostDaemon, repo: Path, text: str) -> tuple[str, float]:
    """The prompt hook as Claude Code's http hook posts it (a fresh connection); its context and
    the seconds it took, timed inside the daemon's namespace."""
    body = {**PAYLOAD, "cwd": str(repo), "session_id": str(uuid.uuid4()), "prompt": text}
    reply, took = daemon.post_hook("UserPromptSubmit", body)
    return str(reply.get("hookSpecificOutput", {}).get("additionalContext", "")), took


def contents(daemon: HostDaemon, newest: int = 500) -> set[str]:
    """The texts of the ``newest`` memories (by creation) in ``daemon``."""
    answer = daemon.api("GET", "/memories", params={"scope": "all", "limit": newest, "sort": "newest"})
    assert answer.status_code == 200, answer.text
    return {m["content"] for m in answer.json()["memories"]}


def applied_at(server: HostTeamServer, alice: HostDaemon, text: str) -> float:
    """When the team server applied alice's memory holding ``text`` (its audit line's time)."""
    answer = alice.api("GET", "/memories", params={"scope": "all", "limit": 10, "sort": "newest"})
    memory_id = next(m["id"] for m in answer.json()["memories"] if m["content"] == text)
    line = next(
        line for line in server.audit() if line.get("id") == memory_id and line["outcome"] == "applied"
    )
    return datetime.fromisoformat(line["time"].replace("Z", "+00:00")).timestamp()


def measured_rtt(net: Network, host: str, port: int) -> float:
    """Median TCP connect time from ``host`` to the team server: one round trip."""

    def connect() -> float:
        started = time.perf_counter()
        with socket.create_connection((net.address("server"), port), timeout=5):
            return time.perf_counter() - started

    return statistics.median(net.hosts[host].call(connect) for _ in range(15)) * 1000


def seed(daemons: list[HostDaemon], scope: str, texts: list[str]) -> None:
    for text in texts:
        for daemon in daemons:
            answer = daemon.api("POST", "/memories", project=scope, json={"content": text})
            assert answer.status_code in (200, 201), answer.text


SHARER = """
import json, sys, time, urllib.request, uuid
url, cwd, every = sys.argv[1], sys.argv[2], float(sys.argv[3])
while True:
    time.sleep(every)
    text = "remember for the team that build agent %s is spare" % uuid.uuid4().hex[:6]
    body = json.dumps({"hook_event_name": "UserPromptSubmit", "session_id": str(uuid.uuid4()),
                       "cwd": cwd, "prompt": text}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=30).read()
    print("shared", flush=True)
"""


def start_sharer(
    net: Network, bob: HostDaemon, repo: Path, every: float, log: Path
) -> subprocess.Popen[bytes]:
    """Bob shares a memory every ``every`` seconds, from a process of its own in his namespace
    (not a thread of this one, whose timings it would disturb), so alice's team daemon keeps
    pulling changes while it is timed."""
    url = f"{bob.url}/hooks/UserPromptSubmit"
    with open(log, "wb") as out:
        return net.spawn("bob", [sys.executable, "-c", SHARER, url, str(repo), str(every)], stdout=out)


def alternate(
    calls: int, team: Callable[[int], float], local: Callable[[int], float], pause: float
) -> tuple[list[float], list[float]]:
    """``calls`` of each, ABBA order so that neither side always goes first."""
    timings: dict[str, list[float]] = {"team": [], "local": []}
    for i in range(calls):
        order = [("team", team), ("local", local)] if i % 4 in (0, 3) else [("local", local), ("team", team)]
        for name, call in order:
            timings[name].append(call(i))
            time.sleep(pause)
    return timings["team"], timings["local"]


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--calls", type=int, default=200, help="timed prompt hooks per side")
    p.add_argument("--store-calls", type=int, default=40, help="timed sharing prompts per side")
    p.add_argument("--rtt-ms", type=float, default=20.0, help="round trip between a developer and the server")
    p.add_argument("--memories", type=int, default=200, help="memories in each daemon before timing")
    p.add_argument("--pull-seconds", type=float, default=1.0, help="team.pull_seconds of the developers")
    p.add_argument("--trials", type=int, default=10, help="shared memories timed from alice to bob")
    p.add_argument("--pause", type=float, default=0.02, help="seconds between calls (keeps CPU modest)")
    args = p.parse_args()
    if args.quick:
        args.calls, args.store_calls, args.memories, args.trials = 40, 10, 40, 3
    reason = unavailable()
    if reason:
        console.print(f"[red]team_latency needs network namespaces: {reason}")
        return 2
    result: dict[str, Any] = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}}
    base = Path(tempfile.mkdtemp(prefix="clarity-team-latency-"))
    with Network(["server", "alice", "bob"]) as net:
        server = HostTeamServer(
            net.hosts["server"], base / "team", net.address("server"), TEAM_PORT, base / "tls"
        )
        daemons: list[HostDaemon] = [server]
        try:
            result.update(run(args, net, server, daemons, base))
        finally:
            for daemon in reversed(daemons):
                daemon.stop()
            shutil.rmtree(base, ignore_errors=True)
    write_results(args.out, "team_latency", result, None)
    console.print(f"results in {args.out / 'team_latency.json'} (load now {load()})")
    return 0


def run(
    args: Any, net: Network, server: HostTeamServer, daemons: list[HostDaemon], base: Path
) -> dict[str, Any]:
    server.start()
    server.wait_healthy()
    tokens = {name: server.add_user(name) for name in ("alice", "bob")}
    repos = {name: clone(base / f"{name}-shop") for name in ("alice", "bob")}
    scope = project_scope(str(repos["alice"]))

    def developer(name: str, root: Path, port: int, team: bool) -> HostDaemon:
        env = {}
        if team:
            env = {
                "CLARITY_TEAM__URL": server.url,
                "CLARITY_TEAM__TOKEN": tokens[name],
                "CLARITY_TEAM__CA_FILE": str(server.ca),
                "CLARITY_TEAM__PULL_SECONDS": str(args.pull_seconds),
            }
        return HostDaemon(net.hosts[name], root, port, env=env)

    team = developer("alice", base / "alice-team", 8000, team=True)
    local = developer("alice", base / "alice-local", 8001, team=False)
    bob = developer("bob", base / "bob", 8000, team=True)
    for daemon in (team, local, bob):
        daemons.append(daemon.start())
    for daemon in (team, local, bob):
        daemon.wait_ready()

    net.delay(["alice", "bob"], args.rtt_ms / 2)
    rtt = measured_rtt(net, "alice", TEAM_PORT)
    console.print(f"round trip alice -> team server: {rtt:.1f} ms (TCP connect, median of 15); load {load()}")

    rng = random.Random(7)
    seed([team, local], scope, [synthetic(rng, i) for i in range(args.memories)])
    shared = [f"{synthetic(rng, 10_000 + i)} (shared by bob)" for i in range(max(5, args.memories // 10))]
    for text in shared:
        prompt(bob, repos["bob"], f"remember for the team that {text}")
    seed([local], scope, shared)
    prompt(team, repos["alice"], "hello")  # the project is known to alice's team daemon: it pulls
    wait_for("bob's memories in alice's replica", lambda: set(shared) <= contents(team), timeout=120)
    console.print(f"seeded: {args.memories} memories each, {len(shared)} shared by bob; load {load()}")

    sharer_log = base / "sharer.log"
    sharer = start_sharer(net, bob, repos["bob"], 1.0, sharer_log)
    try:
        questions = [f"what do we know about {SUBJECTS[i % len(SUBJECTS)]}? ({i})" for i in range(args.calls)]
        for i in range(6):  # warm both (first calls load caches)
            prompt(team, repos["alice"], questions[i])
            prompt(local, repos["alice"], questions[i])
        load_before = load()
        team_t, local_t = alternate(
            args.calls,
            lambda i: prompt(team, repos["alice"], questions[i])[1],
            lambda i: prompt(local, repos["alice"], questions[i])[1],
            args.pause,
        )
        hook = {
            "team": summary(team_t),
            "local": summary(local_t),
            "load_before": load_before,
            "load_after": load(),
        }
        hook["p50_difference_ms"] = round(hook["team"]["p50_ms"] - hook["local"]["p50_ms"], 2)
        console.print(
            f"prompt hook, {args.calls} calls each, team tier at {rtt:.1f} ms vs local-only: "
            f"team p50 {hook['team']['p50_ms']} / p95 {hook['team']['p95_ms']} ms, "
            f"local p50 {hook['local']['p50_ms']} / p95 {hook['local']['p95_ms']} ms, "
            f"p50 difference {hook['p50_difference_ms']} ms (load {load_before} -> {hook['load_after']})"
        )
        team_s, local_s = alternate(
            args.store_calls,
            lambda i: prompt(
                team, repos["alice"], f"remember for the team that runner {i} uses cache volume v{i}"
            )[1],
            lambda i: prompt(local, repos["alice"], f"remember that runner {i} uses cache volume v{i}")[1],
            args.pause,
        )
        store = {"team": summary(team_s), "local": summary(local_s), "load": load()}
        console.print(
            f"sharing prompt, {args.store_calls} each: 'remember for the team' p50 {store['team']['p50_ms']} / "
            f"p95 {store['team']['p95_ms']} ms, 'remember' (local-only) p50 {store['local']['p50_ms']} / "
            f"p95 {store['local']['p95_ms']} ms (load {store['load']})"
        )
    finally:
        sharer.terminate()
        sharer.wait(30)
    wait_for("alice's outbox drained", lambda: team.api("GET", "/team").json()["team"]["waiting"] == 0)

    reach: list[float] = []
    at_server: list[float] = []
    for i in range(args.trials):
        text = f"the deploy freeze {i} starts at 1{i}:00 ({uuid.uuid4().hex[:8]})"
        wall, started = time.time(), time.perf_counter()
        prompt(team, repos["alice"], f"remember for the team that {text}")
        wait_for(
            f"trial {i} on bob's side", lambda text=text: text in contents(bob, 10), timeout=60, every=0.02
        )
        reach.append(time.perf_counter() - started)
        at_server.append(applied_at(server, team, text) - wall)
        time.sleep(random.Random(i).uniform(0, args.pull_seconds))  # land anywhere in bob's pull cycle
    reached, pushed = summary(reach), summary(at_server)
    console.print(
        f"alice's shared memory, {args.trials} trials, {rtt:.1f} ms round trip to the server: applied on "
        f"the server after p50 {pushed['p50_ms']} ms (max {pushed['max_ms']}), in bob's replica (pull every "
        f"{args.pull_seconds} s) after p50 {reached['p50_ms']} ms (max {reached['max_ms']}) (load {load()})"
    )
    status = team.api("GET", "/team").json()["team"]["line"]
    return {
        "rtt_ms": round(rtt, 2),
        "prompt_hook": hook,
        "sharing_prompt": store,
        "reach": {**reached, "applied_on_server": pushed, "pull_seconds": args.pull_seconds, "load": load()},
        "bob_shared_while_timed": sharer_log.read_text().count("shared"),
        "team_status": status,
    }


if __name__ == "__main__":
    sys.exit(main())
