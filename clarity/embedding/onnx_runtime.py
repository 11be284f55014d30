"""The serving runtime: the same weights through ONNX Runtime and the ``tokenizers`` library.

Why: importing torch, transformers and sentence-transformers is most of the 5-8 s a daemon took to
turn ready (issue 25: 14-56 s on a busy machine, long enough for a first session to miss its
hooks). ONNX Runtime with the model's own ``tokenizer.json`` loads in about 0.3 s and encodes a
prompt in about 3.6 ms against torch's 9.4 ms float32 (one thread each, measured here), with
vectors within cosine 0.9999 of sentence-transformers' (``onnx_export.py`` checks every export on
probe texts; ``tests/test_onnx_runtime.py`` checks again on its own).

The graph is exported once per weights hash (at setup, else at the first start, in a child
process) by ``onnx_export.py``, with the mean pooling and the L2 norm inside it, so a batch here
is: tokenize, pad, run. Should the export fail (a model layout the export does not reproduce,
no ``onnx`` package), the daemon loads the torch runtime instead and says so in its log.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from clarity import model_identity
from clarity.config import EmbeddingSettings
from clarity.embedding import onnx_export
from clarity.embedding.provider import BackgroundLoadedProvider, Vector

log = logging.getLogger(__name__)


class OnnxEncoder:
    """An exported model directory: its ONNX graph and tokenizer, ready to encode."""

    def __init__(self, directory: Path, threads: int) -> None:
        import numpy as np
        import onnxruntime
        from tokenizers import Tokenizer

        self._np = np
        self.meta: dict[str, Any] = json.loads(
            (directory / onnx_export.META_FILE).read_text(encoding="utf-8")
        )
        self.dimension = int(self.meta["dimension"])
        self._inputs: list[str] = list(self.meta["inputs"])
        self._pad_id = int(self.meta.get("pad_id", 0))
        tokenizer = Tokenizer.from_file(str(directory / onnx_export.TOKENIZER_FILE))
        tokenizer.no_padding()  # batches are padded here, after sorting by length
        tokenizer.enable_truncation(int(self.meta["max_length"]), strategy="longest_first")
        self._tokenizer = tokenizer
        options = onnxruntime.SessionOptions()
        # One thread by default, as the torch runtime: a query is too small to share, and threads
        # that must meet at every layer stall whenever another process holds a core.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings from the graph optimiser are not the user's
        self._session = onnxruntime.InferenceSession(
            str(directory / onnx_export.MODEL_FILE), options, providers=["CPUExecutionProvider"]
        )

    def encode(self, texts: list[str], batch_size: int = 32) -> list[Vector]:
        """Unit vectors for ``texts`` in their order. Texts are batched by token length, so a short
        text never pays for a long one's padding (twice the throughput on mixed lengths)."""
        if not texts:
            return []
        encodings = self._tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        vectors: list[Vector] = [[] for _ in texts]
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            for index, vector in zip(chosen, self._run([encodings[i] for i in chosen]), strict=True):
                vectors[index] = vector
        return vectors

    def _run(self, encodings: list[Any]) -> list[Vector]:
        np = self._np
        width = max(len(e.ids) for e in encodings)
        arrays = {
            "input_ids": np.full((len(encodings), width), self._pad_id, dtype=np.int64),
            "attention_mask": np.zeros((len(encodings), width), dtype=np.int64),
            "token_type_ids": np.zeros((len(encodings), width), dtype=np.int64),
        }
        for row, encoding in enumerate(encodings):
            size = len(encoding.ids)
            arrays["input_ids"][row, :size] = encoding.ids
            arrays["attention_mask"][row, :size] = encoding.attention_mask
            arrays["token_type_ids"][row, :size] = encoding.type_ids
        (output,) = self._session.run(None, {name: arrays[name] for name in self._inputs})
        vectors: list[Vector] = output.tolist()
        return vectors


class OnnxProvider(BackgroundLoadedProvider):
    """Serves from the ONNX export of the configured model; exports it first when it is missing,
    and falls back to the torch runtime when it cannot be exported."""

    runtime = "onnx"

    def __init__(self, settings: EmbeddingSettings, cache_dir: Path | None = None) -> None:
        super().__init__(settings, cache_dir)
        self._settings = settings
        self._threads = settings.threads
        self._batch_size = settings.batch_size
        self._encoder: OnnxEncoder | None = None
        self._fallback: BackgroundLoadedProvider | None = None

    def _load_model(self) -> None:
        directory = model_identity.local_directory(self.name)
        if directory is None:
            raise FileNotFoundError(
                f"Path {self.name} not found (no model directory, nor a cached hub model)"
            )
        roots = onnx_export.export_roots(self._settings)
        try:
            self._encoder = self._open_export(directory, roots)
        except Exception as exc:
            log.warning("ONNX runtime unavailable, loading the torch runtime instead: %s", exc)
            self._load_fallback()
            return
        self._check_dimension(self._encoder.dimension)
        digest = str(self._encoder.meta["digest"])
        with self._identity_lock:
            self._digest = digest
            self._identity = model_identity.identity(self._label, digest)
        self.runtime = "onnx"

    def _open_export(self, directory: Path, roots: list[Path]) -> OnnxEncoder:
        """The export of ``directory``: found, else made; one that does not load is set aside and
        made again (a truncated file from a full disk, say)."""
        found = onnx_export.find(directory, roots)
        if found is not None:
            try:
                return OnnxEncoder(found, self._threads)
            except Exception as exc:
                log.warning("the ONNX export at %s does not load: %s", found, exc)
                onnx_export.set_aside(found)
        return OnnxEncoder(onnx_export.export_in_child(directory, roots), self._threads)

    def _load_fallback(self) -> None:
        from clarity.embedding.torch_runtime import SentenceTransformerProvider

        fallback = SentenceTransformerProvider(self._settings, self._cache_dir)
        fallback._load_model()
        self._fallback = fallback
        self.runtime = "torch (ONNX export unavailable)"

    def _encode_documents(self, texts: list[str]) -> list[Vector]:
        if self._fallback is not None:
            return self._fallback._encode_documents(texts)
        assert self._encoder is not None
        return self._encoder.encode(texts, self._batch_size)

    def _encode_query(self, text: str) -> Vector:
        if self._fallback is not None:
            return self._fallback._encode_query(text)
        assert self._encoder is not None
        return self._encoder.encode([text])[0]
