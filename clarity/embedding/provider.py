"""What the memory service needs from a dense encoder, and the loading both runtimes share.

A model takes from a quarter of a second (ONNX Runtime) to several seconds (torch and
sentence-transformers) to load, so it loads once per process in a background thread started with
the daemon: ``/healthz`` answers at once and ``/readyz`` turns ready when ``wait_ready`` would
return. Query texts repeat a lot (hooks ask about the same commands over and over), so query
vectors sit in a small LRU cache in front of either runtime.
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

from cachetools import LRUCache

from clarity import model_identity
from clarity.config import DEFAULT_MODEL, EmbeddingSettings

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


class BackgroundLoadedProvider(EmbeddingProvider):
    """A provider whose model loads in a thread, with a query cache and a weights identity.

    Subclasses load in ``_load_model`` (raising on failure) and encode in ``_encode_documents``
    and ``_encode_query``; everything about waiting, errors and caching is here, once.
    """

    runtime = "?"

    def __init__(self, settings: EmbeddingSettings, cache_dir: Path | None = None) -> None:
        self.name = settings.resolved_model()
        self._label = model_identity.display_name(self.name, DEFAULT_MODEL if not settings.model else None)
        self._cache_dir = cache_dir
        self._identity: str | None = None
        self._digest: str | None = None
        self._identity_lock = threading.Lock()
        self.dimension = settings.dimension
        self._error: str | None = None
        self._loaded = threading.Event()
        self._ready = False
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._cache: LRUCache[str, Vector] | None = (
            LRUCache(maxsize=settings.query_cache_size) if settings.query_cache_size else None
        )
        self._cache_lock = threading.Lock()
        self.load_seconds: float | None = None

    @abstractmethod
    def _load_model(self) -> None:
        """Load everything encoding needs; raise with a readable message when it cannot."""

    @abstractmethod
    def _encode_documents(self, texts: list[str]) -> list[Vector]: ...

    @abstractmethod
    def _encode_query(self, text: str) -> Vector: ...

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
            self._load_model()
            self._ready = True
            # The model and the libraries are here for good: moving them out of the collector's
            # reach keeps full collections (tens of ms each) from landing in a hook's budget.
            gc.collect()
            gc.freeze()
            self.load_seconds = time.perf_counter() - started
            log.info("embedding model loaded in %.1fs (%s): %s", self.load_seconds, self.runtime, self.name)
        except Exception as exc:  # the daemon keeps serving; readiness reports why
            self._error = f"could not load embedding model {self.name!r}: {exc}"
            log.error(self._error)
        finally:
            self._loaded.set()
        if self._ready:  # hashed here, off the request path (a cache hit is one stat)
            try:
                log.info("embedding model identity: %s", self.identity)
            except Exception as exc:
                log.warning("model identity not worked out: %s", exc)

    def _check_dimension(self, produced: int) -> None:
        if produced != self.dimension:
            raise ValueError(
                f"model {self.name} produces {produced}-d vectors but embedding.dimension is {self.dimension}"
            )

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

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def error(self) -> str | None:
        return self._error

    def wait_ready(self, timeout: float | None = None) -> None:
        self.start_loading()
        if not self._loaded.wait(timeout):
            raise ModelNotReady(f"embedding model {self.name} is still loading; try again in a few seconds")
        if not self._ready:
            raise ModelNotReady(self._error or "embedding model unavailable")

    def embed_documents(self, texts: Sequence[str]) -> list[Vector]:
        self.wait_ready(timeout=120)
        return self._encode_documents(list(texts))

    def embed_query(self, text: str) -> Vector:
        if self._cache is not None:
            with self._cache_lock:
                cached = self._cache.get(text)
            if cached is not None:
                return cached
        self.wait_ready(timeout=120)
        vector = self._encode_query(text)
        if self._cache is not None:
            with self._cache_lock:
                self._cache[text] = vector
        return vector
