"""Export a sentence-transformers model to ONNX once, checked against the reference on probes.

The export needs torch (2.3 s for MiniLM plus 4-5 s of imports), so it runs once per weights hash:
at setup (``scripts/setup.sh`` runs ``python -m clarity.embedding.onnx_export``), else in a child
process at the daemon's first start, whose own memory then holds no torch at all. An export is
kept only when ONNX Runtime's vectors for the probe texts, one at a time and in one padded batch,
are within cosine 0.9999 of ``SentenceTransformer.encode(normalize_embeddings=True)``: the
lowest measured for the bundled MiniLM is 0.9999998.

Exports live in ``<sys.prefix>/share/clarity/onnx/<weights hash>/`` when that is writable (one per
virtualenv, found by every storage root and HOME, which tests vary), else in the user cache
(``$XDG_CACHE_HOME/clarity/onnx``); ``embedding.export_dir`` picks another place. A directory is
published by one rename, so two daemons exporting at once leave one complete copy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from clarity import model_identity
from clarity.atomic_file import write_atomically
from clarity.config import EmbeddingSettings

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the graph's inputs or outputs change: older exports are then made again
META_FILE = "export.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
MIN_PROBE_COSINE = 0.9999
EXPORT_TIMEOUT_SECONDS = 900
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

# Empty, short, code, non-Latin, and longer than the 256-token limit: truncation, padding in a
# mixed batch and the tokenizer's normaliser all show on one of these.
PROBES = (
    "",
    "why does the deploy script fail with uv again? (#17)",
    "pytest tests/test_store.py -k edge  # FAILED: AssertionError: assert 3 == 4",
    "def retrieve(self, query: SearchQuery) -> list[Hit]:\n    return self._store.search(query)",
    "Ünïcödé tëxt, 日本語のメモ, and emoji 🚀 in one memory",
    "   leading and trailing whitespace, MIXED Case, tabs\tand\nnewlines   ",
    " ".join(f"step {i}: pytest traceback in clarity/store/edge.py line {i}" for i in range(60)),
)


def export_roots(settings: EmbeddingSettings) -> list[Path]:
    """Where exports are looked for, in order; the first writable one is where they are made."""
    if settings.export_dir:
        return [Path(settings.export_dir).expanduser()]
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return [Path(sys.prefix) / "share" / "clarity" / "onnx", cache_home / "clarity" / "onnx"]


def _writable_root(roots: list[Path]) -> Path:
    for root in roots:
        with contextlib.suppress(OSError):
            root.mkdir(parents=True, exist_ok=True)
            if os.access(root, os.W_OK):
                return root
    raise PermissionError(f"no writable place for the ONNX export among {', '.join(map(str, roots))}")


def _digest(directory: Path, roots: list[Path]) -> str:
    """The weights hash, with the per-file digests cached beside the exports (0.3 ms on a hit)."""
    cache_dir = next((root for root in roots if root.is_dir()), None)
    digest = model_identity.weights_digest(directory, cache_dir)
    if digest is None:
        raise FileNotFoundError(f"no weights (*.safetensors, pytorch_model*.bin) in {directory}")
    return digest


def find(directory: Path, roots: list[Path]) -> Path | None:
    """The complete export of ``directory``'s weights, or None."""
    digest = _digest(directory, roots)
    for root in roots:
        candidate = root / digest
        try:
            meta = json.loads((candidate / META_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if (
            meta.get("format") == FORMAT
            and meta.get("digest") == digest
            and (candidate / MODEL_FILE).is_file()
        ):
            return candidate
    return None


def set_aside(export_dir: Path) -> Path:
    """Move an export that does not load out of the way, renamed, never deleted (it is the user's
    disk, and the file may be wanted to see what went wrong)."""
    aside = export_dir.with_name(f"{export_dir.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    os.rename(export_dir, aside)
    log.warning("the ONNX export at %s does not load; moved to %s and made again", export_dir, aside)
    return aside


def export_in_child(directory: Path, roots: list[Path]) -> Path:
    """Export in a child process, so torch never enters the daemon's memory; the new directory."""
    root = _writable_root(roots)
    log.info("exporting the embedding model to ONNX once (in a child process): %s", directory)
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "clarity.embedding.onnx_export",
            "--model",
            str(directory),
            "--out",
            str(root),
        ],
        capture_output=True,
        text=True,
        timeout=EXPORT_TIMEOUT_SECONDS,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        check=False,
    )
    found = find(directory, [root])
    if done.returncode != 0 or found is None:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise RuntimeError(f"the ONNX export failed: {last}")
    log.info("ONNX export ready in %.1fs: %s", time.monotonic() - started, found)
    return found


def export(directory: Path, root: Path) -> tuple[Path, dict[str, Any]]:
    """Export ``directory``'s model under ``root`` (kept only if it passes the probe check)."""
    roots = [root]
    root.mkdir(parents=True, exist_ok=True)
    existing = find(directory, roots)
    if existing is not None:
        return existing, json.loads((existing / META_FILE).read_text(encoding="utf-8"))
    digest = _digest(directory, roots)
    if (root / digest).exists():  # an older format, or damaged: made again, the old one kept aside
        set_aside(root / digest)
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    from clarity.embedding.onnx_runtime import OnnxEncoder
    from clarity.embedding.torch_runtime import _LeanEncoder

    transformers_logging.disable_progress_bar()
    # The legacy exporter and the tracer warn about what this graph does not do (control flow,
    # negative indices); the probe check below is what says whether the export is right.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    torch.set_num_threads(1)
    model: Any = SentenceTransformer(str(directory), device="cpu").eval()
    if _LeanEncoder.for_model(model) is None:
        raise ValueError(
            "only Transformer -> mean Pooling (-> Normalize) models are exported; this one is not"
        )
    transformer: Any = next(iter(model))
    tokenizer = transformer.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("the model's tokenizer has no tokenizers (Rust) version to export")
    sample = tokenizer(["a probe", "a longer probe text for the export"], padding=True, return_tensors="pt")
    inputs = [name for name in _INPUTS if name in sample]
    graph = _pooled_model(transformer.auto_model, inputs)
    staging = Path(tempfile.mkdtemp(prefix=f".{digest}-", dir=root))
    try:
        with torch.no_grad():
            torch.onnx.export(
                graph,
                tuple(sample[name] for name in inputs),
                str(staging / MODEL_FILE),
                input_names=inputs,
                output_names=["embedding"],
                dynamic_axes={
                    **{name: {0: "batch", 1: "tokens"} for name in inputs},
                    "embedding": {0: "batch"},
                },
                opset_version=17,
                dynamo=False,
            )
        tokenizer.backend_tokenizer.save(str(staging / TOKENIZER_FILE))
        meta: dict[str, Any] = {
            "format": FORMAT,
            "digest": digest,
            "model": str(directory),
            "dimension": int(
                (getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)()
                or 0
            ),
            "max_length": int(model.max_seq_length),
            "inputs": inputs,
            "pad_id": int(tokenizer.pad_token_id or 0),
            "torch": torch.__version__,
        }
        write_atomically(staging / META_FILE, json.dumps(meta, indent=1))
        meta["min_probe_cosine"] = lowest = _probe_check(model, OnnxEncoder(staging, threads=1))
        if lowest < MIN_PROBE_COSINE:
            raise ValueError(f"ONNX vectors drift from the reference: lowest probe cosine {lowest:.6f}")
        write_atomically(staging / META_FILE, json.dumps(meta, indent=1))
        try:
            os.rename(staging, root / digest)
        except OSError:  # another process published the same export first: keep theirs
            if find(directory, roots) is None:
                raise
        return root / digest, meta
    finally:
        if staging.exists():
            shutil.rmtree(staging)  # only ever our own staging directory


def _probe_check(model: Any, encoder: Any) -> float:
    """The lowest cosine between the reference and the export over the probes, one by one and in
    one padded batch (both paths the daemon takes)."""
    import numpy as np

    reference = np.asarray(model.encode(list(PROBES), normalize_embeddings=True, batch_size=len(PROBES)))
    batched = np.asarray(encoder.encode(list(PROBES), batch_size=len(PROBES)))
    single = np.asarray([encoder.encode([probe])[0] for probe in PROBES])
    return float(min((reference * batched).sum(axis=1).min(), (reference * single).sum(axis=1).min()))


def _pooled_model(transformer: Any, inputs: list[str]) -> Any:
    """The transformer, then the attention-masked mean and the L2 norm, as one graph (torch is
    imported here, not at module level: the daemon imports this module without torch)."""
    import torch

    class PooledModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, *tensors: Any) -> Any:
            batch = dict(zip(inputs, tensors, strict=True))
            tokens = self.transformer(**batch, return_dict=True).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(tokens.dtype)
            mean = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    return PooledModel()


def main(argv: list[str] | None = None) -> int:
    """``python -m clarity.embedding.onnx_export``: what setup and the daemon's first start run."""
    from clarity.config import Settings

    settings = Settings().embedding
    parser = argparse.ArgumentParser(prog="python -m clarity.embedding.onnx_export", description=__doc__)
    parser.add_argument(
        "--model", default=settings.resolved_model(), help="model directory or cached hub name"
    )
    parser.add_argument("--out", type=Path, default=None, help="where exports are kept (default: see above)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    directory = model_identity.local_directory(args.model)
    if directory is None:
        print(f"no model at {args.model} (nothing is downloaded)", file=sys.stderr)
        return 2
    root = args.out or _writable_root(export_roots(settings))
    started = time.monotonic()
    try:
        where, meta = export(directory, root)
    except Exception as exc:
        print(f"ONNX export failed: {exc}", file=sys.stderr)
        return 1
    print(
        f"ONNX export of {model_identity.display_name(str(directory))} in {where} "
        f"(lowest probe cosine to sentence-transformers {meta.get('min_probe_cosine', 0):.7f}; "
        f"{time.monotonic() - started:.1f}s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
