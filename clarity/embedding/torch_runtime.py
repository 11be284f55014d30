"""The torch runtime: sentence-transformers, the reference encoder.

It loads in 4-8 s on a quiet 2-core machine (importing torch, transformers and
sentence-transformers is most of it), so the daemon serves from ONNX Runtime
(``onnx_runtime.py``) and keeps this one as the reference the ONNX export is checked against, and
as the fallback for a model that cannot be exported (``embedding.runtime = "torch"`` picks it).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from clarity.config import EmbeddingSettings
from clarity.embedding.half_precision import Forward, check_probes, half_precision_forward
from clarity.embedding.provider import BackgroundLoadedProvider, Vector

log = logging.getLogger(__name__)

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


class SentenceTransformerProvider(BackgroundLoadedProvider):
    """sentence-transformers on torch, with the lean and float16 query paths."""

    runtime = "torch"

    def __init__(self, settings: EmbeddingSettings, cache_dir: Path | None = None) -> None:
        super().__init__(settings, cache_dir)
        self._device = settings.device
        self._batch_size = settings.batch_size
        self._threads = settings.threads
        self._model: Any = None
        self._lean: _LeanEncoder | None = None
        self._query_precision = settings.query_precision
        self._query_lean: _LeanEncoder | None = None

    def _load_model(self) -> None:
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
        self._check_dimension(int(dimension_of() or 0))
        model.eval()  # once: encode() repeats this walk over every module on each call
        self._lean = _LeanEncoder.for_model(model)
        self._query_lean = self._query_encoder(self._lean)
        self._model = model

    def _query_encoder(self, lean: _LeanEncoder | None) -> _LeanEncoder | None:
        """The float16 query path when asked for and it holds up on the probes, else ``lean``."""
        if lean is None or self._query_precision != "float16" or self._device != "cpu":
            return lean  # fbgemm's float16 kernels are CPU kernels
        try:
            return lean.half_precision()
        except Exception as exc:  # a torch without fbgemm, a model that does not trace: keep float32
            log.warning("float16 query path unavailable, queries use float32: %s", exc)
            return lean

    def _encode_documents(self, texts: list[str]) -> list[Vector]:
        if len(texts) == 1 and self._lean is not None:
            return self._lean.encode(texts)
        vectors = self._model.encode(
            texts,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return [vector.tolist() for vector in vectors]

    def _encode_query(self, text: str) -> Vector:
        if self._query_lean is not None:
            return self._query_lean.encode([text])[0]
        return self._encode_documents([text])[0]
