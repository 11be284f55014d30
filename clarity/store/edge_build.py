"""Child process that builds one indexed segment from copies of sealed shards.

``EdgeShard.optimize()`` holds the GIL for its whole run (about a minute at 100k points), so it
must never run inside the daemon. The daemon copies the frozen shards, runs this module on the
copies with a lower CPU priority, and swaps the result in when it exits 0.

The result is a new shard at SHARD_DIR into which the points of every SOURCE_DIR are upserted, in
the order given (a point in two of them keeps its last copy), then indexed. A new shard rather
than a copy of one: a shard's WAL and payload pages keep the text of the points deleted from it,
and a deleted memory's text must leave the disk.

Usage:
    python -m clarity.store.edge_build SHARD_DIR DIMENSION M EF_CONSTRUCT FULL_SCAN_THRESHOLD
        QUANTIZATION SOURCE_DIR [SOURCE_DIR ...] [--payloads FILE] [--skip FILE]

QUANTIZATION is ``int8`` (keep an int8 copy of the dense vectors for the graph walk) or ``none``.
``--payloads`` names a JSON object ``{point id: payload fields}``: use counts that waited for this
build (clarity/store/pending_touches.py). They are set on the points found here before the index
is built, so the points they change stay in it; ids of other shards are ignored. ``--skip``
names a JSON list of point ids deleted meanwhile (tombstones): they are not copied.

The daemon starts it through :func:`builder_command`, never as above: see there.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, Literal, cast, get_args

DENSE = "dense"
LEXICAL = "lex"
SEARCH_THREADS = 1  # see shard_config
Quantization = Literal["int8", "none"]  # storage.quantization (clarity/config.py) spells the same choices
QUANTIZATIONS = get_args(Quantization)


def shard_config(
    dimension: int,
    m: int,
    ef_construct: int,
    full_scan_threshold: int,
    *,
    quantization: Quantization,
    indexed: bool = False,
    threads: int = 0,
) -> Any:
    """The one shard layout: named dense vector (cosine) plus a lexical sparse vector with IDF.

    With ``int8``, an indexed segment also keeps an int8 copy of its dense vectors in RAM. The
    float32 originals are memory-mapped, and an HNSW walk reads ~1,500 of them at random: at 95k
    points that took 0.57 ms a query against 0.14 ms on the int8 copy (rescoring then reads only
    the finalists). The brute-force active shard gets the same config, but Qdrant quantizes only
    indexed segments, so its scans are unchanged."""
    from qdrant_edge import (
        Distance,
        EdgeConfig,
        EdgeOptimizersConfig,
        EdgeSparseVectorParams,
        EdgeVectorParams,
        HnswIndexConfig,
        Memory,
        Modifier,
        ScalarQuantizationConfig,
        ScalarType,
    )

    int8 = ScalarQuantizationConfig(type=ScalarType.Int8, memory=Memory.Pinned)
    return EdgeConfig(
        vectors={
            DENSE: EdgeVectorParams(
                size=dimension,
                distance=Distance.Cosine,
                quantization_config=int8 if quantization == "int8" else None,
            )
        },
        sparse_vectors={LEXICAL: EdgeSparseVectorParams(modifier=Modifier.Idf)},
        hnsw_config=HnswIndexConfig(
            m=m,
            ef_construct=ef_construct,
            full_scan_threshold=full_scan_threshold,
            max_indexing_threads=threads,
        ),
        # A sealed shard is never small enough to prefer brute force: index all of it, in one segment.
        optimizers=EdgeOptimizersConfig(indexing_threshold=1, default_segment_number=1) if indexed else None,
        # A shard holds one or two segments; handing their reads to a pool of threads cost more
        # (~0.1 ms a query) than reading them in turn, and a hook's search should use one core.
        max_search_threads=SEARCH_THREADS,
    )


MERGE_BATCH = 512

# Run by ``python -c`` before anything else, with the daemon's pid as the first argument. It arms
# PR_SET_PDEATHSIG (1) = SIGKILL, so the builder dies with the daemon, and only then compares its
# parent with that pid: if the daemon died before the signal was armed, the builder is already
# an orphan and exits. Started as ``-m clarity.store.edge_build``, the builder armed the signal
# only after importing the package (pydantic, the settings: a second or more on a busy machine),
# and read its "parent" after that: 32 of 100 ``kill -9``s of the daemon left it running for
# seconds. One line, so ``ps`` shows the builder on one line too.
LAUNCHER = (
    "import ctypes, os, signal, sys; "
    "sys.platform.startswith('linux') and ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL); "
    "os.getppid() == int(sys.argv.pop(1)) or os._exit(1); "
    "import runpy; runpy.run_module('clarity.store.edge_build', run_name='__main__', alter_sys=True)"
)


def builder_command(args: Sequence[str]) -> list[str]:
    """The argv that runs this module with ``args``, bound to the calling process's life.

    Linux sends the death signal when the *thread* that started the child ends, not the
    process: the caller must start it from a thread that outlives it (the daemon's build thread
    waits for it)."""
    return [sys.executable, "-c", LAUNCHER, str(os.getpid()), *args]


def build(
    path: str,
    dimension: int,
    m: int,
    ef_construct: int,
    full_scan_threshold: int,
    *,
    quantization: Quantization,
    sources: list[str] | None = None,
    payloads: str | None = None,
    skip: str | None = None,
) -> None:
    from qdrant_edge import EdgeShard

    threads = int(os.environ.get("CLARITY_BUILD_THREADS", "0"))
    config = shard_config(
        dimension,
        m,
        ef_construct,
        full_scan_threshold,
        quantization=quantization,
        indexed=True,
        threads=threads,
    )
    shard = EdgeShard.create(path, config)
    ensure_payload_indexes(shard)
    deleted: set[str] = set()
    if skip:
        with open(skip, encoding="utf-8") as handle:
            deleted = set(json.load(handle))
    for source in sources or []:
        copy_points(EdgeShard.load(source), shard, deleted)
    if payloads:
        with open(payloads, encoding="utf-8") as handle:
            set_payloads(shard, json.load(handle))
    shard.optimize()
    shard.flush()
    shard.close()


def ensure_payload_indexes(shard: Any) -> None:
    """Create the payload indexes that filters, ordering and facets need (clarity/store/base.py)
    and ``shard`` lacks: a build's new shard, or a shard made by an older version."""
    from qdrant_edge import PayloadSchemaType, UpdateOperation

    from clarity.store.base import PAYLOAD_INDEXES

    kinds = {"keyword": PayloadSchemaType.Keyword, "float": PayloadSchemaType.Float}
    indexed = shard.info().payload_schema
    for field_name, kind in PAYLOAD_INDEXES.items():
        if field_name not in indexed:
            shard.update(UpdateOperation.create_field_index(field_name, kinds[kind]))


def copy_points(source: Any, target: Any, skip: set[str] | None = None) -> None:
    """Every point of ``source`` but those in ``skip``, vectors and payload as stored, into
    ``target``; then close ``source``."""
    from qdrant_edge import Point, ScrollRequest, UpdateOperation

    offset = None
    while True:
        records, offset = source.scroll(
            ScrollRequest(offset=offset, limit=MERGE_BATCH, with_payload=True, with_vector=True)
        )
        points = [
            Point(record.id, record.vector, record.payload or {})
            for record in records
            if not skip or str(record.id) not in skip
        ]
        if points:
            target.update(UpdateOperation.upsert_points(points))
        if offset is None:
            break
    source.close()


def set_payloads(shard: Any, updates: dict[str, dict[str, Any]]) -> None:
    """Each payload onto its point, for the points ``shard`` holds."""
    from qdrant_edge import UpdateOperation

    ids = list(updates)
    for start in range(0, len(ids), MERGE_BATCH):
        found = shard.retrieve(ids[start : start + MERGE_BATCH], with_payload=False, with_vector=False)
        for record in found:
            point_id = str(record.id)
            shard.update(UpdateOperation.set_payload([point_id], updates[point_id]))


def _yield_cpu() -> None:
    """Use only CPU and disk time the daemon does not want: hooks matter more than an early index."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.nice(19)
    if sys.platform.startswith("linux") and os.uname().machine in ("x86_64", "aarch64"):
        import ctypes

        ioprio_set = 251 if os.uname().machine == "x86_64" else 30
        ioprio_class_idle, ioprio_who_process = 3, 1
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.syscall(ioprio_set, ioprio_who_process, 0, ioprio_class_idle << 13)


def _option(args: list[str], name: str) -> str | None:
    """Take ``name VALUE`` out of ``args``."""
    if name not in args[:-1]:
        return None
    at = args.index(name)
    value = args[at + 1]
    del args[at : at + 2]
    return value


def main(argv: list[str]) -> int:
    args = argv[1:]
    payloads, skip = _option(args, "--payloads"), _option(args, "--skip")
    if len(args) < 6 or args[5] not in QUANTIZATIONS:
        print(__doc__, file=sys.stderr)
        return 2
    _yield_cpu()
    dimension, m, ef_construct, full_scan_threshold = (int(arg) for arg in args[1:5])
    quantization = cast(Quantization, args[5])
    build(
        args[0],
        dimension,
        m,
        ef_construct,
        full_scan_threshold,
        quantization=quantization,
        sources=args[6:],
        payloads=payloads,
        skip=skip,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
