"""Child process that builds one indexed segment from copies of sealed shards.

``EdgeShard.optimize()`` holds the GIL for its whole run (about a minute at 100k points), so it
must never run inside the daemon. The daemon copies the frozen shards, runs this module on the
copies with a lower CPU priority, and swaps the result in when it exits 0 (``builder.py``).

The result is a new shard at SHARD_DIR into which the points of every SOURCE_DIR are upserted, in
the order given (a point in two of them keeps its last copy), then indexed. A new shard rather
than a copy of one: a shard's WAL and payload pages keep the text of the points deleted from it,
and a deleted memory's text must leave the disk.

Usage:
    python -m clarity.store.edge.child SHARD_DIR DIMENSION M EF_CONSTRUCT FULL_SCAN_THRESHOLD
        QUANTIZATION SOURCE_DIR [SOURCE_DIR ...] [--skip FILE]

QUANTIZATION is ``int8`` (keep an int8 copy of the dense vectors for the graph walk) or ``none``.
``--skip`` names a JSON list of point ids deleted meanwhile (tombstones): they are not copied.

The daemon starts it through ``builder_command`` (``builder.py``), never as above: see there.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any, cast

from qdrant_edge import EdgeShard, Point, ScrollRequest, SparseVector, UpdateOperation

from clarity.embedding.lexical import LexicalEncoder, is_current
from clarity.store.base import LEXICAL
from clarity.store.edge.shard import QUANTIZATIONS, Quantization, ensure_payload_indexes, shard_config

MERGE_BATCH = 512


def build(
    path: str,
    dimension: int,
    m: int,
    ef_construct: int,
    full_scan_threshold: int,
    *,
    quantization: Quantization,
    sources: list[str] | None = None,
    skip: str | None = None,
) -> None:
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
    shard.optimize()
    shard.flush()
    shard.close()


def copy_points(source: Any, target: Any, skip: set[str] | None = None) -> None:
    """Every point of ``source`` but those in ``skip``, vectors and payload as stored, into
    ``target``; then close ``source``. A point whose lexical vector an older encoding made is
    re-encoded from its payload on the way (``clarity.embedding.lexical``): a build is how the
    embedded engine brings its indexed segments to the current encoding without moving their
    points out of the index (``Writer.reencode_lexical``)."""
    offset = None
    encoder: LexicalEncoder | None = None
    while True:
        records, offset = source.scroll(
            ScrollRequest(offset=offset, limit=MERGE_BATCH, with_payload=True, with_vector=True)
        )
        points = []
        for record in records:
            if skip and str(record.id) in skip:
                continue
            vector, payload = record.vector, record.payload or {}
            if not is_current(payload):
                encoder = encoder or LexicalEncoder()
                fresh, payload = encoder.reencode(payload)
                # A point stored without a lexical vector (the team server's) keeps none.
                stored = vector.get(LEXICAL) if isinstance(vector, dict) else None
                if len(getattr(stored, "indices", ())):
                    vector = {**vector, LEXICAL: SparseVector(*fresh)}
            points.append(Point(record.id, vector, payload))
        if points:
            target.update(UpdateOperation.upsert_points(points))
        if offset is None:
            break
    source.close()


def _yield_cpu() -> None:
    """Take CPU and disk time mostly when the daemon and the user's programs do not want it.

    SCHED_BATCH at nice 10 (weight 110 against a normal process's 1024) and the lowest
    best-effort I/O level: on a quiet machine a build still takes a whole idle core; next to the
    daemon on a shared core it gets about a tenth; and on a machine kept busy by other programs it
    still progresses. SCHED_IDLE (and the idle I/O class) did not: with two CPU hogs running, a
    600-point build had not finished after 120 s, so deleted text waited for its purge for as
    long as the machine stayed busy; and an unprivileged process cannot leave SCHED_IDLE later.
    """
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))  # no wake-up preemption of others
    with contextlib.suppress(OSError):
        os.nice(10)
    if sys.platform.startswith("linux") and os.uname().machine in ("x86_64", "aarch64"):
        import ctypes

        ioprio_set = 251 if os.uname().machine == "x86_64" else 30
        ioprio_class_best_effort, lowest_level, ioprio_who_process = 2, 7, 1
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.syscall(ioprio_set, ioprio_who_process, 0, (ioprio_class_best_effort << 13) | lowest_level)


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
    skip = _option(args, "--skip")
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
        skip=skip,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
