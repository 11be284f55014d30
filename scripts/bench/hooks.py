"""What Claude Code waits per hook, per event, for http and command hooks, at several store sizes.

    .venv/bin/python scripts/bench/hooks.py [--quick] [--sizes 1000,10000,100000] [--calls 500] [--out DIR]
        [--parts events,anchors] [--anchor-calls 300]

For each size N: a storage root is filled with N memories (half of them in the benchmark
project's scope; real embeddings up to 20k, derived vectors above, see common.py) through the
embedded engine's normal write path, waiting for every index build, so the daemon starts on a
steady-state layout (HNSW segments merged up to storage.segment_max_points, 500k, plus a
half-full brute-force active shard; at 100k: one 97.5k segment and 2.5k active). Then
`clarity serve` starts on it and the real payloads from tests/fixtures/hook_payloads/ are
replayed, each call with a different prompt / command so no cache answers:

- http: one POST /hooks/<Event> per call on a fresh TCP connection (Claude Code's http hooks);
  SessionStart is skipped because Claude Code never posts it to http hooks.
- command: the exact command line `clarity hooks install --type command` writes
  (python -S command_client.py ...), started with the payload on stdin, timed until it exits.

Floors, measured in the same run: a bare loopback HTTP round trip (a minimal stdlib server in its
own process answering 200 {} to a POST on a fresh connection), the daemon's GET /healthz, and for
command hooks the same analyzer posting to the bare server (process start + one POST).
Learning that tool events queue is drained between events, so one event does not pay for another.

Anchors (``--parts anchors``): the benchmark's git repository gets ten committed modules, and the
store, on top of its N memories, 10 memories anchored to them ("zephyrledger ...", lines 1-5 of
one module each), the same 10 texts unanchored ("quasarledger ..."), and 2 more anchored to each
module. Over http, with a new session per call so every reply is composed in full, alternating
call by call so both sides see the same load:

- the prompt hook for a prompt whose 10 candidates are the anchored ones vs the unanchored ones
  (each candidate's anchors checked: a ``stat`` while the file is unchanged), then again after a
  line of every module changed (each candidate flagged "may be out of date");
- PreToolUse of Read on an anchored module (per-file recall: 3 memories anchored there) vs on a
  module nothing is anchored to.

The search the prompt hook runs is replayed once per side through /api/search to show how many
of its candidates are anchored. The 1-minute load is printed with every figure.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from common import (
    ROOT,
    SUBJECTS,
    TOOLS,
    free_port,
    machine,
    parser,
    percentiles,
    prefill,
    progress,
    running_daemon,
    settle_layout,
    write_results,
)
from rich.console import Console
from rich.table import Table

FIXTURES = ROOT / "tests" / "fixtures" / "hook_payloads"
from clarity.config import Settings  # noqa: E402 (after common put the repository on sys.path)
from clarity.hooks.events import EVENTS  # noqa: E402

HTTP_SKIPPED = {"SessionStart"}  # Claude Code does not post SessionStart to http hooks
VARIANTS = {
    "PreToolUse": ["PreToolUse", "PreToolUse.Bash-failing", "PreToolUse.Edit", "PreToolUse.Write"],
    "PostToolUse": ["PostToolUse", "PostToolUse.Edit", "PostToolUse.Write"],
}
PROMPTS = [
    "why does {subject} fail with {tool} again? (#{i})",
    "please fix the failing {tool} run in {subject}, case {i}",
    "what did we decide about {subject} and {tool}? #{i}",
    "remind me how to test {subject} with {tool} ({i})",
]

BARE_SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")
    def log_message(self, *args):
        pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def fixture(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / f"{name}.json").read_text()))


def make_payload(event: str, i: int, rng: random.Random, project: str) -> dict[str, Any]:
    """A real payload of `event` with this call's prompt / command / text, in `project`."""
    names = VARIANTS.get(event, [event])
    payload = fixture(names[i % len(names)])
    payload["cwd"] = project
    payload["session_id"] = f"00000000-0000-4000-8000-{i // 25:012d}"
    tool, subject = rng.choice(TOOLS), rng.choice(SUBJECTS)
    if event == "UserPromptSubmit":
        payload["prompt"] = rng.choice(PROMPTS).format(subject=subject, tool=tool, i=i)
    tool_input = payload.get("tool_input")
    if isinstance(tool_input, dict) and "command" in tool_input:
        tool_input["command"] = f"{tool} test -k case{i} {subject.split()[-1]}"
    if isinstance(tool_input, dict) and "file_path" in tool_input:
        tool_input["file_path"] = f"{project}/notes-{i % 50}.md"
    if event == "PostToolUseFailure":
        payload["error"] = f"Exit code 1\n{tool}: case{i} failed: E{i % 997} connection refused"
    if event == "Stop":
        payload["last_assistant_message"] = f"Done: {subject} now passes {tool} case {i}."
    return payload


def post_fresh(port: int, path: str, body: bytes | None) -> int:
    """One request on a new TCP connection, as Claude Code's http hooks do."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
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
    """Wait until the daemon has learned everything queued."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if not httpx.get(f"{url}/readyz", timeout=30).json().get("learning_backlog", 0):
            return
        time.sleep(0.2)


def command_line(url: str, event: str) -> list[str]:
    from clarity.integrations.claude_entries import client_command as analyzer_command

    return shlex.split(analyzer_command(event, url))


@contextmanager
def bare_server() -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-S", "-c", BARE_SERVER, str(port)])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                post_fresh(port, "/", b"{}")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def run_command(argv: list[str], body: bytes, project: str) -> float:
    env = {**os.environ, "CLAUDE_PROJECT_DIR": project, "CLAUDECODE": "1"}
    t = time.perf_counter()
    done = subprocess.run(argv, input=body, capture_output=True, check=False, cwd=project, env=env)
    elapsed = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"command hook exited {done.returncode}: {done.stderr!r}")
    return elapsed


ANCHORED_MODULES = 10
MODULE = """def compute_{k}(ledger):
    total = 0
    for entry in ledger:
        total += entry.amount_{k}
    return total


def reset_{k}(ledger):
    ledger.clear()
"""


def git(project: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(project), "-c", "user.name=bench", "-c", "user.email=bench@example.com", *args],
        check=True,
        capture_output=True,
    )


def anchored_modules(project: Path) -> None:
    """Ten modules and one more that nothing will be anchored to, committed; then a wait past
    ``anchors.RACY_NS``, so the anchors are captured on settled files as they usually are."""
    src = project / "src"
    src.mkdir(exist_ok=True)
    for k in range(ANCHORED_MODULES):
        (src / f"mod_{k}.py").write_text(MODULE.format(k=k))
    (src / "plain.py").write_text("VALUE = 1\n")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "modules")
    time.sleep(2.1)


def store_anchor_memories(url: str, project: str) -> None:
    def store(content: str, kind: str, anchors: list[str] | None) -> None:
        body: dict[str, Any] = {"content": content, "memory_type": kind}
        if anchors:
            body["anchors"] = anchors
        answer = httpx.post(
            f"{url}/api/memories", json=body, headers={"X-Clarity-Project": project}, timeout=60
        )
        if answer.status_code != 201:
            raise SystemExit(f"storing an anchor memory: HTTP {answer.status_code} {answer.text}")

    for k in range(ANCHORED_MODULES):
        text = f"compute_{k} sums amount_{k} over the ledger entries and returns the running total"
        store(f"zephyrledger {k}: {text}", "fact", [f"src/mod_{k}.py:1-5"])
        store(f"quasarledger {k}: {text}", "fact", None)
        store(
            f"the nightly job clears the ledger with reset_{k} before it runs",
            "decision",
            [f"src/mod_{k}.py"],
        )
        store(f"amount_{k} must be a Decimal: float sums drifted by a cent", "fix", [f"src/mod_{k}.py:1-5"])


def anchored_candidates(url: str, project: str, prompt: str) -> int:
    """How many of the prompt hook's 10 candidates for ``prompt`` carry anchors."""
    body = {"query": prompt, "limit": 10, "scope": "default"}
    found = httpx.post(f"{url}/api/search", json=body, headers={"X-Clarity-Project": project}, timeout=60)
    return sum(1 for hit in found.json()["results"] if hit.get("anchors"))


def alternating(
    port: int, sides: dict[str, Any], calls: int, bar: Any, label: str
) -> dict[str, dict[str, Any]]:
    """``calls`` hook calls per side, the sides taking turns; each side's percentiles, how many
    replies carried context, and the 1-minute load before and after."""
    samples: dict[str, list[float]] = {name: [] for name in sides}
    answered = dict.fromkeys(sides, 0)
    flagged = dict.fromkeys(sides, 0)
    load = os.getloadavg()[0]
    task = bar.add_task(label, total=calls * len(sides))
    for i in range(calls):
        names = list(sides) if i % 2 == 0 else list(reversed(sides))
        for name in names:
            event, payload = sides[name](i)
            body = json.dumps(payload).encode()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                t = time.perf_counter()
                connection.request(
                    "POST", f"/hooks/{event}", body=body, headers={"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                text = response.read()
                samples[name].append(time.perf_counter() - t)
            finally:
                connection.close()
            if response.status != 200:
                raise SystemExit(f"{label}: HTTP {response.status}")
            answered[name] += b"additionalContext" in text
            flagged[name] += b"may be out of date" in text
            bar.advance(task)
    after = os.getloadavg()[0]
    return {
        name: {
            **percentiles(samples[name]),
            "with_context": answered[name],
            "flagged": flagged[name],
            "load": [round(load, 2), round(after, 2)],
        }
        for name in sides
    }


def anchor_part(url: str, port: int, project: str, calls: int, console: Console) -> dict[str, Any]:
    """The anchors part (see the module docstring)."""
    store_anchor_memories(url, project)
    rng = random.Random(7)
    src = Path(project) / "src"

    def prompt(word: str, series: str) -> Any:
        """Each call its own prompt (``series`` and ``i``), so no embedding cache answers."""

        def make(i: int) -> tuple[str, dict[str, Any]]:
            payload = make_payload("UserPromptSubmit", i, rng, project)
            payload["prompt"] = f"how does {word} compute the running total of the ledger, case {series}{i}?"
            payload["session_id"] = f"anchors-{word}-{uuid.uuid4()}"
            return "UserPromptSubmit", payload

        return make

    def read(anchored: bool) -> Any:
        def make(i: int) -> tuple[str, dict[str, Any]]:
            payload = fixture("PreToolUse.Edit")
            name = f"mod_{i % ANCHORED_MODULES}.py" if anchored else "plain.py"
            payload.update(cwd=project, session_id=f"anchors-read-{uuid.uuid4()}", tool_name="Read")
            payload["tool_input"] = {"file_path": str(src / name)}
            return "PreToolUse", payload

        return make

    cell: dict[str, Any] = {
        "candidates": {
            word: anchored_candidates(
                url, project, f"how does {word} compute the running total of the ledger?"
            )
            for word in ("zephyrledger", "quasarledger")
        }
    }
    with progress(console) as bar:
        cell["prompt"] = alternating(
            port,
            {"unanchored": prompt("quasarledger", "a"), "anchored": prompt("zephyrledger", "a")},
            calls,
            bar,
            "prompt: 10 anchored vs 10 unanchored candidates",
        )
        cell["read"] = alternating(
            port,
            {"nothing anchored": read(False), "3 anchored": read(True)},
            calls,
            bar,
            "PreToolUse Read: per-file recall",
        )
        for k in range(ANCHORED_MODULES):  # one line of each anchored range changes
            module = src / f"mod_{k}.py"
            module.write_text(module.read_text().replace("total = 0", "total = 0  # cents"))
        time.sleep(2.1)
        cell["prompt_changed"] = alternating(
            port,
            {
                "unanchored": prompt("quasarledger", "c"),
                "anchored, code changed": prompt("zephyrledger", "c"),
            },
            calls,
            bar,
            "prompt: 10 anchored (code changed) vs 10 unanchored",
        )
    for k in range(ANCHORED_MODULES):
        module = src / f"mod_{k}.py"
        module.write_text(MODULE.format(k=k))  # as committed, for the next size
    time.sleep(2.1)
    return cell


def main() -> None:
    p = parser(__doc__)
    p.add_argument(
        "--sizes", default=None, help="stored memories, comma-separated (default 1000,10000,100000)"
    )
    p.add_argument("--calls", type=int, default=None, help="calls per event and hook type (default 500)")
    p.add_argument("--types", default="http,command", help="http, command or both")
    p.add_argument(
        "--parts", default="events,anchors", help="events (each event's payloads), anchors, or both"
    )
    p.add_argument(
        "--anchor-calls", type=int, default=None, help="calls per side in the anchors part (default 300)"
    )
    p.add_argument(
        "--fill-only", action="store_true", help="fill the template roots (with --workdir) and stop"
    )
    p.add_argument(
        "--workdir", type=Path, default=None, help="keep filled storage roots here and reuse them next time"
    )
    args = p.parse_args()
    sizes = [int(s) for s in (args.sizes or ("1000" if args.quick else "1000,10000,100000")).split(",")]
    calls = args.calls or (20 if args.quick else 500)
    types = args.types.split(",")
    parts = args.parts.split(",")
    anchor_calls = args.anchor_calls or (20 if args.quick else 300)
    console = Console(stderr=True)
    info = machine()
    console.print(f"machine: {info}")
    from clarity.project import project_scope

    work = Path(tempfile.mkdtemp(prefix="clarity-bench-hooks-"))
    project_dir = (args.workdir or work) / "hooks-project"
    project_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(project_dir)], check=True)
    if "anchors" in parts:
        anchored_modules(project_dir)
    project = str(project_dir)
    scope = project_scope(project)
    rng = random.Random(5)
    results: dict[str, Any] = {"machine": info, "calls": calls, "sizes": {}, "floor": {}}

    with bare_server() as bare_port, progress(console) as bar:
        task = bar.add_task("floor: bare loopback HTTP POST", total=calls)
        samples = []
        for _ in range(calls):
            t = time.perf_counter()
            post_fresh(bare_port, "/hooks/UserPromptSubmit", b'{"hook_event_name": "UserPromptSubmit"}')
            samples.append(time.perf_counter() - t)
            bar.advance(task)
        results["floor"]["bare_http_post"] = percentiles(samples)
        if "command" in types:
            argv = command_line(f"http://127.0.0.1:{bare_port}", "UserPromptSubmit")
            task = bar.add_task("floor: command hook client to the bare server", total=calls)
            samples = []
            for i in range(calls):
                body = json.dumps(make_payload("UserPromptSubmit", i, rng, project)).encode()
                samples.append(run_command(argv, body, project))
                bar.advance(task)
            results["floor"]["command_to_bare_server"] = percentiles(samples)

    for size in sizes:
        root = work / f"root-{size}"
        if args.workdir is None:
            layout = prefill(root, size, console, project=scope)
        else:  # a filled template root, reused across runs; the daemon works on a copy
            template = args.workdir / f"hooks-root-{size}"
            sidecar = template.with_suffix(".json")
            kept = json.loads(sidecar.read_text()) if sidecar.exists() else {}
            defaults = Settings().storage
            seal_size, quantization = defaults.active_shard_max_points, defaults.quantization
            if (kept.get("scope"), kept.get("segment_size"), kept.get("quantization")) != (
                scope,
                seal_size,
                quantization,
            ):  # another layout
                shutil.rmtree(template, ignore_errors=True)
                sidecar.write_text(
                    json.dumps({"scope": scope, **prefill(template, size, console, project=scope)})
                )
            layout = {**json.loads(sidecar.read_text()), "reused": True}
            storage = Settings(storage={"root": str(template)}).storage
            layout["layout"] = settle_layout(
                storage.qdrant_dir,
                storage.active_shard_max_points,
                storage.segment_max_points,
                quantization=storage.quantization,
            )
            if args.fill_only:
                continue
            shutil.copytree(template, root)
        cell: dict[str, Any] = {"store": layout, "http": {}, "command": {}}
        with running_daemon(root) as url:
            port = int(url.rsplit(":", 1)[1])
            for i in range(5):  # warm-up: first requests pay for lazy imports
                httpx.post(
                    f"{url}/hooks/UserPromptSubmit", json=make_payload("UserPromptSubmit", -i, rng, project)
                )
            with progress(console) as bar:
                task = bar.add_task(f"{size}: daemon GET /healthz", total=calls)
                samples = []
                for _ in range(calls):
                    t = time.perf_counter()
                    post_fresh(port, "/healthz", None)
                    samples.append(time.perf_counter() - t)
                    bar.advance(task)
                cell["healthz"] = percentiles(samples)
                for kind in types if "events" in parts else []:
                    for event in EVENTS:
                        if kind == "http" and event in HTTP_SKIPPED:
                            continue
                        settle(url)
                        task = bar.add_task(f"{size}: {kind} {event}", total=calls)
                        argv = command_line(url, event) if kind == "command" else []
                        samples = []
                        for i in range(calls):
                            body = json.dumps(make_payload(event, i, rng, project)).encode()
                            if kind == "http":
                                t = time.perf_counter()
                                status = post_fresh(port, f"/hooks/{event}", body)
                                samples.append(time.perf_counter() - t)
                                if status != 200:
                                    raise SystemExit(f"{event}: HTTP {status}")
                            else:
                                samples.append(run_command(argv, body, project))
                            bar.advance(task)
                        cell[kind][event] = percentiles(samples)
            if "anchors" in parts:
                cell["anchors"] = anchor_part(url, port, project, anchor_calls, console)
            cell["stats_after"] = httpx.get(f"{url}/api/stats", timeout=30).json().get("total")
        results["sizes"][str(size)] = cell
        shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    if args.fill_only:
        return
    if "events" in parts:
        report(results, types)
    if "anchors" in parts:
        report_anchors(results)
    write_results(args.out, "hooks", results, lambda fig: plot(fig, results, types))


def report(results: dict[str, Any], types: list[str]) -> None:
    quiet = "quiet" if results["machine"]["quiet"] else "NOISY (load >= 1.5)"
    table = Table(
        title=f"What Claude Code waits per hook, p50 / p95 / p99 ms, {results['calls']} calls per cell, machine {quiet}"
    )
    table.add_column("event")
    sizes = list(results["sizes"])
    for size in sizes:
        for kind in types:
            table.add_column(f"{kind} @ {int(size):,}", justify="right")

    def fmt(stats: dict[str, float] | None) -> str:
        return f"{stats['p50']:.1f} / {stats['p95']:.1f} / {stats['p99']:.1f}" if stats else "n/a"

    for event in EVENTS:
        table.add_row(event, *[fmt(results["sizes"][s][k].get(event)) for s in sizes for k in types])
    table.add_row(
        "daemon GET /healthz",
        *[fmt(results["sizes"][s]["healthz"]) if k == "http" else "" for s in sizes for k in types],
    )
    floor = results["floor"]
    table.add_row(
        "floor: bare loopback POST / analyzer to bare server",
        *[
            fmt(floor.get("bare_http_post" if k == "http" else "command_to_bare_server"))
            for _ in sizes
            for k in types
        ],
    )
    table.caption = "SessionStart is command-only in Claude Code (http hooks are not posted for it)"
    Console(width=200).print(table)


def report_anchors(results: dict[str, Any]) -> None:
    table = Table(title="Anchored memories in the hooks, http, p50 / p95 / p99 ms (new session per call)")
    for column in (
        "store",
        "series",
        "side",
        "p50 / p95 / p99",
        "p50 delta",
        "with context",
        "flagged",
        "load 1-min",
    ):
        table.add_column(column, justify="right" if column != "side" else "left")
    for size, cell in results["sizes"].items():
        anchors = cell.get("anchors")
        if not anchors:
            continue
        for series in ("prompt", "read", "prompt_changed"):
            sides = anchors[series]
            base = next(iter(sides.values()))["p50"]
            for side, stats in sides.items():
                table.add_row(
                    f"{int(size):,}",
                    series,
                    side,
                    f"{stats['p50']:.2f} / {stats['p95']:.2f} / {stats['p99']:.2f}",
                    f"{stats['p50'] - base:+.2f}",
                    f"{stats['with_context']} / {stats['n']}",
                    str(stats["flagged"]),
                    " -> ".join(str(x) for x in stats["load"]),
                )
        table.caption = f"anchored candidates among the prompt hook's 10: {anchors['candidates']}"
    Console(width=200).print(table)


def plot(fig: Any, results: dict[str, Any], types: list[str]) -> None:
    import numpy as np

    axes = fig.subplots(1, len(types), squeeze=False)[0]
    sizes = list(results["sizes"])
    for ax, kind in zip(axes, types, strict=True):
        events = [e for e in EVENTS if any(e in results["sizes"][s][kind] for s in sizes)]
        x = np.arange(len(events))
        width = 0.8 / max(1, len(sizes))
        for j, size in enumerate(sizes):
            p50 = [results["sizes"][size][kind].get(e, {}).get("p50", 0) for e in events]
            p95 = [results["sizes"][size][kind].get(e, {}).get("p95", 0) for e in events]
            ax.bar(x + j * width, p50, width, label=f"p50 @ {int(size):,}")
            ax.scatter(x + j * width, p95, marker="_", color="black", s=80)
        floor = results["floor"].get("bare_http_post" if kind == "http" else "command_to_bare_server")
        if floor:
            ax.axhline(floor["p50"], color="grey", linestyle=":", label="floor p50")
        if kind == "http":
            ax.axhline(20, color="red", linestyle="--", linewidth=0.8, label="target UserPromptSubmit 20 ms")
        ax.set_xticks(x + width * (len(sizes) - 1) / 2, events, rotation=30, fontsize=8)
        ax.set_ylabel("ms (bar p50, tick p95)")
        ax.set_title(f"{kind} hooks")
        ax.legend(fontsize=7)


if __name__ == "__main__":
    main()
