"""The lean single-text path computes what ``SentenceTransformer.encode`` computes, on the real model."""

from __future__ import annotations

import numpy as np
import pytest

from clarity.embedding import EmbeddingProvider, SentenceTransformerProvider, _LeanEncoder

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
def provider(embedder: EmbeddingProvider) -> SentenceTransformerProvider:
    assert isinstance(embedder, SentenceTransformerProvider)
    return embedder


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
    for got in (
        provider._lean.encode([text])[0],
        provider.embed_documents([text])[0],
        provider.embed_query(text),
    ):
        assert len(got) == provider.dimension
        np.testing.assert_allclose(np.asarray(got, dtype=np.float32), expected[0], rtol=0, atol=1e-5)


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
