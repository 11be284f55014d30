"""How long Clarity makes a Claude Code session wait: the real CLI, the model scripted on loopback.

    .venv/bin/python scripts/bench/session_start.py [--quick] [--runs 10] [--configs none,plugin,...]

One warm daemon (`clarity serve` on a temp storage root, the real model) is started once. Every
configuration has its own throwaway HOME and git project; each run spawns
`claude -p PROMPT --output-format json` (Claude Code 2.1.330, node_modules/.bin/claude) against
tests/e2e/fake_anthropic.py, whose script runs one tool (`ls`) and then answers, so every hook
fires once, and records:

- first request: from spawning `claude` to the scripted model's first *main* /v1/messages
  request (the one that carries the user's prompt; side requests, those without tools, are
  counted apart), which is what a user waits for before anything happens;
- wall: the whole session, spawn to exit (the SessionEnd hook included);
- stdout and stderr: a configuration must print exactly what a session without Clarity prints.

Configurations (run interleaved, one run of each per round, the order rotated every round, after
one warm-up round that is not counted):

- none: no Clarity at all (the baseline every delta is taken against);
- plugin: this repository's plugin installed the way a user installs it (`claude plugin
  marketplace add` + `claude plugin install`), the daemon's port rewritten to the bench daemon's;
- user, project, local: `clarity hooks install --scope S --url URL`, its default command hooks
  (project: the project's `.mcp.json` approved, as a user does once, with
  `enableAllProjectMcpServers`); `user --type http` (only with --configs) for http hooks;
- user/plugin, daemon down: the same installs pointing at a port nothing listens on (the plugin
  then starts a daemon: its `clarity` is a stand-in that exits at once, so no daemon's start-up
  competes for the CPU run after run; tests/e2e/test_plugin.py times a real one);
- user/plugin, daemon slow (only with --configs): a loopback port that accepts connections and
  never answers, so every hook runs into its budget.

Prints a table (p50 / p95 per configuration, deltas against `none`, the 1-minute load) and
writes bench-results/session_start.json. Target: first-request delay <= 0.3 s for the plugin
and every hooks-install scope with a warm daemon, and <= 0.2 s with the daemon down.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import free_port, machine, parser, progress, running_daemon, write_results
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tests.e2e.claude_cli import claude_env, claude_version, find_claude
from tests.e2e.fake_anthropic import FakeAnthropic
from tests.e2e.hook_capture import blackhole
from tests.e2e.test_plugin import install_plugin

PROMPT = "list the files here"
# The scripted model runs one tool, then answers: the session pays for the tool hooks too.
SCRIPT = [
    {"tool": "Bash", "input": {"command": "ls", "description": "List files"}},
    {"text": "ok"},
]
DEFAULT_CONFIGS = (
    "none",
    "plugin",
    "user",
    "project",
    "local",
    "user, daemon down",
    "plugin, daemon down",
)
OTHER_CONFIGS = (
    "user --type http",
    "user --type http, daemon down",
    "user, daemon slow",
    "plugin, daemon slow",
    "user --type http, daemon slow",
)
MARKETPLACE = "alunai-clarity"
DEFAULT_HOSTPORT = "127.0.0.1:8000"


@dataclass
class Setup:
    """One configuration, ready to run: its HOME, project and environment additions."""

    name: str
    home: Path
    project: Path
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass
class Run:
    first_request: float  # seconds from spawn to the first main /v1/messages request
    wall: float  # seconds from spawn to exit
    side_requests: int
    stdout_extra: str  # stdout beyond the JSON result
    stderr: str
    load: float
    ok: bool


def dead_port() -> int:
    """A loopback port nothing listens on (bound once and released)."""
    return free_port()


# -- installing each configuration ---------------------------------------------------------------


def run_checked(argv: list[str], env: dict[str, str], cwd: Path) -> None:
    """Run a set-up command; stop the benchmark with its output if it fails."""
    done = subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stdout}{done.stderr}")


def hooks_install(scope: str, home: Path, project: Path, url: str, hook_type: str | None) -> None:
    """`clarity hooks install` as a user runs it, with this configuration's HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLARITY_", "CLAUDE_")) and k != "HOME"}
    env["HOME"] = str(home)
    argv = [sys.executable, "-m", "clarity", "hooks", "install", "--scope", scope, "--url", url]
    run_checked([*argv, *(("--type", hook_type) if hook_type else ())], env, project)


def prepare(name: str, work: Path, urls: dict[str, str], binary: str) -> Setup:
    """Make the HOME and project of configuration ``name`` (e.g. "user, daemon down")."""
    slug = name.replace(", ", "-").replace(" ", "-")
    home, project = work / slug / "home", work / slug / "project"
    (home / ".claude").mkdir(parents=True)
    project.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    kind, _, state = name.partition(", daemon ")
    kind, _, hook_type = kind.partition(" --type ")
    url = urls[state or "up"]
    setup = Setup(name, home, project)
    if state == "slow":  # a daemon that hangs once ran here: its storage root's app-data is there
        (home / ".claude" / "alunai-clarity" / "app-data").mkdir(parents=True, mode=0o700)
    if kind == "none":
        return setup
    if kind == "plugin":
        install_plugin(home, int(url.rsplit(":", 1)[1]), work)
        stand_in = work / "clarity-stand-in"
        if not stand_in.exists():
            stand_in.write_text("#!/bin/sh\nexit 0\n")
            stand_in.chmod(0o755)
        setup.extra_env["CLARITY_BIN"] = str(stand_in)
        return setup
    if kind == "project":  # approved once, as a user does at the first session
        (home / ".claude" / "settings.json").write_text(json.dumps({"enableAllProjectMcpServers": True}))
    hooks_install(kind, home, project, url, hook_type or None)
    return setup


# -- one run --------------------------------------------------------------------------------------


def run_once(setup: Setup, binary: str) -> Run:
    with FakeAnthropic(SCRIPT) as fake:
        env = claude_env(setup.home, fake.url, extra=setup.extra_env)
        args = [binary, "-p", PROMPT, "--permission-mode", "bypassPermissions", "--output-format", "json"]
        load = os.getloadavg()[0]
        started = time.time()
        proc = subprocess.run(
            args,
            env=env,
            cwd=setup.project,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=300,
            errors="replace",
        )
        wall = time.time() - started
        mains = [r.time for r in fake.requests if r.kind == "main"]
        sides = sum(1 for r in fake.requests if r.kind == "side")
    out = proc.stdout.strip()
    result, extra = None, out
    try:
        result = json.loads(out).get("result")
        extra = ""
    except ValueError:
        pass
    return Run(
        first_request=(min(mains) - started) if mains else float("nan"),
        wall=wall,
        side_requests=sides,
        stdout_extra=extra,
        stderr=proc.stderr,
        load=load,
        ok=proc.returncode == 0 and result == "ok",
    )


# -- statistics and report -------------------------------------------------------------------------


def quantiles(samples: list[float]) -> dict[str, float]:
    """Seconds: p50 (median) and p95 (nearest rank)."""
    ordered = sorted(s for s in samples if s == s)
    if not ordered:
        return {"p50": float("nan"), "p95": float("nan"), "n": 0}
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered) + 0.5) - 1))]
    return {"p50": round(statistics.median(ordered), 3), "p95": round(p95, 3), "n": len(ordered)}


def summarize(runs: dict[str, list[Run]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, items in runs.items():
        out[name] = {
            "first_request_s": quantiles([r.first_request for r in items]),
            "wall_s": quantiles([r.wall for r in items]),
            "side_requests": sum(r.side_requests for r in items),
            "failed_runs": sum(1 for r in items if not r.ok),
            "runs_with_stderr": sum(1 for r in items if r.stderr.strip()),
            "runs_with_extra_stdout": sum(1 for r in items if r.stdout_extra),
            "stderr_examples": sorted({r.stderr.strip()[:300] for r in items if r.stderr.strip()})[:3],
            "load_mean": round(statistics.fmean(r.load for r in items), 2) if items else None,
            "samples": {
                "first_request_s": [round(r.first_request, 3) for r in items],
                "wall_s": [round(r.wall, 3) for r in items],
            },
        }
    base = out.get("none")
    if base:
        for row in out.values():
            row["delta_first_request_p50_s"] = round(
                row["first_request_s"]["p50"] - base["first_request_s"]["p50"], 3
            )
            row["delta_wall_p50_s"] = round(row["wall_s"]["p50"] - base["wall_s"]["p50"], 3)
    return out


def report(result: dict[str, Any]) -> None:
    info = result["machine"]
    table = Table(
        title=(
            f"Claude Code {result['claude_version']} session start with Clarity, {result['runs']} runs per "
            f"configuration interleaved; 1-min load {info['load_at_start']} at start, "
            f"{result['load_at_end']} at end, mean over runs {result['load_mean']}"
        )
    )
    for column in (
        "configuration",
        "first request p50 / p95 s",
        "delta p50",
        "wall p50 / p95 s",
        "delta p50",
        "side req.",
        "stderr runs",
        "failed",
    ):
        table.add_column(column, justify="left" if column == "configuration" else "right")
    for name, row in result["configs"].items():
        first, wall = row["first_request_s"], row["wall_s"]
        table.add_row(
            name,
            f"{first['p50']:.3f} / {first['p95']:.3f}",
            f"{row.get('delta_first_request_p50_s', 0):+.3f}",
            f"{wall['p50']:.3f} / {wall['p95']:.3f}",
            f"{row.get('delta_wall_p50_s', 0):+.3f}",
            str(row["side_requests"]),
            str(row["runs_with_stderr"] + row["runs_with_extra_stdout"]),
            str(row["failed_runs"]),
        )
    table.caption = (
        "first request: spawn to the first main /v1/messages request (the user's prompt); "
        "targets: delta <= 0.3 s with a warm daemon, <= 0.2 s with the daemon down"
    )
    Console(width=200).print(table)
    for name, row in result["configs"].items():
        for example in row["stderr_examples"]:
            Console(stderr=True).print(f"[yellow]{escape(name)}: stderr[/] {escape(repr(example))}")


def plot(fig: Any, result: dict[str, Any]) -> None:
    ax = fig.subplots(1, 1)
    names = list(result["configs"])
    for i, name in enumerate(names):
        samples = result["configs"][name]["samples"]["first_request_s"]
        ax.scatter([i] * len(samples), samples, s=12, alpha=0.6, color="tab:blue")
        ax.hlines(result["configs"][name]["first_request_s"]["p50"], i - 0.3, i + 0.3, color="black")
    base = result["configs"].get("none", {}).get("first_request_s", {}).get("p50")
    if base is not None:
        ax.axhline(base + 0.3, color="red", linestyle="--", linewidth=0.8, label="none p50 + 0.3 s")
    ax.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
    ax.set_ylabel("spawn to first model request, s (line: p50)")
    ax.legend(fontsize=8)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--runs", type=int, default=None, help="counted runs per configuration (default 10)")
    p.add_argument(
        "--configs",
        default=None,
        help=f"comma-separated (default: {', '.join(DEFAULT_CONFIGS)}; also: {', '.join(OTHER_CONFIGS)})",
    )
    args = p.parse_args()
    runs_wanted = args.runs or (3 if args.quick else 10)
    configs = _parse_configs(args.configs) if args.configs else list(DEFAULT_CONFIGS)
    if "none" not in configs:
        configs.insert(0, "none")
    console = Console(stderr=True)
    binary = find_claude()
    if not binary:
        raise SystemExit("Claude Code CLI not found: npm install @anthropic-ai/claude-code@2.1.330")
    info = machine()
    console.print(f"machine: {info}")
    work = Path(tempfile.mkdtemp(prefix="clarity-bench-session-"))
    runs: dict[str, list[Run]] = {name: [] for name in configs}
    try:
        with running_daemon(work / "root") as url, blackhole() as slow_port:
            urls = {
                "up": url,
                "down": f"http://127.0.0.1:{dead_port()}",
                "slow": f"http://127.0.0.1:{slow_port}",
            }
            setups = [prepare(name, work, urls, binary) for name in configs]
            with progress(console) as bar:
                task = bar.add_task("warm-up round", total=len(setups))
                for setup in setups:
                    run_once(setup, binary)
                    bar.advance(task)
                task = bar.add_task(f"{runs_wanted} interleaved rounds", total=runs_wanted * len(setups))
                for round_no in range(runs_wanted):
                    shift = round_no % len(setups)
                    for setup in setups[shift:] + setups[:shift]:
                        runs[setup.name].append(run_once(setup, binary))
                        bar.advance(task)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "machine": info,
        "claude_version": claude_version(binary),
        "runs": runs_wanted,
        "prompt": PROMPT,
        "load_at_end": round(os.getloadavg()[0], 2),
        "load_mean": round(statistics.fmean(r.load for items in runs.values() for r in items), 2),
        "configs": summarize(runs),
    }
    report(result)
    write_results(args.out, "session_start", result, lambda fig: plot(fig, result))


def _parse_configs(text: str) -> list[str]:
    """Names separated by commas, where a name may itself hold ", daemon down": rejoin those."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    names: list[str] = []
    for part in parts:
        if part.startswith("daemon ") and names:
            names[-1] = f"{names[-1]}, {part}"
        else:
            names.append(part)
    known = set(DEFAULT_CONFIGS) | set(OTHER_CONFIGS)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(
            f"--configs: unknown {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known))}"
        )
    return names


if __name__ == "__main__":
    main()
