"""Helpers shared by the benchmark scripts: synthetic memories, a prefilled storage root, a daemon."""

from __future__ import annotations

import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import Progress

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

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


def synthetic(rng: random.Random, i: int) -> str:
    fact = rng.choice(FACTS).format(
        tool=rng.choice(TOOLS), n=rng.randint(1, 9), m=rng.randint(0, 9), word=rng.choice(WORDS)
    )
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
                memory = Memory(
                    id=new_memory_id(),
                    content=text,
                    memory_type="fact",
                    scope="bench-project",
                    created_at=now,
                    updated_at=now,
                    content_hash=content_hash(text),
                )
                points.append(PointData(memory.id, vector, lexical.document(text), memory.to_payload()))
            store.upsert(points)
            progress.advance(task, len(texts))
    if hasattr(store, "wait_for_index"):
        store.wait_for_index(600)
    store.close()


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {
        "p50": round(statistics.median(ordered) * 1000, 2),
        "p95": round(pick(0.95), 2),
        "p99": round(pick(0.99), 2),
        "n": len(ordered),
    }


@contextmanager
def running_daemon(root: Path, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """`clarity serve` on a free loopback port over `root`; yields its URL once /readyz says ready."""
    port = free_port()
    env = {
        **os.environ,
        "CLARITY_STORAGE__ROOT": str(root),
        "CLARITY_SERVER__PORT": str(port),
        "MEMORY_CONFIG_PATH": str(root / "none.json"),
        "HF_HUB_OFFLINE": "1",
        **(extra_env or {}),
    }
    daemon = subprocess.Popen(
        [sys.executable, "-m", "clarity", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
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
        daemon.wait(30)
