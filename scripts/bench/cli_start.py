"""How long a client command takes, from start to exit, against a warm daemon.

    .venv/bin/python scripts/bench/cli_start.py [--quick] [--runs 20] [--out DIR]

A daemon (`clarity serve`, the real model) starts on a temporary storage root holding a few
memories, and a temporary git repository is the project every command runs in. Each client
command then runs as a whole process, `.venv/bin/clarity ...` (the entry point users run, its
output to a pipe), N times; the commands are interleaved, every round in a new order, so a burst
of load on the machine falls on all of them alike. Floors from the same rounds, with the same
interpreter: `python -c pass` (the interpreter alone) and `python -c "import httpx"` (one HTTP
library). `doctor` also runs `claude --version` (a Node process) among its checks.

Then every command runs once more under `python -X importtime`, and two lists show where its
time goes: the import time of each top-level package (each module's own time summed, so the
figures add up to the total; "stdlib" for the standard library), and the largest imports with
everything they pulled in (cumulative, at the point where a package was first entered).

Target: every client command starts and exits in 0.3 s or less (p50) on a quiet 2-core machine.
The 1-minute load is recorded at the start and the end: timings above a load of 1.5 are noisy.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from common import ROOT, machine, parser, percentiles, running_daemon, write_results
from rich.console import Console
from rich.table import Table

TARGET_MS = 300.0
CLARITY = Path(sys.executable).with_name("clarity")
SEEDED = 30  # memories stored before timing, so list and search have something to show
NOTES = "# Build\n\nRun `make test` before pushing.\n\n# Deploy\n\nTag a release; CI deploys it.\n"

# name -> the arguments of round i (ids: memories stored for `delete`, one per round)
Commands = dict[str, Callable[[int, list[str], Path], list[str]]]
COMMANDS: Commands = {
    "--help": lambda i, ids, work: ["--help"],
    "version": lambda i, ids, work: ["version"],
    "status": lambda i, ids, work: ["status"],
    "stats": lambda i, ids, work: ["stats"],
    "list": lambda i, ids, work: ["list"],
    "search": lambda i, ids, work: ["search", f"how do we deploy the gateway {i}"],
    "store": lambda i, ids, work: ["store", f"The CLI benchmark stored note {i} at {time.time()}"],
    "delete <prefix>": lambda i, ids, work: ["delete", ids[i][:8]],
    "forget --dry-run": lambda i, ids, work: ["forget", "--dry-run", "--older-than", "1000"],
    "export": lambda i, ids, work: ["export", str(work / "export.jsonl")],
    "import --dry-run": lambda i, ids, work: ["import", "--dry-run", str(work / "notes.md")],
    "pause": lambda i, ids, work: ["pause"],
    "resume": lambda i, ids, work: ["resume"],
    "doctor": lambda i, ids, work: ["doctor"],
    "hooks status": lambda i, ids, work: ["hooks", "status"],
    "service status": lambda i, ids, work: ["service", "status"],
}
FLOORS = {"python -c pass": ["-c", "pass"], 'python -c "import httpx"': ["-c", "import httpx"]}
OK_CODES = {"doctor": {0, 1}}  # doctor exits 1 when a check fails (no hooks installed here)


def seed(url: str, project: Path, count: int) -> list[str]:
    """Store ``count`` memories in the project's scope; their ids."""
    ids = []
    with httpx.Client(base_url=f"{url}/api", headers={"X-Clarity-Project": str(project)}, timeout=60) as http:
        for i in range(count):
            content = f"The gateway {i} is deployed with helm chart v{i}; logs go to loki (seed {i})"
            reply = http.post("/memories", json={"content": content, "tags": ["bench"]})
            reply.raise_for_status()
            ids.append(reply.json()["id"])
    return ids


def run(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int, bytes]:
    started = time.perf_counter()
    done = subprocess.run(
        argv,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=120,
    )
    return time.perf_counter() - started, done.returncode, done.stderr


IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)$")


def import_profile(stderr: str, top: int = 6) -> dict[str, Any]:
    """``-X importtime`` output as: total, own time summed per top-level package, and the
    largest imports with what they pulled in, where a package was first entered from another."""
    entries = []
    for line in stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if match:
            own, cumulative, indent, name = match.groups()
            entries.append((len(indent) // 2, name, int(own), int(cumulative)))
    stdlib = sys.stdlib_module_names

    def package(name: str) -> str:
        root = name.split(".")[0]
        return "stdlib" if root in stdlib or root.startswith("_") else root

    by_package: dict[str, float] = defaultdict(float)
    for _, name, own, _ in entries:
        by_package[package(name)] += own / 1000
    # importtime prints a module after its children: the parent of an entry is the next one
    # printed at a smaller depth.
    largest = []
    for index, (depth, name, _, cumulative) in enumerate(entries):
        parent = next((n for d, n, _, _ in entries[index + 1 :] if d < depth), None)
        if package(name) not in ("stdlib", "clarity") and (
            parent is None or package(parent) != package(name)
        ):
            largest.append((round(cumulative / 1000, 1), name))
    largest.sort(reverse=True)
    ranked = sorted(by_package.items(), key=lambda item: -item[1])
    return {
        "total_ms": round(sum(by_package.values()), 1),
        "by_package_ms": {name: round(ms, 1) for name, ms in ranked[:top]},
        "largest_ms": [{"module": name, "ms": ms} for ms, name in largest[:top]],
    }


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--runs", type=int, default=None, help="runs per command (default 20, --quick 3)")
    args = p.parse_args()
    runs = args.runs or (3 if args.quick else 20)
    console = Console(stderr=True)
    info = machine()
    console.print(f"machine: {info}")
    work = Path(tempfile.mkdtemp(prefix="clarity-bench-cli-"))
    project = work / "project"
    project.mkdir()
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    (work / "notes.md").write_text(NOTES, encoding="utf-8")
    root = work / "root"
    results: dict[str, Any] = {
        "machine": info,
        "runs": runs,
        "target_ms": TARGET_MS,
        "floor": {},
        "commands": {},
    }
    try:
        with running_daemon(root) as url:
            env = {
                **os.environ,
                "CLARITY_STORAGE__ROOT": str(root),
                "CLARITY_SERVER__PORT": url.rsplit(":", 1)[1],
                "MEMORY_CONFIG_PATH": str(root / "none.json"),
            }
            ids = seed(url, project, SEEDED + runs + 1)[SEEDED:]  # one to delete per round, one to profile
            samples: dict[str, list[float]] = defaultdict(list)
            codes: dict[str, set[int]] = defaultdict(set)
            cases = [*((name, None) for name in FLOORS), *((name, name) for name in COMMANDS)]
            rng = random.Random(3)
            for i in range(-1, runs):  # round -1 warms the page cache and is not counted
                rng.shuffle(cases)
                for name, command in cases:
                    if command is None:
                        argv = [sys.executable, *FLOORS[name]]
                    elif i < 0 and command == "delete <prefix>":
                        continue  # each id can be deleted once
                    else:
                        argv = [str(CLARITY), *COMMANDS[command](max(i, 0), ids, work)]
                    elapsed, code, stderr = run(argv, env, project)
                    if code not in OK_CODES.get(name, {0}):
                        raise SystemExit(f"{name} exited {code}: {stderr.decode(errors='replace')[-500:]}")
                    if i >= 0:
                        samples[name].append(elapsed)
                        codes[name].add(code)
                console.print(f"round {i + 1}/{runs} done; load {os.getloadavg()[0]:.2f}", highlight=False)
            for name in FLOORS:
                results["floor"][name] = percentiles(samples[name])
            for name, make in COMMANDS.items():
                argv = make(runs, ids, work)
                _, _, stderr = run([sys.executable, "-X", "importtime", str(CLARITY), *argv], env, project)
                results["commands"][name] = {
                    "argv": argv,
                    **percentiles(samples[name]),
                    "exit_codes": sorted(codes[name]),
                    "imports": import_profile(stderr.decode(errors="replace")),
                }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["machine"]["load_at_end"] = round(os.getloadavg()[0], 2)
    report(results)
    write_results(args.out, "cli_start", results, lambda fig: plot(fig, results))


def report(results: dict[str, Any]) -> None:
    info = results["machine"]
    loads = f"1-minute load {info['load_at_start']} at start, {info['load_at_end']} at end"
    table = Table(title=f"Client command, start to exit, {results['runs']} runs each, interleaved ({loads})")
    for column in ("command", "p50 ms", "p95 ms", "mean ms", f"<= {TARGET_MS:.0f} ms", "imports ms"):
        table.add_column(column, justify="left" if column == "command" else "right")
    table.add_column("import time by package (own ms)")
    for name, stats in results["floor"].items():
        table.add_row(
            f"floor: {name}", f"{stats['p50']:.0f}", f"{stats['p95']:.0f}", f"{stats['mean']:.0f}", "", "", ""
        )
    for name, cell in results["commands"].items():
        packages = ", ".join(f"{k} {v:.0f}" for k, v in cell["imports"]["by_package_ms"].items())
        table.add_row(
            name,
            f"{cell['p50']:.0f}",
            f"{cell['p95']:.0f}",
            f"{cell['mean']:.0f}",
            "yes" if cell["p50"] <= TARGET_MS else "NO",
            f"{cell['imports']['total_ms']:.0f}",
            packages,
        )
    console = Console(width=220)
    console.print(table)
    console.print("largest imports per command (cumulative ms, where the package was first entered):")
    for name, cell in results["commands"].items():
        largest = ", ".join(f"{e['module']} {e['ms']:.0f}" for e in cell["imports"]["largest_ms"])
        console.print(f"  {name:<18} {largest}", highlight=False, soft_wrap=True)


def plot(fig: Any, results: dict[str, Any]) -> None:
    ax = fig.subplots()
    names = list(results["commands"])
    p50 = [results["commands"][n]["p50"] for n in names]
    p95 = [results["commands"][n]["p95"] for n in names]
    x = range(len(names))
    ax.bar(x, p50, label="p50")
    ax.scatter(x, p95, marker="_", color="black", s=120, label="p95")
    ax.axhline(TARGET_MS, color="red", linestyle="--", linewidth=0.8, label=f"target {TARGET_MS:.0f} ms")
    for (name, stats), style in zip(results["floor"].items(), (":", "-."), strict=False):
        ax.axhline(stats["p50"], color="grey", linestyle=style, label=f"floor: {name}")
    ax.set_xticks(list(x), names, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("ms, process start to exit")
    ax.set_title(
        f"clarity client commands, {results['runs']} runs each (load {results['machine']['load_at_start']})"
    )
    ax.legend(fontsize=7)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
