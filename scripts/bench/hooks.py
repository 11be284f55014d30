"""What Claude Code waits per hook, per event, for http hooks and for command hooks.

    .venv/bin/python scripts/bench/hooks.py [--memories 10000] [--calls 200]

Fills a storage root with N memories, starts `clarity serve`, and replays realistic payloads
(shaped like tests/fixtures/hook_payloads/, each call with a different prompt or command so no
cache answers). http: one POST per call on a fresh connection, as a hook runner that does not
keep connections alive would. command: the exact command line `clarity hooks install --type
command` writes, started as a process with the payload on stdin, timed until it exits. Prints
p50/p95/p99 per event and writes bench-results/hooks.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import shlex
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from common import ROOT, SUBJECTS, TOOLS, percentiles, prefill, running_daemon
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

EVENTS = ["UserPromptSubmit", "PreToolUse", "PostToolUse", "PostToolUseFailure", "SessionStart", "Stop"]


def make_payload(event: str, i: int, rng: random.Random, project: str) -> dict[str, Any]:
    base = {
        "session_id": f"bench-{i % 20}",
        "transcript_path": "",
        "cwd": project,
        "hook_event_name": event,
        "permission_mode": "default",
    }
    tool = rng.choice(TOOLS)
    if event == "UserPromptSubmit":
        return {**base, "prompt": f"how does {rng.choice(SUBJECTS)} use {tool}? (question {i})"}
    if event == "PreToolUse":
        return {**base, "tool_name": "Bash", "tool_input": {"command": f"{tool} test --case {i}"}}
    if event == "PostToolUse":
        return {
            **base,
            "tool_name": "Bash",
            "tool_input": {"command": f"{tool} build --target t{i}"},
            "tool_response": {"stdout": "ok", "stderr": ""},
        }
    if event == "PostToolUseFailure":
        return {
            **base,
            "tool_name": "Bash",
            "tool_input": {"command": f"{tool} test --case {i}"},
            "error": f"Exit code 1\nerror: case {i} failed",
        }
    if event == "SessionStart":
        return {**base, "source": "startup"}
    return {**base, "stop_hook_active": False}


def post_fresh(url: str, path: str, body: bytes | None) -> int:
    """One request on a new TCP connection, the way a hook runner without keep-alive calls."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        if body is None:
            connection.request("GET", path)
        else:
            connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def settle(url: str) -> None:
    """Wait until the daemon has learned everything queued, so one event's numbers do not pay
    for the previous event's background learning."""
    deadline = time.monotonic() + 300
    while (
        httpx.get(f"{url}/readyz", timeout=10).json().get("learning_backlog", 0)
        and time.monotonic() < deadline
    ):
        time.sleep(0.2)


def command_line(url: str, event: str) -> list[str]:
    from clarity.integrations.claude_code import analyzer_command

    return shlex.split(analyzer_command(event, url))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    console = Console(stderr=True)
    root = Path(tempfile.mkdtemp(prefix="clarity-bench-")) / "root"
    project = Path(tempfile.mkdtemp(prefix="clarity-bench-project-"))
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    prefill(root, args.memories, console)
    results: dict[str, dict[str, Any]] = {"http": {}, "command": {}}
    with running_daemon(root) as url:
        rng = random.Random(5)
        httpx.post(
            f"{url}/hooks/UserPromptSubmit", json=make_payload("UserPromptSubmit", -1, rng, str(project))
        )
        with Progress(console=console, transient=True) as progress:
            for event in EVENTS:
                settle(url)
                task = progress.add_task(f"http {event}", total=args.calls)
                samples = []
                for i in range(args.calls):
                    body = json.dumps(make_payload(event, i, rng, str(project))).encode()
                    t = time.perf_counter()
                    status = post_fresh(url, f"/hooks/{event}", body)
                    samples.append(time.perf_counter() - t)
                    assert status == 200, status
                    progress.advance(task)
                results["http"][event] = percentiles(samples)
            for event in EVENTS:
                settle(url)
                task = progress.add_task(f"command {event}", total=args.calls)
                argv = command_line(url, event)
                samples = []
                for i in range(args.calls):
                    body = json.dumps(make_payload(event, args.calls + i, rng, str(project))).encode()
                    t = time.perf_counter()
                    done = subprocess.run(argv, input=body, capture_output=True, check=False)
                    samples.append(time.perf_counter() - t)
                    assert done.returncode == 0, done.stderr
                    progress.advance(task)
                results["command"][event] = percentiles(samples)
            floor = []
            for _ in range(args.calls):
                t = time.perf_counter()
                post_fresh(url, "/healthz", None)
                floor.append(time.perf_counter() - t)
            results["floor_healthz_ms"] = percentiles(floor)
    table = Table(title=f"Hook wait per call (ms), {args.memories} memories, {args.calls} calls per cell")
    for column in ("event", "http p50", "http p95", "command p50", "command p95"):
        table.add_column(column, justify="right" if column != "event" else "left")
    for event in EVENTS:
        h, c = results["http"][event], results["command"][event]
        table.add_row(event, str(h["p50"]), str(h["p95"]), str(c["p50"]), str(c["p95"]))
    floor_ms = results["floor_healthz_ms"]
    table.add_row("(floor: GET /healthz, same client)", str(floor_ms["p50"]), str(floor_ms["p95"]), "", "")
    Console().print(table)
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "hooks.json").write_text(json.dumps({"memories": args.memories, **results}, indent=2))


if __name__ == "__main__":
    main()
