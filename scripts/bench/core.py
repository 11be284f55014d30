"""Store and retrieve latency through a real daemon at N stored memories.

    .venv/bin/python scripts/bench/core.py [--memories 10000] [--calls 200]

Fills a temporary storage root with N memories (embedded in batches, written through the
engine), starts `clarity serve` on it, then times POST /api/memories (new, distinct memories)
and POST /api/search (distinct queries, so the query cache never answers) from a keep-alive
client, as the CLI and hooks do. Prints p50/p95/p99 and writes JSON under bench-results/.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

import httpx
from common import ROOT, SUBJECTS, TOOLS, percentiles, prefill, running_daemon, synthetic
from rich.console import Console
from rich.progress import Progress
from rich.table import Table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    console = Console(stderr=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    root = Path(tempfile.mkdtemp(prefix="clarity-bench-")) / "root"
    prefill(root, args.memories, console)
    with (
        running_daemon(root) as url,
        httpx.Client(base_url=url, timeout=60, headers={"X-Clarity-Project": "bench-project"}) as http,
    ):
        rng = random.Random(99)
        http.post("/api/search", json={"query": "warm up"})
        store_times, search_times = [], []
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("timing store + retrieve", total=args.calls)
            for i in range(args.calls):
                text = synthetic(rng, args.memories + i) + f" [bench {i}]"
                t = time.perf_counter()
                response = http.post("/api/memories", json={"content": text})
                store_times.append(time.perf_counter() - t)
                response.raise_for_status()
                query = f"what does {rng.choice(SUBJECTS)} need for {rng.choice(TOOLS)} #{i}"
                t = time.perf_counter()
                response = http.post("/api/search", json={"query": query, "limit": 5})
                search_times.append(time.perf_counter() - t)
                response.raise_for_status()
                progress.advance(task)
        total = http.get("/api/stats").json()["total"]
    result = {
        "memories": total,
        "store_ms": percentiles(store_times),
        "retrieve_ms": percentiles(search_times),
        "machine": f"{os.cpu_count()} cores",
        "engine": "embedded",
    }
    table = Table(title=f"Clarity daemon, {total} memories, {args.calls} calls each (ms)")
    for column in ("operation", "p50", "p95", "p99"):
        table.add_column(column)
    for name in ("store", "retrieve"):
        stats = result[f"{name}_ms"]
        table.add_row(name, str(stats["p50"]), str(stats["p95"]), str(stats["p99"]))
    Console().print(table)
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "core.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
