"""Dense and lexical encoders.

Importing sentence-transformers costs seconds, so the model is loaded once per process, in a
background thread started with the daemon: ``/healthz`` answers at once and ``/readyz`` turns
ready when ``wait_ready`` would return. Query texts repeat a lot (hooks ask about the same
commands over and over), so query vectors sit in a small LRU cache.

A model is identified by its name and a hash of its weights (``clarity.model_identity``), not by
where it is installed, so vectors exported from one install are reused by another.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cachetools import LRUCache

from clarity import model_identity
from clarity.config import DEFAULT_MODEL, EmbeddingSettings
from clarity.half_precision import Forward, check_probes, half_precision_forward

log = logging.getLogger(__name__)

Vector = list[float]


class ModelNotReady(RuntimeError):
    """The model is still loading (or failed to load); the message says which."""


class EmbeddingProvider(ABC):
    """What the memory service needs from a dense encoder."""

    dimension: int
    name: str

    @abstractmethod
    def start_loading(self) -> None: ...

    @property
    @abstractmethod
    def ready(self) -> bool: ...

    @property
    @abstractmethod
    def error(self) -> str | None: ...

    @abstractmethod
    def wait_ready(self, timeout: float | None = None) -> None: ...

    @abstractmethod
    def embed_documents(self, texts: Sequence[str]) -> list[Vector]: ...

    @abstractmethod
    def embed_query(self, text: str) -> Vector: ...

    @property
    def identity(self) -> str:
        """What exports and backups name the model by; the same weights give the same identity."""
        return self.name

    def made(self, model: str | None) -> bool:
        """Whether vectors labelled ``model`` (an export's header, an import batch) are ours."""
        return bool(model) and model in (self.name, self.identity)


# The only Transformer modality setup the lean path reproduces: plain text through ``forward``.
_TEXT_FORWARD = {"text": {"method": "forward", "method_output_name": "last_hidden_state"}}


class _LeanEncoder:
    """Transformer -> mean Pooling (-> Normalize) without ``SentenceTransformer.encode``'s per-call work.

    A prompt hook must answer within 20 ms, query embedding included, and for a short text
    ``encode()`` adds ~4 ms to a ~10 ms MiniLM forward: it re-resolves the device by walking every
    parameter, calls ``eval()`` over every module, and sorts, batches and converts its inputs. This
    path does only what ``encode(..., normalize_embeddings=True)`` computes for that module layout:
    the model's own tokenizer with encode's arguments, the bare transformer under
    ``inference_mode`` (the model is put in eval mode once, at load), the attention-masked mean and
    an L2 norm. ``for_model`` returns None for any other layout, which then goes through ``encode``.
    """

    def __init__(
        self,
        tokenizer: Any,
        transformer: Any,
        max_length: int | None,
        device: Any,
        forward: Forward | None = None,
    ) -> None:
        self._tokenizer = tokenizer
        self._transformer = transformer
        self._max_length = max_length
        self._device = device
        self._forward: Forward = forward or (
            lambda batch: transformer(**batch, return_dict=True).last_hidden_state
        )

    @classmethod
    def for_model(cls, model: Any) -> _LeanEncoder | None:
        """The lean path when ``model`` has exactly the layout it reproduces, else None."""
        modules = list(model)
        if [type(m).__name__ for m in modules] not in (
            ["Transformer", "Pooling"],
            ["Transformer", "Pooling", "Normalize"],
        ):
            return None
        transformer, pooling = modules[0], modules[1]
        if (
            getattr(pooling, "pooling_mode", None) != "mean"
            or getattr(transformer, "modality_config", None) != _TEXT_FORWARD
            or getattr(transformer, "transformer_task", None) != "feature-extraction"
            or getattr(transformer, "backend", None) != "torch"
            or getattr(transformer, "processing_kwargs", None)
            or getattr(transformer, "can_flatten_inputs", True)
            or getattr(transformer, "do_lower_case", True)
            or getattr(transformer, "tokenizer", None) is None
            or getattr(model, "default_prompt_name", None)
            or getattr(model, "truncate_dim", None)
        ):
            return None
        return cls(transformer.tokenizer, transformer.auto_model, model.max_seq_length, model.device)

    def encode(self, texts: list[str]) -> list[Vector]:
        import torch

        with torch.inference_mode():
            batch = self._tokenizer(
                texts,
                padding=True,
                truncation="longest_first",
                max_length=self._max_length,
                return_tensors="pt",
            ).to(self._device)
            tokens = self._forward(batch)
            mask = batch["attention_mask"].unsqueeze(-1).to(tokens.dtype)
            mean = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            vectors: list[Vector] = torch.nn.functional.normalize(mean, p=2, dim=1).tolist()
        return vectors

    def half_precision(self) -> _LeanEncoder:
        """This encoder with float16 Linear weights, traced, checked against this one on probes."""
        started = time.perf_counter()
        fast = _LeanEncoder(
            self._tokenizer,
            self._transformer,
            self._max_length,
            self._device,
            forward=half_precision_forward(self._transformer, self._tokenizer),
        )
        lowest = check_probes(self.encode, fast.encode)
        log.info(
            "float16 query path built in %.1fs (lowest probe cosine to float32: %.7f)",
            time.perf_counter() - started,
            lowest,
        )
        return fast


class SentenceTransformerProvider(EmbeddingProvider):
    def __init__(self, settings: EmbeddingSettings, cache_dir: Path | None = None) -> None:
        self.name = settings.resolved_model()
        self._label = model_identity.display_name(self.name, DEFAULT_MODEL if not settings.model else None)
        self._cache_dir = cache_dir
        self._identity: str | None = None
        self._digest: str | None = None
        self._identity_lock = threading.Lock()
        self.dimension = settings.dimension
        self._device = settings.device
        self._batch_size = settings.batch_size
        self._threads = settings.threads
        self._model: Any = None
        self._lean: _LeanEncoder | None = None
        self._query_precision = settings.query_precision
        self._query_lean: _LeanEncoder | None = None
        self._error: str | None = None
        self._loaded = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._cache: LRUCache[str, Vector] | None = (
            LRUCache(maxsize=settings.query_cache_size) if settings.query_cache_size else None
        )
        self._cache_lock = threading.Lock()
        self.load_seconds: float | None = None

    def start_loading(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._load, name="clarity-model-loader", daemon=True)
                self._thread.start()

    def _load(self) -> None:
        started = time.perf_counter()
        # Nothing may download a model at run time: a hub name that is not cached fails fast.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import torch
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            # A tqdm bar ("Loading weights: 100%|...") on stderr at every start: not a log line,
            # and in the daemon's log it is noise. Set here, where transformers is imported anyway.
            transformers_logging.disable_progress_bar()

            if self._threads:
                # One thread encodes a short query faster than two here, and two threads that must
                # meet at every layer stall badly whenever another process holds a core.
                torch.set_num_threads(self._threads)
            model = SentenceTransformer(self.name, device=self._device)
            dimension_of = (
                getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            )
            produced = dimension_of()
            if produced != self.dimension:
                raise ValueError(
                    f"model {self.name} produces {produced}-d vectors but embedding.dimension is {self.dimension}"
                )
            model.eval()  # once: encode() repeats this walk over every module on each call
            self._lean = _LeanEncoder.for_model(model)
            self._query_lean = self._query_encoder(self._lean)
            self._model = model
            # The model and the libraries are here for good: moving them out of the collector's
            # reach keeps full collections (tens of ms each) from landing in a hook's budget.
            gc.collect()
            gc.freeze()
            self.load_seconds = time.perf_counter() - started
            log.info("embedding model loaded in %.1fs: %s", self.load_seconds, self.name)
        except Exception as exc:  # the daemon keeps serving; readiness reports why
            self._error = f"could not load embedding model {self.name!r}: {exc}"
            log.error(self._error)
        finally:
            self._loaded.set()
        if self._model is not None:  # hashed here, off the request path (a cache hit is one stat)
            try:
                log.info("embedding model identity: %s", self.identity)
            except Exception as exc:
                log.warning("model identity not worked out: %s", exc)

    @property
    def identity(self) -> str:
        """``<name>@sha256:<weights hash>``, worked out once (see ``clarity.model_identity``)."""
        with self._identity_lock:
            if self._identity is None:
                directory = model_identity.local_directory(self.name)
                digest = None
                if directory is not None:
                    try:
                        digest = model_identity.weights_digest(directory, self._cache_dir)
                    except OSError as exc:
                        log.warning("cannot hash the weights of %s: %s", self.name, exc)
                self._digest = digest
                self._identity = model_identity.identity(self._label, digest)
            return self._identity

    def made(self, model: str | None) -> bool:
        """Ours if named by our identity or path, or if its weights hash (carried by an identity,
        or read from the model directory an older export names) equals ours."""
        if not model:
            return False
        if model in (self.name, self.identity):
            return True
        ours = self._digest
        return ours is not None and model_identity.digest_of(model, self._cache_dir) == ours

    def _query_encoder(self, lean: _LeanEncoder | None) -> _LeanEncoder | None:
        """The float16 query path when asked for and it holds up on the probes, else ``lean``."""
        if lean is None or self._query_precision != "float16" or self._device != "cpu":
            return lean  # fbgemm's float16 kernels are CPU kernels
        try:
            return lean.half_precision()
        except Exception as exc:  # a torch without fbgemm, a model that does not trace: keep float32
            log.warning("float16 query path unavailable, queries use float32: %s", exc)
            return lean

    @property
    def ready(self) -> bool:
        return self._model is not None

    @property
    def error(self) -> str | None:
        return self._error

    def wait_ready(self, timeout: float | None = None) -> None:
        self.start_loading()
        if not self._loaded.wait(timeout):
            raise ModelNotReady(f"embedding model {self.name} is still loading; try again in a few seconds")
        if self._model is None:
            raise ModelNotReady(self._error or "embedding model unavailable")

    def embed_documents(self, texts: Sequence[str]) -> list[Vector]:
        self.wait_ready(timeout=120)
        if len(texts) == 1 and self._lean is not None:
            return self._lean.encode(list(texts))
        vectors = self._model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return [vector.tolist() for vector in vectors]

    def embed_query(self, text: str) -> Vector:
        if self._cache is not None:
            with self._cache_lock:
                cached = self._cache.get(text)
            if cached is not None:
                return cached
        self.wait_ready(timeout=120)
        if self._query_lean is not None:
            vector = self._query_lean.encode([text])[0]
        else:
            vector = self.embed_documents([text])[0]
        if self._cache is not None:
            with self._cache_lock:
                self._cache[text] = vector
        return vector


def create_embedding_provider(
    settings: EmbeddingSettings, cache_dir: Path | None = None
) -> EmbeddingProvider:
    """Factory kept for the day a second provider (e.g. ONNX) earns its place. ``cache_dir``
    (the storage's ``app-data/cache``) keeps the weights hash between runs."""
    return SentenceTransformerProvider(settings, cache_dir)


class LexicalEncoder:
    """BM25 term weights computed in Rust by qdrant-edge; the engine applies IDF at query time.

    The same encoder feeds both engines, so lexical matching behaves identically on Qdrant Edge
    and on a Qdrant server.
    """

    def __init__(self) -> None:
        from qdrant_edge import Bm25

        self._bm25 = Bm25()

    def document(self, text: str) -> tuple[list[int], list[float]]:
        sparse = self._bm25.embed_document(text)
        return list(sparse.indices), [float(v) for v in sparse.values]

    def query(self, text: str) -> tuple[list[int], list[float]]:
        sparse = self._bm25.embed_query(text)
        return list(sparse.indices), [float(v) for v in sparse.values]
