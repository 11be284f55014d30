"""A faster forward pass for one query: the same transformer with float16 Linear weights, traced.

Why it exists: the UserPromptSubmit hook waits for the prompt's embedding. On a small CPU the
float32 MiniLM forward for a 20-token prompt takes 12-15 ms, and it is bound by memory, not by
arithmetic: every call streams the encoder's 42 MB of Linear weights from DRAM (more than a 32 MB
L3 holds), and HuggingFace's BERT adds ~3 ms of Python per call. Packing those weights as float16
(fbgemm keeps the activations and the accumulation in float32) halves the bytes to read, and a
TorchScript trace drops the Python, so the same forward takes about half the time.

The price is rounding the weights to 11 significant bits: query vectors come out within cosine
0.9999 of the float32 ones (0.9999998 measured; checked on probe texts every time this is built,
float32 otherwise). Stored memories are always embedded in float32, so nothing kept on disk
depends on this path. The trace is made for, and only accepts, one text at a time: the query path.

TorchScript is deprecated as of torch 2.13 (which Clarity pins) in favour of ``torch.compile`` /
``torch.export``; those need a compiler toolchain and tens of seconds at start, against 0.8 s here.
If a later torch drops ``torch.jit.trace`` or the fbgemm float16 ops, the build raises and queries
go back to float32: slower, never wrong.
"""

from __future__ import annotations

import copy
import itertools
import warnings
from collections.abc import Callable
from typing import Any

# Short, medium and truncated-long inputs: a trace that did not generalise over the sequence
# length, or a packing that lost precision, shows up on one of these.
PROBES = (
    "",
    "why does the deploy script fail with uv again? (#17)",
    " ".join(f"step {i}: pytest traceback in clarity/store/edge.py line {i}" for i in range(60)),
)
MIN_PROBE_COSINE = 0.9999

Forward = Callable[[Any], Any]
"""A tokenizer batch -> the transformer's last hidden state."""


def half_precision_forward(transformer: Any, tokenizer: Any) -> Forward:
    """Trace a float16-weight twin of ``transformer`` (a HuggingFace encoder) for batches of one.

    The twin shares every tensor but the Linear weights with the original, so it costs the packed
    weights and the traced graph (about 45 MB of RSS for MiniLM) rather than a second model.
    Raises when torch lacks the fbgemm float16 kernels or the model does not trace; the caller
    then keeps the float32 path.
    """
    import torch

    class HalfLinear(torch.nn.Module):
        def __init__(self, linear: torch.nn.Linear) -> None:
            super().__init__()
            bias = None if linear.bias is None else linear.bias.detach()
            self.packed = torch.ops.quantized.linear_prepack_fp16(linear.weight.detach(), bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.ops.quantized.linear_dynamic_fp16(x, self.packed)

    class LastHidden(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
            return out.last_hidden_state

    shared = {id(t): t for t in itertools.chain(transformer.parameters(), transformer.buffers())}
    twin = copy.deepcopy(transformer, memo=shared)
    for parent in list(twin.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Linear):
                setattr(parent, name, HalfLinear(child))
    example = tokenizer([PROBES[1]], return_tensors="pt")
    # The tracer warns about every shape-dependent branch in HF's masking code; those branches are
    # fixed for one unpadded text, and check_probes proves it. Filters are added, not swapped in
    # with catch_warnings: this runs on the loader thread while others serve requests.
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    with torch.no_grad():
        traced = torch.jit.trace(
            LastHidden(twin).eval(),
            (example["input_ids"], example["attention_mask"]),
            strict=False,
            check_trace=False,
        )
        frozen = torch.jit.freeze(traced)

    def forward(batch: Any) -> Any:
        if batch["input_ids"].shape[0] != 1:
            raise ValueError("the float16 query path embeds one text at a time")
        return frozen(batch["input_ids"], batch["attention_mask"])

    return forward


def check_probes(
    reference: Callable[[list[str]], list[list[float]]], candidate: Callable[[list[str]], list[list[float]]]
) -> float:
    """The lowest cosine between the two encoders' vectors over ``PROBES``; raises below the floor.

    Run once when the fast path is built, so a torch whose kernels or tracer behave differently
    can only cost speed, never retrieval quality.
    """
    lowest = 1.0
    for text in PROBES:
        (want,), (got,) = reference([text]), candidate([text])
        lowest = min(lowest, sum(a * b for a, b in zip(want, got, strict=True)))
    if lowest < MIN_PROBE_COSINE:
        raise ValueError(
            f"float16 query vectors drift from float32: cosine {lowest:.6f} < {MIN_PROBE_COSINE}"
        )
    return lowest
