"""Dense and lexical encoders, and the choice of dense runtime.

The dense model runs on ONNX Runtime (``onnx_runtime.py``: ready in about 0.3 s) unless
``embedding.runtime`` is ``"torch"`` (``torch_runtime.py``: sentence-transformers, the reference,
4-8 s). A model is identified by its name and a hash of its weights (``clarity.model_identity``),
not by where it is installed or which runtime runs it, so vectors are reused across installs.
"""

from __future__ import annotations

from pathlib import Path

from clarity.config import EmbeddingSettings
from clarity.embedding.lexical import LexicalEncoder
from clarity.embedding.provider import (
    BackgroundLoadedProvider,
    EmbeddingProvider,
    ModelNotReady,
    Vector,
)
from clarity.embedding.torch_runtime import SentenceTransformerProvider, _LeanEncoder

__all__ = [
    "BackgroundLoadedProvider",
    "EmbeddingProvider",
    "LexicalEncoder",
    "ModelNotReady",
    "SentenceTransformerProvider",
    "Vector",
    "_LeanEncoder",
    "create_embedding_provider",
]


def create_embedding_provider(
    settings: EmbeddingSettings, cache_dir: Path | None = None
) -> EmbeddingProvider:
    """The provider for ``settings.runtime``. ``cache_dir`` (the storage's ``app-data/cache``)
    keeps the weights hash between runs."""
    if settings.runtime == "torch":
        return SentenceTransformerProvider(settings, cache_dir)
    from clarity.embedding.onnx_runtime import OnnxProvider

    return OnnxProvider(settings, cache_dir)
