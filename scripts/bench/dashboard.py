"""Dashboard render time through a real daemon with N stored memories (default 100,000).

    .venv/bin/python scripts/bench/dashboard.py [--memories 100000] [--requests 50]

Prefill: embedding 100,000 texts with the real model takes many minutes on a shared 2-core
machine, so the model embeds a pool of distinct base texts (--pool, default 2,000) and each
memory is one of them with its own suffix "(note i)" and that base's vector plus a little noise
(renormalized). Vectors stay close to what the model gives for the text, payloads are complete
Memory records (11 scopes, every type and source, importance spread 0..1, creation times spread
over a year, tags), and everything is written through the engine in batches as
scripts/bench/common.py does. Then `clarity serve` starts on that root (the real model, Qdrant
Edge with its index built) and a keep-alive client times full page loads:

- memories page: GET / (all scopes, newest first, 25 rows, scope list, total count)
- filtered page: one project, one type, sorted by importance
- deep page: offset 1,000
- search: GET /?q=... with 50 distinct queries (query embedding + hybrid search + render)
- live refresh: the fragment htmx polls every 5 s
- overview (counts by project and type, store size): reported, not part of the target

Prints p50/p95/p99 (client wall time and the daemon's own Server-Timing) and writes
bench-results/dashboard.json. Target: the memories page and a search under 300 ms.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import tempfile
import time
from pathlib import Path

import httpx
from common import ROOT, SUBJECTS, TOOLS, WORDS, percentiles, running_daemon, synthetic
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

TARGET_MS = 300.0
SCOPES = [f"bench-project-{i}" for i in range(10)] + ["global"]


def prefill(root: Path, count: int, pool: int, console: Console) -> dict[str, float]:
    from clarity.config import Settings
    from clarity.embedding import LexicalEncoder, create_embedding_provider
    from clarity.models import Memory, MemoryType, Source, content_hash, new_memory_id
    from clarity.store import open_store
    from clarity.store.base import PointData

    settings = Settings(storage={"root": str(root)})
    store = open_store(settings)
    embedder = create_embedding_provider(settings.embedding)
    lexical = LexicalEncoder()
    rng = random.Random(7)
    types = list(MemoryType)
    sources = [Source.hook] * 6 + [Source.manual] * 3 + [Source.import_]
    now = time.time()
    timings: dict[str, float] = {}

    started = time.perf_counter()
    bases = [re.sub(r" \(note \d+\)$", "", synthetic(rng, i)) for i in range(pool)]
    base_vectors: list[list[float]] = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"embedding {pool} base texts with the real model", total=pool)
        for start in range(0, pool, 128):
            batch = bases[start : start + 128]
            base_vectors.extend(embedder.embed_documents(batch))
            progress.advance(task, len(batch))
    timings["embed_pool_s"] = round(time.perf_counter() - started, 1)

    started = time.perf_counter()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"writing {count:,} memories", total=count)
        for start in range(0, count, 1000):
            points = []
            for i in range(start, min(count, start + 1000)):
                which = rng.randrange(pool)
                text = f"{bases[which]} (note {i})"
                noisy = [x + rng.gauss(0.0, 0.01) for x in base_vectors[which]]
                norm = math.sqrt(sum(x * x for x in noisy)) or 1.0
                created = now - rng.random() * 365 * 86400
                memory = Memory(
                    id=new_memory_id(),
                    content=text,
                    memory_type=types[i % len(types)],
                    scope=SCOPES[i % len(SCOPES)],
                    tags=[f"cmd:{rng.choice(TOOLS)}", rng.choice(WORDS)],
                    importance=round(rng.random(), 2),
                    source=rng.choice(sources),
                    created_at=created,
                    updated_at=created,
                    last_accessed_at=created + rng.random() * (now - created) if rng.random() < 0.3 else None,
                    access_count=rng.randrange(0, 20),
                    metadata={"hook_event": "PostToolUse", "tool_name": "Bash"} if i % 3 == 0 else {},
                    content_hash=content_hash(text),
                )
                points.append(
                    PointData(
                        memory.id, [x / norm for x in noisy], lexical.document(text), memory.to_payload()
                    )
                )
            store.upsert(points)
            progress.advance(task, len(points))
    timings["write_s"] = round(time.perf_counter() - started, 1)

    started = time.perf_counter()
    with console.status("waiting for the HNSW index builds (a child process)"):
        if hasattr(store, "wait_for_index"):
            store.wait_for_index(1800)
    timings["index_wait_s"] = round(time.perf_counter() - started, 1)
    store.close()
    return timings


def time_pages(
    http: httpx.Client, name: str, paths: list[str], console: Console
) -> tuple[list[float], list[float]]:
    wall: list[float] = []
    server: list[float] = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(name, total=len(paths))
        for path in paths:
            started = time.perf_counter()
            response = http.get(path)
            wall.append(time.perf_counter() - started)
            response.raise_for_status()
            timing = re.search(r"dur=([\d.]+)", response.headers.get("server-timing", ""))
            if timing:
                server.append(float(timing.group(1)) / 1000)
            progress.advance(task)
    return wall, server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--pool", type=int, default=2_000, help="distinct texts embedded by the real model")
    parser.add_argument("--keep", action="store_true", help="keep the prefilled storage root")
    args = parser.parse_args()
    console = Console(stderr=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    root = Path(tempfile.mkdtemp(prefix="clarity-bench-dashboard-")) / "root"
    try:
        run(root, args, console)
    finally:
        if args.keep:
            console.print(f"storage root kept: {root}")
        else:
            shutil.rmtree(root.parent, ignore_errors=True)


def run(root: Path, args: argparse.Namespace, console: Console) -> None:
    prefill_timings = prefill(root, args.memories, args.pool, console)

    rng = random.Random(11)
    n = args.requests
    queries = [
        f"{rng.choice(['how is', 'what does', 'why does', 'when did'])} {rng.choice(SUBJECTS)} "
        f"{rng.choice(['use', 'need', 'fail with', 'deploy with'])} {rng.choice(TOOLS)} {rng.choice(WORDS)} {i}"
        for i in range(n)
    ]
    scenarios = {
        "memories page (GET /)": ["/"] * n,
        "filtered page (project, type, by importance)": [
            f"/?scope={SCOPES[i % 10]}&type=fix&sort=importance" for i in range(n)
        ],
        "deep page (offset 1,000)": ["/?offset=1000"] * n,
        "search (GET /?q=..., distinct queries)": ["/?" + str(httpx.QueryParams({"q": q})) for q in queries],
        "live refresh fragment": ["/fragments/memories"] * n,
        "overview": ["/overview"] * max(5, n // 5),
    }
    results: dict[str, dict[str, object]] = {}
    with running_daemon(root) as url, httpx.Client(base_url=url, timeout=120) as http:
        total = http.get("/api/stats").json()["total"]
        for path in ("/", "/?q=warm+up", "/overview", "/fragments/memories"):
            http.get(path).raise_for_status()  # first calls load caches; not what a user waits for
        for name, paths in scenarios.items():
            wall, server = time_pages(http, name, paths, console)
            results[name] = {
                "wall_ms": percentiles(wall),
                "server_ms": percentiles(server) if server else None,
            }

    table = Table(title=f"Dashboard render time at {total:,} memories ({n} requests each)")
    for column in ("page", "p50 ms", "p95 ms", "p99 ms", "server p50", "server p95", "target"):
        table.add_column(column, justify="left" if column == "page" else "right")
    for name, figures in results.items():
        wall_ms = figures["wall_ms"]
        server_ms = figures["server_ms"] or {}
        assert isinstance(wall_ms, dict) and isinstance(server_ms, dict)
        in_target = name.startswith(("memories page", "search"))
        verdict = ("ok" if wall_ms["p95"] < TARGET_MS else "OVER") if in_target else "-"
        table.add_row(
            name,
            f"{wall_ms['p50']:.1f}",
            f"{wall_ms['p95']:.1f}",
            f"{wall_ms['p99']:.1f}",
            f"{server_ms.get('p50', 0):.1f}",
            f"{server_ms.get('p95', 0):.1f}",
            verdict,
        )
    Console(width=130).print(table)

    out = ROOT / "bench-results" / "dashboard.json"
    out.parent.mkdir(exist_ok=True)
    record = {
        "memories": total,
        "requests": n,
        "target_ms": TARGET_MS,
        "prefill": {
            "method": f"{args.pool} base texts embedded by the real model; each memory = base + ' (note i)', "
            "vector = the base's vector + N(0, 0.01) noise, renormalized",
            **prefill_timings,
        },
        "results": results,
        "cpu_count": os.cpu_count(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out.write_text(json.dumps(record, indent=2) + "\n")
    console.print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
