"""Retrieve latency, recall@10 of approximate vs exact search, RSS and disk per memory, per engine and size.

    .venv/bin/python scripts/bench/retrieval.py [--quick] [--sizes 10000,100000,1000000] [--out DIR]

For each size N, the same N memories go into the embedded engine (EdgeStore, Qdrant Edge) and
into qdrant-client's local mode (the baseline: what the original project used, on a local path).

- Corpus: real all-MiniLM-L6-v2 embeddings of LoCoMo dev turns and synthetic developer notes up
  to --real-max (20k); above that, vectors are DERIVED (0.7*a + 0.3*b of two real embeddings plus
  N(0, 0.01) noise, renormalised; text = both texts) so that 100k and 1M are feasible here.
- EdgeStore layout: filled through EdgeStore.upsert; every seal is waited for (the store's own
  child-process HNSW build), ending with indexed segments of up to --segment-max (merging makes
  that what seals of --segment-size, default 5k, the daemon's storage.active_shard_max_points,
  end in) and --active-points (default half of --segment-size) left in
  the brute-force active shard: the average steady state of a store that grew to N.
- Latency "store" rows call store.search() with precomputed query vectors, as MemoryService does
  (limit 20 = max(3*5, 20), prefetch 50, score fusion). "service" rows call MemoryService.retrieve
  (limit 5, scope=default i.e. project + global): "cached emb" has the query vector in the LRU
  cache (so it excludes embedding), "with emb" uses a new query text each call (includes it).
- Filters: "scope" = project + global (about 20% of the memories), "scope+type" = project and
  memory_type fix/error (about 2.5%).
- recall@10: approximate dense search vs exact (exact=True, which reads only the float32
  originals, never the int8 copies) for the same query and filter. qdrant-client local mode is
  always exact (brute force in numpy), so its recall is 1.
- RSS per memory: measured in a child process that only opens the store and runs the queries;
  the seconds its opening took are the store's share of a daemon's start (``open_s``), and the
  p50 of those first store.search calls (limit 20, no filter) what a daemon's first prompts see.
  ``--cold`` (root) empties the kernel's page cache before, as after a reboot.
- Breakdown (EdgeStore): per shard, median ms of dense (HNSW or brute force), lexical, and the
  batched query the store sends, with and without payload; plus an hnsw_ef sweep.
"""

from __future__ import annotations

import gc
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    ACTIVE_MAX,
    DIMENSION,
    HNSW_EF,
    LOCOMO_DIR,
    QUANTIZATION,
    SEGMENT_MAX,
    SUBJECTS,
    TOOLS,
    Corpus,
    corpus,
    disk_bytes,
    embed_cached,
    fill_edge,
    machine,
    open_edge,
    parser,
    percentiles,
    points,
    progress,
    rss_mb,
    settle_layout,
    write_results,
)
from rich.console import Console
from rich.table import Table

PROJECT = "bench-project"
PROJECT_SHARE = 0.1


def query_texts(count: int) -> list[str]:
    """LoCoMo dev questions (categories 1-4) and developer questions, interleaved."""
    questions = []
    for path in sorted(LOCOMO_DIR.glob("*.json")):
        for qa in json.loads(path.read_text())["qa"]:
            if qa.get("category") in (1, 2, 3, 4):
                questions.append(str(qa["question"]))
    rng = random.Random(3)
    rng.shuffle(questions)
    dev = [
        f"how does {rng.choice(SUBJECTS)} use {rng.choice(TOOLS)}? what failed last time"
        for _ in range(count)
    ]
    out: list[str] = []
    for a, b in zip(questions + [""] * count, dev, strict=False):
        out.extend(x for x in (a, b) if x)
    return out[:count]


def open_local(path: Path) -> Any:
    """ServerStore over qdrant-client's local mode persisted at `path` (the original project's setup)."""
    from qdrant_client import QdrantClient

    from clarity.config import QdrantSettings
    from clarity.store.server import ServerStore

    store = ServerStore.__new__(ServerStore)
    store.dimension = DIMENSION
    store.collection = "clarity_memories"
    store._settings = QdrantSettings()
    store._in_process = True
    store.client = QdrantClient(path=str(path))
    store.location = f"qdrant-client local ({path})"
    store._ensure_collection()
    return store


def fill_local(path: Path, data: Corpus, console: Console) -> dict[str, Any]:
    from clarity.embedding import LexicalEncoder

    lexical = LexicalEncoder()
    store = open_local(path)
    started = time.perf_counter()
    with progress(console) as bar:
        task = bar.add_task(f"filling qdrant-client local ({len(data)} memories)", total=len(data))
        for start in range(0, len(data), 1000):
            stop = min(len(data), start + 1000)
            store.upsert(points(data, start, stop, lexical, PROJECT, PROJECT_SHARE))
            bar.advance(task, stop - start)
    store.close()
    return {"fill_seconds": round(time.perf_counter() - started, 1)}


def timed(fn: Callable[[int], Any], count: int, budget: float) -> list[float]:
    """Call fn(i) for i < count; stop early after `budget` seconds once 20 samples exist."""
    samples = []
    deadline = time.perf_counter() + budget
    for i in range(count):
        t = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - t)
        if len(samples) >= 20 and time.perf_counter() > deadline:
            break
    return samples


def filters() -> dict[str, Any]:
    from clarity.store.base import MemoryFilter

    return {
        "none": MemoryFilter(),
        "scope": MemoryFilter(scopes=[PROJECT, "global"]),
        "scope+type": MemoryFilter(scopes=[PROJECT], memory_types=["fix", "error"]),
    }


def measure_store(
    store: Any,
    qvecs: np.ndarray,
    sparse: list[Any],
    console: Console,
    label: str,
    budget: float,
    warm: tuple[np.ndarray, list[Any]],
) -> dict[str, Any]:
    """Latency per mode and filter, and recall. The daemon serves from memory maps it has long
    touched, while a fresh process pays page faults on its first pass (+50 % at 100k), so one
    pass of *other* queries (``warm``, within the budget) comes first: warm, but no repeats."""
    dense = [v.tolist() for v in qvecs]
    n = len(dense)
    out: dict[str, Any] = {"latency_ms": {}, "recall@10": {}}
    cells = [(mode, name) for mode in ("hybrid", "dense", "lexical") for name in filters()]
    warm_dense, warm_sparse = [v.tolist() for v in warm[0]], warm[1]
    with progress(console) as bar:
        task = bar.add_task(f"{label}: warm-up with other queries", total=None)
        for flt in filters().values():
            timed(
                lambda i, f=flt: store.search(warm_dense[i], warm_sparse[i], f, 20),
                len(warm_dense),
                budget / 3,
            )
        bar.update(task, total=1, completed=1)
        task = bar.add_task(f"{label}: store.search latency", total=len(cells))
        for mode, name in cells:
            flt = filters()[name]
            for i in range(min(5, n)):  # warm-up
                store.search(dense[i], sparse[i], flt, 20, mode=mode)

            def call(i: int, m: str = mode, f: Any = flt) -> Any:
                return store.search(dense[i], sparse[i], f, 20, mode=m)

            samples = timed(call, n, budget)
            out["latency_ms"][f"{mode}/{name}"] = percentiles(samples)
            bar.advance(task)
        task = bar.add_task(f"{label}: recall@10 approx vs exact", total=len(filters()))
        for name, flt in filters().items():
            scores = []
            deadline = time.perf_counter() + budget * 2
            for i in range(n):
                approx = {h.id for h in store.search(dense[i], None, flt, 10, mode="dense")}
                exact = [h.id for h in store.search(dense[i], None, flt, 10, mode="dense", exact=True)]
                if exact:
                    scores.append(len(approx & set(exact)) / len(exact))
                if len(scores) >= 20 and time.perf_counter() > deadline:
                    break
            out["recall@10"][name] = round(float(np.mean(scores)), 4) if scores else None
            bar.advance(task)
    return out


def measure_service(
    store: Any, texts: list[str], console: Console, label: str, budget: float
) -> dict[str, Any]:
    from clarity.config import Settings
    from clarity.memory import MemoryService
    from clarity.requests import RetrieveRequest

    service = MemoryService(
        Settings(storage={"root": tempfile.mkdtemp(prefix="clarity-bench-svc-")}), store, EMB[0]
    )
    out = {}
    with progress(console) as bar:
        task = bar.add_task(f"{label}: MemoryService.retrieve", total=2)
        for text in texts:
            EMB[0].embed_query(text)  # the cache now holds every query vector
        for text in texts[:5]:
            service.retrieve(RetrieveRequest(query=text), project=PROJECT)
        out["cached emb"] = percentiles(
            timed(
                lambda i: service.retrieve(RetrieveRequest(query=texts[i]), project=PROJECT),
                len(texts),
                budget,
            )
        )
        bar.advance(task)
        out["with emb"] = percentiles(
            timed(
                # The label too: the query cache outlives this store, and another size asked the same.
                lambda i: service.retrieve(
                    RetrieveRequest(query=f"{texts[i]} ({label}, {i})"), project=PROJECT
                ),
                len(texts),
                budget,
            )
        )
        bar.advance(task)
    service.usage.close()  # the store stays open; the caller closes it
    return out


def breakdown(store: Any, qvecs: np.ndarray, sparse: list[Any], console: Console) -> dict[str, Any]:
    """Where an EdgeStore hybrid search spends its time, shard by shard."""
    from qdrant_edge import Query, QueryBatchRequest, QueryRequest, SparseVector

    dense = [v.tolist() for v in qvecs]
    n = min(len(dense), 100)
    view = store.layout.view
    rows = []
    with progress(console) as bar:
        task = bar.add_task("per-shard breakdown", total=len(view.shards))
        for shard in view.shards:
            kind = "active" if shard is store.active else "sealing" if shard is store.sealing else "segment"
            count = shard.handle.info().points_count
            params = store._search_params(50, exact=False)  # as store.search asks, quantization included

            def dense_q(i: int, payload: bool, exact: bool = False, s: Any = shard) -> Any:
                p = store._search_params(50, exact=exact)
                return s.handle.query(
                    QueryRequest(
                        limit=50, query=Query.Nearest(dense[i], using="dense"), with_payload=payload, params=p
                    )
                )

            def lex_q(i: int, payload: bool, s: Any = shard) -> Any:
                return s.handle.query(
                    QueryRequest(
                        limit=50,
                        query=Query.Nearest(SparseVector(*sparse[i]), using="lex"),
                        with_payload=payload,
                    )
                )

            def batch_q(i: int, s: Any = shard, params: Any = params) -> Any:
                return s.handle.query_batch(
                    QueryBatchRequest(
                        [
                            QueryRequest(
                                limit=50,
                                query=Query.Nearest(dense[i], using="dense"),
                                with_payload=False,
                                params=params,
                            ),
                            QueryRequest(
                                limit=50,
                                query=Query.Nearest(SparseVector(*sparse[i]), using="lex"),
                                with_payload=False,
                            ),
                        ]
                    )
                )

            row = {
                "shard": shard.name,
                "kind": kind,
                "points": count,
                "dense_ms": percentiles(timed(lambda i: dense_q(i, True), n, 5))["p50"],
                "dense_no_payload_ms": percentiles(timed(lambda i: dense_q(i, False), n, 5))["p50"],
                "dense_exact_ms": percentiles(timed(lambda i: dense_q(i, False, True), n, 5))["p50"],
                "lexical_ms": percentiles(timed(lambda i: lex_q(i, True), n, 5))["p50"],
                "lexical_no_payload_ms": percentiles(timed(lambda i: lex_q(i, False), n, 5))["p50"],
                "batch_ms": percentiles(timed(batch_q, n, 5))["p50"],
            }
            rows.append(row)
            bar.advance(task)
    return {"shards": rows, "sum_batch_ms": round(sum(r["batch_ms"] for r in rows), 3)}


def ef_sweep(store: Any, qvecs: np.ndarray, efs: Sequence[int], console: Console) -> list[dict[str, Any]]:
    from clarity.store.base import MemoryFilter

    dense = [v.tolist() for v in qvecs]
    exact = [
        {h.id for h in store.search(v, None, MemoryFilter(), 10, mode="dense", exact=True)} for v in dense
    ]
    rows = []
    original = store._hnsw_ef
    with progress(console) as bar:
        task = bar.add_task("hnsw_ef sweep", total=len(efs))
        for ef in efs:
            store._hnsw_ef = ef  # what EdgeStore(hnsw_ef=...) / retrieval.hnsw_ef sets
            found: list[set[str]] = []

            def run(i: int, found: list[set[str]] = found) -> None:
                found.append({h.id for h in store.search(dense[i], None, MemoryFilter(), 10, mode="dense")})

            samples = timed(run, len(dense), 10)
            recall = np.mean([len(f & e) / max(1, len(e)) for f, e in zip(found, exact, strict=False)])
            rows.append(
                {
                    "hnsw_ef": ef,
                    "dense_p50_ms": percentiles(samples)["p50"],
                    "recall@10": round(float(recall), 4),
                }
            )
            bar.advance(task)
    store._hnsw_ef = original
    return rows


def drop_page_cache() -> bool:
    """Empty the kernel's page cache (root only), so that the next open starts as after a reboot."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
    except OSError:
        return False
    return True


def rss_child(engine: str, directory: Path, qfile: Path, cold: bool = False) -> dict[str, Any]:
    """RSS of a fresh process that opens the store and runs the queries (the serving footprint),
    how long its opening took, and the p50 of those first searches (``--cold``: with the page
    cache emptied first, as after a reboot)."""
    dropped = drop_page_cache() if cold else False
    done = subprocess.run(
        [sys.executable, __file__, "--_rss", engine, str(directory), str(qfile)],
        capture_output=True,
        text=True,
        check=True,
    )
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "page_cache_dropped": dropped}


def _rss_main(engine: str, directory: str, qfile: str) -> None:
    from clarity.embedding import LexicalEncoder
    from clarity.store.base import MemoryFilter

    queries = np.load(qfile)
    lexical = LexicalEncoder()
    import qdrant_client  # noqa: F401  both engines' libraries loaded before the baseline reading
    import qdrant_edge  # noqa: F401

    gc.collect()
    before = rss_mb()
    # Caps that no shard can reach: this process only reads, it must never start a seal or a merge.
    path = Path(directory)
    started = time.perf_counter()
    store = open_edge(path, 10**12, segment_max=1) if engine == "edge" else open_local(path)
    open_seconds = time.perf_counter() - started
    opened = rss_mb()
    sparse = lexical.query("what failed last time")  # encoded once: the timings are the store's
    first: list[float] = []
    for v in queries:
        dense = v.tolist()
        searched = time.perf_counter()
        store.search(dense, sparse, MemoryFilter(), 20)
        first.append((time.perf_counter() - searched) * 1000)
    served = rss_mb()
    store.close()
    print(
        json.dumps(
            {
                "before_mb": before,
                "opened_mb": opened,
                "served_mb": served,
                "open_s": round(open_seconds, 2),
                "first_searches_p50_ms": round(float(np.median(first)), 3),
            }
        )
    )


EMB: list[Any] = []


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--_rss":
        _rss_main(*sys.argv[2:])
        return
    p = parser(__doc__)
    p.add_argument(
        "--sizes", default=None, help="comma-separated memory counts (default 10000,100000,1000000)"
    )
    p.add_argument("--queries", type=int, default=None, help="queries per cell (default 200, quick 20)")
    p.add_argument("--real-max", type=int, default=None, help="real embeddings before derived ones (20000)")
    p.add_argument(
        "--segment-size", type=int, default=None, help=f"EdgeStore active shard seal size ({ACTIVE_MAX})"
    )
    p.add_argument(
        "--segment-max", type=int, default=SEGMENT_MAX, help="EdgeStore merged segment cap (500000)"
    )
    p.add_argument("--active-points", type=int, default=None, help="points left in the active shard")
    p.add_argument("--engines", default="edge,local", help="edge, local or edge,local (both)")
    p.add_argument(
        "--baseline-max", type=int, default=200_000, help="skip the local baseline above this size"
    )
    p.add_argument("--hnsw-ef", type=int, default=HNSW_EF, help=f"search ef ({HNSW_EF}, retrieval.hnsw_ef)")
    p.add_argument("--m", type=int, default=16, help="HNSW m for the EdgeStore segments")
    p.add_argument("--ef-construct", type=int, default=200)
    p.add_argument(
        "--quantization",
        choices=("int8", "none"),
        default=QUANTIZATION,
        help=f"EdgeStore segments' vector quantization ({QUANTIZATION}, storage.quantization)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep the filled stores here and reuse them on the next run",
    )
    p.add_argument("--fill-only", action="store_true", help="fill the stores (with --workdir) and stop")
    p.add_argument(
        "--cold",
        action="store_true",
        help="empty the page cache (root) before the fresh-process open and searches",
    )
    p.add_argument("--budget", type=float, default=None, help="max seconds per latency cell (default 30)")
    args = p.parse_args()
    warnings.filterwarnings("ignore", message="Local mode performs exact")
    warnings.filterwarnings("ignore", message="Local mode is not recommended")
    quick = args.quick
    sizes = [int(s) for s in (args.sizes or ("2000" if quick else "10000,100000,1000000")).split(",")]
    n_queries = args.queries or (20 if quick else 200)
    real_max = args.real_max or (2000 if quick else 20_000)
    segment = args.segment_size or (1000 if quick else ACTIVE_MAX)
    budget = args.budget or (1.5 if quick else 30.0)
    engines = args.engines.split(",")
    if unknown := set(engines) - {"edge", "local"}:
        p.error(f"--engines: unknown {', '.join(sorted(unknown))}; use edge, local or edge,local")
    console = Console(stderr=True)
    info = machine()
    console.print(f"machine: {info}")

    from common import embedder

    from clarity.embedding import LexicalEncoder

    largest = corpus(max(sizes), console, real_max=real_max)
    EMB.append(embedder(threads=1))  # the daemon's setting: one torch thread
    # The second half only warms the stores up (see measure_store); nothing measured repeats it.
    both = query_texts(2 * n_queries)
    texts = both[:n_queries]
    both_vecs = embed_cached(both, console, EMB[0])
    qvecs, warm_vecs = both_vecs[:n_queries], both_vecs[n_queries:]
    lexical = LexicalEncoder()
    sparse = [lexical.query(t) for t in texts]
    warm = (warm_vecs, [lexical.query(t) for t in both[n_queries:]])
    keep = args.workdir is not None
    work = args.workdir or Path(tempfile.mkdtemp(prefix="clarity-bench-retrieval-"))
    work.mkdir(parents=True, exist_ok=True)
    qfile = work / "queries.npy"
    np.save(qfile, qvecs[: min(50, len(qvecs))])
    results: dict[str, Any] = {
        "machine": info,
        "queries": n_queries,
        "corpus": {
            "real_max": real_max,
            "derived_note": "vectors above real_max are 0.7a+0.3b+noise of real ones",
        },
        "settings": {
            "hnsw_ef": args.hnsw_ef,
            "m": args.m,
            "ef_construct": args.ef_construct,
            "segment_size": segment,
            "segment_max": args.segment_max,
            "quantization": args.quantization,
        },
        "sizes": {},
    }
    for size in sizes:
        data = Corpus(largest.texts[:size], largest.vectors[:size], min(largest.real, size))
        row: dict[str, Any] = {"derived_vectors": size - data.real}
        if "edge" in engines:
            key = [
                size,
                segment,
                args.active_points,
                args.m,
                args.ef_construct,
                real_max,
                args.segment_max,
                args.quantization,
            ]
            directory = work / (
                f"edge-{size}-{segment}-{args.active_points}-{args.m}-{args.ef_construct}"
                f"-{args.segment_max}-{args.quantization}"
            )
            sidecar = directory.with_suffix(".json")
            if keep and sidecar.exists() and json.loads(sidecar.read_text())["key"] == key:
                fill = json.loads(sidecar.read_text())["fill"]
                fill["reused"] = True
                fill["layout"] = settle_layout(
                    directory,
                    segment,
                    args.segment_max,
                    m=args.m,
                    ef_construct=args.ef_construct,
                    quantization=args.quantization,
                )
            else:
                shutil.rmtree(directory, ignore_errors=True)
                fill = fill_edge(
                    directory,
                    data,
                    console,
                    PROJECT,
                    segment,
                    args.active_points,
                    PROJECT_SHARE,
                    m=args.m,
                    ef_construct=args.ef_construct,
                    segment_max=args.segment_max,
                    quantization=args.quantization,
                )
                sidecar.write_text(json.dumps({"key": key, "fill": fill}))
            if not args.fill_only:
                store = open_edge(
                    directory,
                    segment,
                    hnsw_ef=args.hnsw_ef,
                    m=args.m,
                    ef_construct=args.ef_construct,
                    segment_max=args.segment_max,
                    quantization=args.quantization,
                )
                edge = {**fill, **measure_store(store, qvecs, sparse, console, f"edge {size}", budget, warm)}
                edge["service_ms"] = measure_service(store, texts, console, f"edge {size}", budget)
                edge["breakdown"] = breakdown(store, qvecs, sparse, console)
                efs = (32, 128) if quick else (16, 32, 64, 128, 256)
                edge["ef_sweep"] = ef_sweep(store, qvecs[: min(100, n_queries)], efs, console)
                store.close()
                edge["disk_bytes_per_memory"] = round(disk_bytes(directory) / size, 1)
                rss = rss_child("edge", directory, qfile, cold=args.cold)
                edge["rss"] = rss
                edge["rss_bytes_per_memory"] = round(
                    (rss["served_mb"] - rss["before_mb"]) * 1048576 / size, 1
                )
                row["edge"] = edge
                if not keep:
                    shutil.rmtree(directory, ignore_errors=True)
        if "local" in engines and size <= args.baseline_max:
            directory = work / f"local-{size}-{real_max}"
            sidecar = directory.with_suffix(".json")
            if keep and sidecar.exists():
                fill = {**json.loads(sidecar.read_text()), "reused": True}
            else:
                shutil.rmtree(directory, ignore_errors=True)
                fill = fill_local(directory, data, console)
                sidecar.write_text(json.dumps(fill))
            if not args.fill_only:
                store = open_local(directory)
                local = {
                    **fill,
                    **measure_store(store, qvecs, sparse, console, f"local {size}", budget, warm),
                }
                local["service_ms"] = measure_service(store, texts, console, f"local {size}", budget)
                store.close()
                local["disk_bytes_per_memory"] = round(disk_bytes(directory) / size, 1)
                rss = rss_child("local", directory, qfile)
                local["rss"] = rss
                local["rss_bytes_per_memory"] = round(
                    (rss["served_mb"] - rss["before_mb"]) * 1048576 / size, 1
                )
                row["local"] = local
                if not keep:
                    shutil.rmtree(directory, ignore_errors=True)
        results["sizes"][str(size)] = row
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    if args.fill_only:
        return
    report(results)
    write_results(args.out, "retrieval", results, lambda fig: plot(fig, results))


ROWS = [
    ("store hybrid, no filter", "latency_ms", "hybrid/none"),
    ("store hybrid, scope", "latency_ms", "hybrid/scope"),
    ("store hybrid, scope+type", "latency_ms", "hybrid/scope+type"),
    ("store dense, no filter", "latency_ms", "dense/none"),
    ("store dense, scope", "latency_ms", "dense/scope"),
    ("store lexical, no filter", "latency_ms", "lexical/none"),
    ("service, cached emb", "service_ms", "cached emb"),
    ("service, with emb", "service_ms", "with emb"),
]


def report(results: dict[str, Any]) -> None:
    out = Console(width=160)
    quiet = "quiet" if results["machine"]["quiet"] else "NOISY (load >= 1.5)"
    table = Table(title=f"Retrieve latency p50 / p95 (ms), {results['queries']} queries, machine {quiet}")
    table.add_column("what")
    columns = []
    for size, row in results["sizes"].items():
        for engine in ("edge", "local"):
            if engine in row:
                columns.append((size, engine))
                name = "Qdrant Edge" if engine == "edge" else "qdrant-client local (baseline)"
                derived = f", {row['derived_vectors']} derived" if row["derived_vectors"] else ""
                table.add_column(f"{int(size):,} {name}{derived}", justify="right")
    for label, section, key in ROWS:
        cells = []
        for size, engine in columns:
            stats = results["sizes"][size][engine][section].get(key)
            cells.append(f"{stats['p50']:.2f} / {stats['p95']:.2f}" if stats else "")
        table.add_row(label, *cells)
    for name in filters():
        table.add_row(
            f"recall@10 approx/exact, {name}",
            *[str(results["sizes"][s][e]["recall@10"][name]) for s, e in columns],
        )
    table.add_row(
        "RSS bytes / memory", *[str(results["sizes"][s][e]["rss_bytes_per_memory"]) for s, e in columns]
    )
    table.add_row(
        "open s (a fresh process)",
        *[str(results["sizes"][s][e]["rss"].get("open_s", "-")) for s, e in columns],
    )
    table.add_row(
        "its first searches, p50 ms (cold: page cache dropped)",
        *[
            f"{r.get('first_searches_p50_ms', '-')}{' (cold)' if r.get('page_cache_dropped') else ''}"
            for r in (results["sizes"][s][e]["rss"] for s, e in columns)
        ],
    )
    table.add_row(
        "disk bytes / memory", *[str(results["sizes"][s][e]["disk_bytes_per_memory"]) for s, e in columns]
    )
    table.add_row(
        "layout",
        *[
            (
                f"active {results['sizes'][s][e]['layout']['active']}, "
                f"{len(results['sizes'][s][e]['layout']['segments'])} segments"
            )
            if e == "edge"
            else "1 collection, brute force"
            for s, e in columns
        ],
    )
    out.print(table)
    for size, row in results["sizes"].items():
        if "edge" not in row:
            continue
        bd = Table(
            title=f"EdgeStore at {int(size):,}: per-shard p50 ms (limit 50, hnsw_ef {results['settings']['hnsw_ef']})"
        )
        for column in (
            "shard",
            "kind",
            "points",
            "dense",
            "dense no payload",
            "dense exact",
            "lexical",
            "lexical no payload",
            "batch, ids only (what search sends)",
        ):
            bd.add_column(column, justify="right")
        for r in row["edge"]["breakdown"]["shards"]:
            bd.add_row(
                r["shard"],
                r["kind"],
                str(r["points"]),
                str(r["dense_ms"]),
                str(r["dense_no_payload_ms"]),
                str(r["dense_exact_ms"]),
                str(r["lexical_ms"]),
                str(r["lexical_no_payload_ms"]),
                str(r["batch_ms"]),
            )
        total = row["edge"]["latency_ms"]["hybrid/none"]["p50"]
        bd.caption = f"sum of per-shard batches {row['edge']['breakdown']['sum_batch_ms']} ms; whole store.search hybrid p50 {total} ms"
        out.print(bd)
        sweep = Table(title=f"hnsw_ef sweep at {int(size):,} (dense, no filter)")
        for column in ("hnsw_ef", "p50 ms", "recall@10"):
            sweep.add_column(column, justify="right")
        for r in row["edge"]["ef_sweep"]:
            sweep.add_row(str(r["hnsw_ef"]), str(r["dense_p50_ms"]), str(r["recall@10"]))
        out.print(sweep)


def plot(fig: Any, results: dict[str, Any]) -> None:
    sizes = list(results["sizes"])
    ax1, ax2 = fig.subplots(1, 2)
    for engine, style in (("edge", "-o"), ("local", "--s")):
        for key, label in (
            ("hybrid/none", "hybrid"),
            ("hybrid/scope", "hybrid+scope"),
            ("dense/none", "dense"),
        ):
            xs = [int(s) for s in sizes if engine in results["sizes"][s]]
            ys = [
                results["sizes"][s][engine]["latency_ms"][key]["p50"]
                for s in sizes
                if engine in results["sizes"][s]
            ]
            if xs:
                ax1.plot(xs, ys, style, label=f"{'Edge' if engine == 'edge' else 'local baseline'} {label}")
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("memories")
    ax1.set_ylabel("store.search p50 (ms)")
    ax1.axhline(3, color="grey", linestyle=":", label="target 3 ms @100k")
    ax1.legend(fontsize=7)
    ax1.set_title("retrieve latency (excl. query embedding)")
    for size in sizes:
        if "edge" in results["sizes"][size]:
            sweep = results["sizes"][size]["edge"]["ef_sweep"]
            ax2.plot(
                [r["dense_p50_ms"] for r in sweep],
                [r["recall@10"] for r in sweep],
                "-o",
                label=f"{int(size):,}",
            )
            for r in sweep:
                ax2.annotate(str(r["hnsw_ef"]), (r["dense_p50_ms"], r["recall@10"]), fontsize=7)
    ax2.axhline(0.95, color="grey", linestyle=":")
    ax2.set_xlabel("dense p50 (ms)")
    ax2.set_ylabel("recall@10 vs exact")
    ax2.set_title("Edge hnsw_ef sweep")
    ax2.legend(fontsize=7)


if __name__ == "__main__":
    main()
