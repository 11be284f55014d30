"""Bulk import throughput next to the raw model's encode throughput; daemon time to /healthz and /readyz.

    .venv/bin/python scripts/bench/ingest.py [--quick] [--memories 10000] [--starts 10] [--out DIR]

Throughput (one process, the embedded engine in a temporary root, the daemon's embedding
settings: batch size 32, one thread): the texts (LoCoMo dev turns, then synthetic developer
notes, all new to the store) go in chunks of 128, the batch size `clarity import` sends. For
every chunk, the serving runtime's raw encoder (the ONNX export on ONNX Runtime), the reference
(SentenceTransformer.encode of the same texts, same batch size, normalised, on torch) and
MemoryService.store_many are timed back to back, so all three see the same machine load; store_many
over the raw ONNX encode is the import efficiency. A few hundred single MemoryService.store calls
show what importing one by one would cost.

Start-up: `clarity serve` on a fresh root and on a root with the imported memories, with
`embedding.runtime` onnx (the default) and torch, the four cases interleaved start by start,
polling /healthz and /readyz every 10 ms from the moment the process is spawned.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import httpx
from common import base_texts, daemon_env, free_port, machine, parser, progress, write_results
from rich.console import Console
from rich.table import Table

RUNTIMES = ("onnx", "torch")


def resident_mb(pid: int) -> float:
    """The daemon's resident memory (VmRSS) in MB, read once it is ready."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def startup(root: Path, runtime: str) -> dict[str, float]:
    """Seconds from spawning `clarity serve` until /healthz, then /readyz, answer 200."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "clarity", "serve"],
        env=daemon_env(root, port, {"CLARITY_EMBEDDING__RUNTIME": runtime}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    out: dict[str, float] = {}
    try:
        with httpx.Client(timeout=2) as client:
            deadline = started + 300
            while "readyz" not in out and time.perf_counter() < deadline:
                for name in ("healthz", "readyz"):
                    if name in out:
                        continue
                    try:
                        if client.get(f"{url}/{name}").status_code == 200:
                            out[name] = round(time.perf_counter() - started, 3)
                            if name == "readyz":
                                out["rss_mb"] = resident_mb(daemon.pid)
                    except httpx.HTTPError:
                        pass
                if daemon.poll() is not None:
                    raise SystemExit("daemon exited during start-up")
                time.sleep(0.01)
    finally:
        daemon.terminate()
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
    return out


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--memories", type=int, default=None, help="memories to import (default 10000, quick 384)")
    p.add_argument(
        "--chunk", type=int, default=128, help="memories per store_many call (clarity import: 128)"
    )
    p.add_argument("--starts", type=int, default=None, help="daemon starts per case (default 10, quick 1)")
    args = p.parse_args()
    count = args.memories or (384 if args.quick else 10_000)
    starts = args.starts or (1 if args.quick else 10)
    console = Console(stderr=True)
    info = machine()
    console.print(f"machine: {info}")

    from clarity.config import Settings
    from clarity.embedding import create_embedding_provider
    from clarity.memory import MemoryService
    from clarity.models import MemoryCreate, Source
    from clarity.store import open_store

    work = Path(tempfile.mkdtemp(prefix="clarity-bench-ingest-"))
    settings = Settings(storage={"root": str(work / "root")})
    provider = create_embedding_provider(settings.embedding)
    provider.wait_ready(300)
    encoder = cast(Any, provider)._encoder  # the ONNX Runtime encoder the service uses
    reference = create_embedding_provider(settings.embedding.model_copy(update={"runtime": "torch"}))
    reference.wait_ready(300)
    model = cast(Any, reference)._model  # the SentenceTransformer on torch
    service = MemoryService(settings, open_store(settings), provider)
    texts = base_texts(count + 400)
    single, texts = texts[count:], texts[:count]
    batch = settings.embedding.batch_size
    model.encode(texts[:64], batch_size=batch, normalize_embeddings=True, show_progress_bar=False)  # warm-up
    encoder.encode(texts[:64], batch)
    raw_seconds = torch_seconds = bulk_seconds = 0.0
    statuses: dict[str, int] = {}
    with progress(console) as bar:
        task = bar.add_task(f"raw encode vs store_many, chunks of {args.chunk}", total=count)
        for start in range(0, count, args.chunk):
            chunk = texts[start : start + args.chunk]
            t = time.perf_counter()
            encoder.encode(chunk, batch)
            raw_seconds += time.perf_counter() - t
            t = time.perf_counter()
            model.encode(chunk, batch_size=batch, normalize_embeddings=True, show_progress_bar=False)
            torch_seconds += time.perf_counter() - t
            requests = [
                MemoryCreate(content=text, source=Source.import_, scope="bench-import") for text in chunk
            ]
            t = time.perf_counter()
            results = service.store_many(requests)
            bulk_seconds += time.perf_counter() - t
            for result in results:
                statuses[result.status] = statuses.get(result.status, 0) + 1
            bar.advance(task, len(chunk))
        n_single = min(len(single), 50 if args.quick else 400)
        task = bar.add_task("MemoryService.store one by one", total=n_single)
        t = time.perf_counter()
        for text in single[:n_single]:
            service.store(MemoryCreate(content=text, source=Source.import_, scope="bench-import"))
            bar.advance(task)
        single_seconds = time.perf_counter() - t
    stored = service.db.count()
    service.close()

    roots = {f"{stored:,} memories": work / "root"}
    if not args.quick:
        roots = {"empty root": work / "empty", **roots}
    boot: dict[str, list[dict[str, float]]] = {
        f"{label}, {runtime}": [] for label in roots for runtime in RUNTIMES
    }
    with progress(console) as bar:
        task = bar.add_task("daemon start-up", total=starts * len(boot))
        for _ in range(starts):  # interleaved: every case sees the same drift in machine load
            for label, root in roots.items():
                for runtime in RUNTIMES:
                    boot[f"{label}, {runtime}"].append(startup(root, runtime))
                    bar.advance(task)
    shutil.rmtree(work, ignore_errors=True)

    raw_rate = count / raw_seconds
    torch_rate = count / torch_seconds
    bulk_rate = count / bulk_seconds
    report: dict[str, Any] = {
        "machine": info,
        "memories": count,
        "chunk": args.chunk,
        "embedding_batch_size": batch,
        "encoder_threads": settings.embedding.threads,
        "raw_encode_per_s": round(raw_rate, 1),
        "torch_encode_per_s": round(torch_rate, 1),
        "store_many_per_s": round(bulk_rate, 1),
        "efficiency": round(bulk_rate / raw_rate, 3),
        "store_one_by_one_per_s": round(n_single / single_seconds, 1),
        "statuses": statuses,
        "stored": stored,
        "startup_seconds": {
            label: {
                "healthz": [r.get("healthz") for r in runs],
                "readyz": [r.get("readyz") for r in runs],
                "rss_mb": [r.get("rss_mb") for r in runs],
            }
            for label, runs in boot.items()
        },
    }
    quiet = "quiet" if info["quiet"] else "NOISY (load >= 1.5)"
    table = Table(title=f"Ingest, {count:,} memories, machine {quiet}")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row(
        f"raw ONNX Runtime encode (batch {batch}, {settings.embedding.threads} thread)", f"{raw_rate:.1f} /s"
    )
    table.add_row("raw sentence-transformers encode on torch (same)", f"{torch_rate:.1f} /s")
    table.add_row(f"MemoryService.store_many (chunks of {args.chunk})", f"{bulk_rate:.1f} /s")
    table.add_row("store_many / raw encode", f"{100 * bulk_rate / raw_rate:.1f} % (target >= 90 %)")
    table.add_row("MemoryService.store one by one", f"{n_single / single_seconds:.1f} /s")
    for label, runs in boot.items():
        for name in ("healthz", "readyz"):
            times = sorted(r.get(name, float("nan")) for r in runs)
            table.add_row(
                f"start -> /{name} ({label}), p50 / max of {len(runs)}",
                f"{times[len(times) // 2]:.2f} / {times[-1]:.2f} s",
            )
        rss = sorted(r.get("rss_mb", float("nan")) for r in runs)
        table.add_row(f"daemon RSS once ready ({label}), p50", f"{rss[len(rss) // 2]:.0f} MB")
    Console().print(table)
    write_results(args.out, "ingest", report, lambda fig: plot(fig, report))


def plot(fig: Any, result: dict[str, Any]) -> None:
    ax1, ax2 = fig.subplots(1, 2)
    names = ["raw torch", "raw ONNX", "store_many", "one by one"]
    values = [
        result["torch_encode_per_s"],
        result["raw_encode_per_s"],
        result["store_many_per_s"],
        result["store_one_by_one_per_s"],
    ]
    ax1.bar(names, values, color=["silver", "grey", "tab:blue", "tab:orange"])
    ax1.axhline(0.9 * result["raw_encode_per_s"], color="red", linestyle="--", label="target 90% of raw")
    ax1.set_ylabel("memories / s")
    ax1.set_title(f"import throughput ({result['memories']:,} memories)")
    ax1.legend(fontsize=8)
    labels, healthz, readyz = [], [], []
    for label, runs in result["startup_seconds"].items():
        labels.append(label)
        healthz.append(sorted(runs["healthz"])[len(runs["healthz"]) // 2] or 0)
        readyz.append(sorted(runs["readyz"])[len(runs["readyz"]) // 2] or 0)
    x = range(len(labels))
    ax2.bar([i - 0.2 for i in x], healthz, 0.4, label="/healthz")
    ax2.bar([i + 0.2 for i in x], readyz, 0.4, label="/readyz")
    ax2.set_xticks(list(x), labels, rotation=20, fontsize=7)
    ax2.set_ylabel("seconds after spawn")
    ax2.set_title("clarity serve start-up")
    ax2.legend(fontsize=8)


if __name__ == "__main__":
    main()
