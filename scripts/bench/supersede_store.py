"""What checking for superseded facts adds to a single store, at N stored memories.

    .venv/bin/python scripts/bench/supersede_store.py [--memories 10000] [--calls 200]

Fills an embedded store with N memories (``common.prefill``: half in the project, all kinds),
then, with every query vector computed beforehand (the embedding is the same either way):

- "merge check (before)": the dense search a store ran before, the nearest memory of its own
  kind, 1 hit;
- "merge + supersede check": what a store runs now, ``MemoryWriter._neighbours`` (the 3 nearest
  statements, superseded ones left out) and ``_replaced`` (their records read, ``eligible``,
  ``supersedes``);
- "store, new subject" and "store, new value": ``MemoryService.store`` end to end (embedding
  included), of a memory about a new subject and of one that supersedes the previous call's
  memory (then the older record's payload is patched too).

Prints p50/p95 in ms with the 1-minute load average; writes bench-results/supersede_store.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from common import ROOT, machine, percentiles, prefill
from rich.console import Console
from rich.table import Table

PROJECT = "bench-project"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    console = Console(stderr=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from clarity.config import Settings
    from clarity.embedding import create_embedding_provider
    from clarity.memory import MemoryService
    from clarity.memory.records import new_memory
    from clarity.models import MemoryCreate, MemoryType, utcnow
    from clarity.store import open_store
    from clarity.store.base import MemoryFilter

    root = Path(tempfile.mkdtemp(prefix="clarity-bench-supersede-")) / "root"
    prefill(root, args.memories, console, project=PROJECT)
    settings = Settings(storage={"root": str(root)})
    embedder = create_embedding_provider(settings.embedding)
    embedder.wait_ready(timeout=300)
    service = MemoryService(settings, open_store(settings), embedder)
    writer = service._writer

    services = ("api", "worker", "billing", "search", "gateway", "cache", "auth", "ledger")
    texts = [f"The {services[i % 8]}-{i} service listens on port {20000 + i}" for i in range(args.calls)]
    vectors = embedder.embed_documents(texts)
    drafts = [new_memory(MemoryCreate(content=t, scope=PROJECT), PROJECT, t, utcnow()) for t in texts]
    before, now = [], []
    for draft, dense in zip(drafts, vectors, strict=True):
        flt = MemoryFilter(scopes=[PROJECT], memory_types=[MemoryType.fact.value])
        t = time.perf_counter()
        service.db.search(dense, None, flt, 1, mode="dense")
        before.append(time.perf_counter() - t)
        t = time.perf_counter()
        writer._replaced(draft, writer._neighbours(draft, dense))
        now.append(time.perf_counter() - t)

    fresh, superseding = [], []
    replaced = 0
    for i, text in enumerate(texts):
        t = time.perf_counter()
        service.store(MemoryCreate(content=text, scope=PROJECT))
        fresh.append(time.perf_counter() - t)
        t = time.perf_counter()
        result = service.store(
            MemoryCreate(content=text.replace(str(20000 + i), str(30000 + i)), scope=PROJECT)
        )
        superseding.append(time.perf_counter() - t)
        replaced += len(result.superseded)
    service.close()

    load = round(os.getloadavg()[0], 2)
    result = {
        "memories": args.memories,
        "calls": args.calls,
        "load_1min": load,
        "machine": machine(),
        "merge_check_before_ms": percentiles(before),
        "merge_and_supersede_check_ms": percentiles(now),
        "store_new_subject_ms": percentiles(fresh),
        "store_new_value_ms": percentiles(superseding),
        "superseded": replaced,
    }
    table = Table(title=f"{args.memories} memories, {args.calls} calls, load {load} (ms)")
    for column in ("step", "p50", "p95"):
        table.add_column(column)
    for name, key in (
        ("merge check (before)", "merge_check_before_ms"),
        ("merge + supersede check", "merge_and_supersede_check_ms"),
        ("store, new subject", "store_new_subject_ms"),
        (f"store, new value ({replaced} superseded)", "store_new_value_ms"),
    ):
        table.add_row(name, str(result[key]["p50"]), str(result[key]["p95"]))
    Console().print(table)
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "supersede_store.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
