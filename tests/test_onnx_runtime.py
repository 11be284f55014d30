"""The serving runtime (ONNX Runtime + tokenizers) gives sentence-transformers' vectors, is made once
and found after, survives a damaged export, falls back to torch when it cannot be made, and keeps
torch out of the daemon.

The reference is ``SentenceTransformer.encode(normalize_embeddings=True)`` on the bundled model,
loaded here directly; the probe texts are this file's own, not the ones the export checks itself on.
"""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clarity.config import Settings
from clarity.embedding import EmbeddingProvider, create_embedding_provider
from clarity.embedding.onnx_export import MIN_PROBE_COSINE, MODEL_FILE, _probe_check
from clarity.embedding.onnx_runtime import OnnxProvider
from tests.daemon_util import Daemon

WORDS = [
    "daemon",
    "pytest",
    "uv",
    "deploy",
    "fails",
    "because",
    "the",
    "lock",
    "file",
    "is",
    "stale",
    "fix",
    "retry",
    "schema",
    "日本語",
    "café",
    "🚀",
]
PROBES = [
    "",
    " ",
    "git push --force-with-lease origin main",
    "Ünïcødé: naïve café, 日本語のテスト, Привет, 😀 — «quotes»",
    "Traceback (most recent call last):\n  File 'clarity/store/edge/reads.py', line 12\nKeyError: 'scope'",
    " ".join(f"tokenisation-{i} of the pytest traceback in clarity/store/edge.py:{i}" for i in range(90)),
]


@pytest.fixture(scope="module")
def reference() -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(Settings().embedding.resolved_model(), device="cpu")


def mixed_batch(count: int) -> list[str]:
    """Texts of every length from one word to past the 256-token limit, in a shuffled order, so a
    batch that sorted by length and put the vectors back in the wrong places would show."""
    rng = random.Random(25)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.choice([1, 3, 12, 40, 200]))) for _ in range(count)]


def lowest_cosine(reference: Any, texts: list[str], got: list[list[float]]) -> float:
    expected = np.asarray(reference.encode(texts, normalize_embeddings=True, show_progress_bar=False))
    return float((expected * np.asarray(got)).sum(axis=1).min())


def test_the_default_runtime_is_onnx_and_matches_the_reference(
    embedder: EmbeddingProvider, reference: Any
) -> None:
    assert isinstance(embedder, OnnxProvider) and embedder.runtime == "onnx"
    queries = [embedder._encode_query(text) for text in PROBES]  # not the cache: the encoder itself
    assert lowest_cosine(reference, PROBES, queries) >= MIN_PROBE_COSINE
    batch = mixed_batch(70)  # three batches of 32, sorted by length inside
    assert lowest_cosine(reference, batch, embedder.embed_documents(batch)) >= MIN_PROBE_COSINE
    assert embedder.identity.startswith("sentence-transformers/all-MiniLM-L6-v2@sha256:")


def export_settings(export_dir: Path) -> Any:
    return Settings().embedding.model_copy(update={"export_dir": str(export_dir)})


def loaded(settings: Any) -> EmbeddingProvider:
    provider = create_embedding_provider(settings)
    provider.wait_ready(timeout=600)
    return provider


def test_the_export_is_made_once_found_after_and_made_again_when_damaged(
    tmp_path: Path, reference: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings = export_settings(tmp_path / "exports")
    first = loaded(settings)
    assert first.runtime == "onnx", first.error
    (made,) = [p for p in (tmp_path / "exports").iterdir() if p.is_dir()]
    meta = json.loads((made / "export.json").read_text(encoding="utf-8"))
    assert meta["min_probe_cosine"] >= MIN_PROBE_COSINE and made.name == meta["digest"]
    stamp = (made / MODEL_FILE).stat().st_mtime_ns

    second = loaded(settings)  # found, not made again
    assert second.runtime == "onnx" and (made / MODEL_FILE).stat().st_mtime_ns == stamp

    # A truncated graph (a full disk mid-copy, say): set aside, never deleted, and made again.
    (made / MODEL_FILE).write_bytes((made / MODEL_FILE).read_bytes()[:4096])
    with caplog.at_level(logging.WARNING, logger="clarity.embedding"):
        third = loaded(settings)
    assert third.runtime == "onnx", third.error
    aside = [p for p in (tmp_path / "exports").iterdir() if ".damaged-" in p.name]
    assert len(aside) == 1 and (aside[0] / MODEL_FILE).stat().st_size == 4096
    assert "does not load" in caplog.text
    assert lowest_cosine(reference, PROBES, third.embed_documents(PROBES)) >= MIN_PROBE_COSINE


def test_an_export_that_cannot_be_made_falls_back_to_torch(
    tmp_path: Path, reference: Any, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the exports would go", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="clarity.embedding"):
        provider = loaded(export_settings(blocked))
    assert provider.ready and provider.runtime.startswith("torch"), provider.runtime
    assert "loading the torch runtime instead" in caplog.text
    assert blocked.read_text(encoding="utf-8") == "a file where the exports would go"
    assert lowest_cosine(reference, PROBES, provider.embed_documents(PROBES)) >= 0.99999


def test_a_missing_model_fails_without_loading_torch(tmp_path: Path) -> None:
    """The error is the model's, at once: no export attempt and no torch fallback for a path that
    holds nothing (the daemon's lexical-only mode depends on it being quick)."""
    script = (
        "import sys\n"
        "from clarity.config import Settings\n"
        "from clarity.embedding import create_embedding_provider\n"
        f"settings = Settings().embedding.model_copy(update={{'model': {str(tmp_path / 'no-model')!r}}})\n"
        "provider = create_embedding_provider(settings)\n"
        "provider.start_loading()\n"
        "provider._loaded.wait(60)\n"
        "print(provider.error)\n"
        "print('torch' in sys.modules, 'sentence_transformers' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    error, modules = done.stdout.strip().splitlines()[-2:]
    assert "no-model" in error and "not found" in error
    assert modules == "False False", done.stderr


def test_the_probe_check_refuses_an_export_that_drifts(reference: Any) -> None:
    class Drifting:
        """Vectors a little off the reference, as a wrong pooling or a lost token would make."""

        def encode(self, texts: list[str], batch_size: int = 32) -> list[list[float]]:
            vectors = np.asarray(reference.encode(texts, normalize_embeddings=True))
            noisy = vectors + np.random.default_rng(0).normal(0, 0.02, vectors.shape)
            return (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).tolist()

    assert _probe_check(reference, Drifting()) < MIN_PROBE_COSINE


def test_the_daemon_serves_without_torch_in_its_memory(shared_daemon: Daemon) -> None:
    """What makes the start fast: the daemon maps ONNX Runtime and never torch."""
    assert shared_daemon.process is not None
    maps = Path(f"/proc/{shared_daemon.process.pid}/maps").read_text(encoding="utf-8")
    assert "onnxruntime" in maps
    assert "libtorch" not in maps and "torch/lib" not in maps
