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
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SUBJECTS = ["the API gateway", "the billing service", "the search indexer", "the auth module", "the CLI",
            "the web frontend", "the data pipeline", "the mobile app", "the scheduler", "the cache layer"]
FACTS = ["is deployed with {tool}", "needs {tool} version {n}.{m}", "fails when {tool} is missing",
         "was migrated to {tool} in sprint {n}", "uses port {n}{m}00", "is tested with `{tool} -k {word}`",
         "logs error E{n}{m}{n} on timeouts", "reads its config from {word}.toml"]
TOOLS = ["pytest", "docker", "helm", "terraform", "poetry", "uv", "npm", "make", "bazel", "cargo", "ruff"]
WORDS = ["alpha", "gateway", "ledger", "orion", "nimbus", "quartz", "falcon", "ember", "delta", "harbor"]


def synthetic(rng: random.Random, i: int) -> str:
    fact = rng.choice(FACTS).format(tool=rng.choice(TOOLS), n=rng.randint(1, 9), m=rng.randint(0, 9),
                                    word=rng.choice(WORDS))
    return f"{rng.choice(SUBJECTS).capitalize()} {fact} (note {i})"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prefill(root: Path, count: int, console: Console) -> None:
    from clarity.config import Settings
    from clarity.embedding import LexicalEncoder, create_embedding_provider
    from clarity.models import Memory, content_hash, new_memory_id, utcnow
    from clarity.store import open_store
    from clarity.store.base import PointData

    settings = Settings(storage={"root": str(root)})
    store = open_store(settings)
    embedder = create_embedding_provider(settings.embedding)
    lexical = LexicalEncoder()
    rng = random.Random(7)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"prefilling {count} memories", total=count)
        for start in range(0, count, 256):
            texts = [synthetic(rng, i) for i in range(start, min(count, start + 256))]
            vectors = embedder.embed_documents(texts)
            points = []
            for text, vector in zip(texts, vectors, strict=True):
                now = utcnow()
                memory = Memory(id=new_memory_id(), content=text, memory_type="fact", scope="bench-project",
                                created_at=now, updated_at=now, content_hash=content_hash(text))
                points.append(PointData(memory.id, vector, lexical.document(text), memory.to_payload()))
            store.upsert(points)
            progress.advance(task, len(texts))
    if hasattr(store, "wait_for_index"):
        store.wait_for_index(600)
    store.close()


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"p50": round(statistics.median(ordered) * 1000, 2), "p95": round(pick(0.95), 2),
            "p99": round(pick(0.99), 2), "n": len(ordered)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    console = Console(stderr=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    root = Path(tempfile.mkdtemp(prefix="clarity-bench-")) / "root"
    prefill(root, args.memories, console)
    port = free_port()
    env = {**os.environ, "CLARITY_STORAGE__ROOT": str(root), "CLARITY_SERVER__PORT": str(port),
           "MEMORY_CONFIG_PATH": str(root / "none.json")}
    daemon = subprocess.Popen([sys.executable, "-m", "clarity", "serve"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=60, headers={"X-Clarity-Project": "bench-project"}) as http:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if http.get("/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("daemon did not become ready")
                time.sleep(0.2)
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
    finally:
        daemon.terminate()
        daemon.wait(30)
    result = {"memories": total, "store_ms": percentiles(store_times), "retrieve_ms": percentiles(search_times),
              "machine": f"{os.cpu_count()} cores", "engine": "embedded"}
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
