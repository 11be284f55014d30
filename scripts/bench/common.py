"""Helpers shared by the benchmark scripts.

- arguments every script takes (``--quick``, ``--out``), the machine description, output files
  (JSON + PNG under bench-results/) and rich progress bars;
- a corpus of N memories with their vectors: real all-MiniLM-L6-v2 embeddings of real texts
  (LoCoMo dev turns and synthetic developer notes) up to ``real_max``, then *derived* vectors
  (a weighted mix of two real embeddings plus small noise, text = both texts joined), which is
  how the 1M runs stay feasible on this machine; every result says how many were derived;
- an embedded store (EdgeStore) filled through its normal write path into a stated layout
  (sealed, HNSW-indexed segments plus a brute-force active shard), and a daemon over it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def find_locomo() -> Path:
    """The LoCoMo dev split sits beside the repository (../shared/bench/locomo-dev); LOCOMO_DEV_DIR
    overrides it, and the workplace's copy serves a checkout cloned somewhere else."""
    candidates = [
        os.environ.get("LOCOMO_DEV_DIR"),
        ROOT.parent / "shared" / "bench" / "locomo-dev",
        "/work/shared/bench/locomo-dev",
    ]
    for candidate in candidates:
        if candidate and any(Path(candidate).glob("*.json")):
            return Path(candidate)
    return ROOT.parent / "shared" / "bench" / "locomo-dev"


LOCOMO_DIR = find_locomo()
CACHE_DIR = ROOT / "bench-results" / "cache"
DIMENSION = 384

SUBJECTS = [
    "the API gateway",
    "the billing service",
    "the search indexer",
    "the auth module",
    "the CLI",
    "the web frontend",
    "the data pipeline",
    "the mobile app",
    "the scheduler",
    "the cache layer",
]
FACTS = [
    "is deployed with {tool}",
    "needs {tool} version {n}.{m}",
    "fails when {tool} is missing",
    "was migrated to {tool} in sprint {n}",
    "uses port {n}{m}00",
    "is tested with `{tool} -k {word}`",
    "logs error E{n}{m}{n} on timeouts",
    "reads its config from {word}.toml",
]
TOOLS = ["pytest", "docker", "helm", "terraform", "poetry", "uv", "npm", "make", "bazel", "cargo", "ruff"]
WORDS = ["alpha", "gateway", "ledger", "orion", "nimbus", "quartz", "falcon", "ember", "delta", "harbor"]
MEMORY_TYPES = ["fact", "fact", "observation", "command", "error", "fix", "decision", "preference"]


def synthetic(rng: random.Random, i: int) -> str:
    fact = rng.choice(FACTS).format(
        tool=rng.choice(TOOLS), n=rng.randint(1, 9), m=rng.randint(0, 9), word=rng.choice(WORDS)
    )
    return f"{rng.choice(SUBJECTS).capitalize()} {fact} (note {i})"


# -- arguments, machine, output ---------------------------------------------------------------


def parser(doc: str | None) -> argparse.ArgumentParser:
    text = doc or ""
    p = argparse.ArgumentParser(
        description=text.splitlines()[0] if text else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(text.splitlines()[1:]),
    )
    p.add_argument("--quick", action="store_true", help="small run (under two minutes), as CI uses")
    p.add_argument("--out", type=Path, default=ROOT / "bench-results", help="where JSON and PNG go")
    return p


def machine() -> dict[str, Any]:
    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    load = os.getloadavg()[0]
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "ram_gb": ram_gb,
        "python": platform.python_version(),
        "load_at_start": round(load, 2),
        # Other processes were busy if the 1-minute load was high: timings are then noisy.
        "quiet": load < 1.5,
    }


def write_results(out: Path, name: str, result: dict[str, Any], plot: Callable[[Any], None] | None) -> None:
    """bench-results/<name>.json and, when a plot function is given, <name>.png."""
    out.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": name, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **result}
    (out / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))
    if plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(11, 5.5))
        plot(fig)
        fig.tight_layout()
        fig.savefig(out / f"{name}.png", dpi=110)
        plt.close(fig)
    Console(stderr=True).print(f"wrote {out / (name + '.json')} and {name}.png")


def progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    """Milliseconds from samples in seconds."""
    ordered = sorted(samples)
    if not ordered:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "mean": 0.0, "n": 0}

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {
        "p50": round(statistics.median(ordered) * 1000, 3),
        "p95": round(pick(0.95), 3),
        "p99": round(pick(0.99), 3),
        "mean": round(statistics.fmean(ordered) * 1000, 3),
        "n": len(ordered),
    }


def rss_mb() -> float:
    """Current resident set size of this process (not the peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def disk_bytes(path: Path) -> int:
    total = 0
    for entry in path.rglob("*"):
        try:
            if entry.is_file() and not entry.is_symlink():
                total += entry.stat().st_blocks * 512
        except OSError:
            pass
    return total


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- texts and vectors -------------------------------------------------------------------------


def locomo_turns() -> list[str]:
    texts = []
    for path in sorted(LOCOMO_DIR.glob("*.json")):
        conversation = json.loads(path.read_text())
        session = 1
        while f"session_{session}" in conversation:
            for turn in conversation[f"session_{session}"]:
                texts.append(f"{turn['speaker']}: {turn['text']}")
            session += 1
    return texts


def base_texts(count: int) -> list[str]:
    """``count`` distinct real-looking texts: LoCoMo dev turns first, then synthetic developer notes."""
    texts = locomo_turns()[:count]
    rng = random.Random(7)
    i = 0
    while len(texts) < count:
        texts.append(synthetic(rng, i))
        i += 1
    return texts


def embedder(threads: int = 1) -> Any:
    """The service's embedding provider (the bundled model, loaded now); one torch thread, as the
    daemon runs it: two threads stall badly whenever another process holds a core."""
    from clarity.config import EmbeddingSettings
    from clarity.embedding import create_embedding_provider

    provider = create_embedding_provider(EmbeddingSettings(threads=threads))
    provider.wait_ready(300)
    return provider


def embed_cached(texts: Sequence[str], console: Console, provider: Any = None) -> np.ndarray:
    """Real embeddings, cached on disk per chunk of 1,000 texts (bench-results/cache/), so reruns
    and larger sizes that share a prefix of the same texts skip the model."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    chunks: list[np.ndarray] = []
    with progress(console) as bar:
        task = bar.add_task(f"embedding {len(texts)} texts (cached per 1,000)", total=len(texts))
        for start in range(0, len(texts), 1000):
            batch = list(texts[start : start + 1000])
            digest = hashlib.sha1("\n".join(batch).encode()).hexdigest()[:20]
            path = CACHE_DIR / f"emb-{digest}.npy"
            if path.exists():
                chunks.append(np.load(path))
            else:
                provider = provider or embedder()
                vectors = np.asarray(provider.embed_documents(batch), dtype=np.float32)
                np.save(path, vectors)
                chunks.append(vectors)
            bar.advance(task, len(batch))
    return np.concatenate(chunks) if chunks else np.zeros((0, DIMENSION), np.float32)


@dataclass
class Corpus:
    texts: list[str]
    vectors: np.ndarray  # (n, 384) float32, unit length
    real: int  # the first `real` vectors are the model's embeddings of their texts; the rest are derived

    def __len__(self) -> int:
        return len(self.texts)


def corpus(count: int, console: Console, real_max: int = 20_000, seed: int = 11) -> Corpus:
    real = min(count, real_max)
    texts = base_texts(real)
    vectors = embed_cached(texts, console)
    if count == real:
        return Corpus(texts, vectors, real)
    rng = np.random.default_rng(seed)
    extra = count - real
    a = rng.integers(0, real, extra)
    b = rng.integers(0, real, extra)
    derived = np.empty((extra, vectors.shape[1]), dtype=np.float32)
    with progress(console) as bar:
        task = bar.add_task(f"deriving {extra} synthetic vectors", total=extra)
        for start in range(0, extra, 100_000):
            stop = min(extra, start + 100_000)
            mix = 0.7 * vectors[a[start:stop]] + 0.3 * vectors[b[start:stop]]
            mix += rng.normal(0.0, 0.01, mix.shape).astype(np.float32)
            mix /= np.linalg.norm(mix, axis=1, keepdims=True)
            derived[start:stop] = mix
            bar.advance(task, stop - start)
    all_texts = texts + [f"{texts[i]} | {texts[j]}" for i, j in zip(a.tolist(), b.tolist(), strict=True)]
    return Corpus(all_texts, np.concatenate([vectors, derived]), real)


def scope_of(i: int, project_share: float, project: str) -> str:
    """Deterministic scope mix: `project_share` in the main project, 10% global, the rest in 20 others."""
    r = (i * 2654435761 % 2**32) / 2**32
    if r < project_share:
        return project
    if r < project_share + 0.1:
        return "global"
    return f"other-project-{i % 20:02d}"


def points(
    data: Corpus, start: int, stop: int, lexical: Any, project: str, project_share: float = 0.5
) -> list[Any]:
    from clarity.models import Memory, content_hash, utcnow
    from clarity.store.base import PointData

    now = utcnow()
    template = Memory(
        id="00000000-0000-4000-8000-000000000000",
        content="x",
        created_at=now,
        updated_at=now,
        content_hash="x",
        scope="x",
        memory_type="fact",
    )
    base = template.to_payload()
    t0 = now.timestamp() - 90 * 86400
    out = []
    for i in range(start, stop):
        text = data.texts[i]
        created = t0 + i * (90 * 86400 / max(1, len(data)))
        payload = {
            **base,
            "content": text,
            "memory_type": MEMORY_TYPES[i % len(MEMORY_TYPES)],
            "scope": scope_of(i, project_share, project),
            "content_hash": content_hash(text),
            "created_at": created,
            "updated_at": created,
            "source": "import",
        }
        point_id = f"{i:08x}-0000-4000-8000-{i:012x}"
        out.append(PointData(point_id, data.vectors[i].tolist(), lexical.document(text), payload))
    return out


# -- the embedded store, filled into a stated layout --------------------------------------------


ACTIVE_MAX = 5_000  # storage.active_shard_max_points' default
SEGMENT_MAX = 500_000  # storage.segment_max_points' default
HNSW_EF = 64  # retrieval.hnsw_ef's default
QUANTIZATION = "int8"  # storage.quantization's default


def open_edge(
    directory: Path,
    active_max: int,
    hnsw_ef: int = HNSW_EF,
    m: int = 16,
    ef_construct: int = 200,
    segment_max: int = SEGMENT_MAX,
    quantization: str = QUANTIZATION,
) -> Any:
    from clarity.config import IndexParams
    from clarity.store.edge import EdgeStore

    return EdgeStore(
        directory,
        DIMENSION,
        IndexParams(m=m, ef_construct=ef_construct),
        active_max_points=active_max,
        hnsw_ef=hnsw_ef,
        segment_max_points=segment_max,
        quantization=cast(Any, quantization),
    )


def settle_layout(
    directory: Path, active_max: int, segment_max: int = SEGMENT_MAX, **index: Any
) -> dict[str, Any]:
    """Open the store as the daemon would and wait for the builds that opening starts (segments
    that fit together are merged at open, e.g. in a store filled before merging existed), so
    timings never overlap an index build. Returns the layout."""
    store = open_edge(directory, active_max, segment_max=segment_max, **index)
    try:
        if not store.wait_for_index(3600):
            raise RuntimeError("index build did not finish within an hour")
        if store.builder.error:
            raise RuntimeError(f"index build failed: {store.builder.error}")
        return dict(store.info()["shards"])
    finally:
        store.close()


def fill_edge(
    directory: Path,
    data: Corpus,
    console: Console,
    project: str = "bench-project",
    segment_size: int = ACTIVE_MAX,
    active_points: int | None = None,
    project_share: float = 0.5,
    m: int = 16,
    ef_construct: int = 200,
    segment_max: int = SEGMENT_MAX,
    quantization: str = QUANTIZATION,
) -> dict[str, Any]:
    """Write `data` through EdgeStore.upsert so that it ends as a steady-state layout: indexed
    segments of up to `segment_max`, and `active_points` (default: half of `segment_size`, the
    active shard's seal size) left in the brute-force active shard. The store would reach those
    segments by merging a build at every `segment_size` seal; each merge rebuilds the whole
    segment from its points, so sealing `segment_max` at a time ends in the same segments without
    the intermediate builds. Every build is waited for (the store's own child process, as in the
    daemon). Returns the layout and timings."""
    from clarity.embedding import LexicalEncoder

    n = len(data)
    if active_points is None:
        active_points = min(n, segment_size // 2)
    active_points = min(active_points, n)
    sealed = n - active_points
    chunk = max(segment_size, segment_max)
    full, rest = divmod(sealed, chunk)
    phases = [(full * chunk, chunk), (rest, rest), (active_points, 10**12)]
    lexical = LexicalEncoder()
    written = 0
    build_wait = 0.0
    started = time.perf_counter()
    with progress(console) as bar:
        task = bar.add_task(f"filling embedded store ({n} memories, waits for index builds)", total=n)
        for count, threshold in phases:
            if count <= 0:
                continue
            store = open_edge(
                directory,
                max(100, threshold),
                m=m,
                ef_construct=ef_construct,
                segment_max=segment_max,
                quantization=quantization,
            )
            try:
                stop_at = written + count
                while written < stop_at:
                    batch_end = min(stop_at, written + 1000)
                    store.upsert(points(data, written, batch_end, lexical, project, project_share))
                    bar.advance(task, batch_end - written)
                    written = batch_end
                    thread = store.builder.thread
                    if thread is not None and thread.is_alive():
                        t = time.perf_counter()
                        store.wait_for_index(3600)
                        build_wait += time.perf_counter() - t
                if store.builder.error:
                    raise RuntimeError(f"index build failed: {store.builder.error}")
            finally:
                store.close()
    layout = settle_layout(
        directory, segment_size, segment_max, m=m, ef_construct=ef_construct, quantization=quantization
    )
    return {
        "layout": layout,
        "segment_size": segment_size,
        "segment_max": segment_max,
        "quantization": quantization,
        "fill_seconds": round(time.perf_counter() - started, 1),
        "index_build_wait_seconds": round(build_wait, 1),
    }


def prefill(root: Path, count: int, console: Console, project: str = "bench-project") -> dict[str, Any]:
    """A daemon storage root holding `count` memories (half of them in `project`)."""
    from clarity.config import Settings

    settings = Settings(storage={"root": str(root)})
    data = corpus(count, console)
    info = fill_edge(
        settings.storage.qdrant_dir,
        data,
        console,
        project,
        settings.storage.active_shard_max_points,
        segment_max=settings.storage.segment_max_points,
        quantization=settings.storage.quantization,
    )
    info["derived_vectors"] = len(data) - data.real
    return info


# -- the daemon --------------------------------------------------------------------------------


def daemon_env(root: Path, port: int, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "CLARITY_STORAGE__ROOT": str(root),
        "CLARITY_SERVER__PORT": str(port),
        "MEMORY_CONFIG_PATH": str(root / "none.json"),
        "HF_HUB_OFFLINE": "1",
        **(extra_env or {}),
    }


@contextmanager
def running_daemon(root: Path, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """`clarity serve` on a free loopback port over `root`; yields its URL once /readyz says ready."""
    port = free_port()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "clarity", "serve"],
        env=daemon_env(root, port, extra_env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise SystemExit("daemon did not become ready")
            time.sleep(0.2)
        yield url
    finally:
        daemon.terminate()
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
