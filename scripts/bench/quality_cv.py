"""Fusion settings chosen by nested cross-validation on the product path itself: quality.py's
store and retrieve, many retrieval settings per question.

    .venv/bin/python scripts/bench/quality_cv.py [--avg-lens 40,64] [--quick] [--out DIR]

``retrieval_cv.py`` and ``retrieval_round2.py`` rank from matrices in seconds, but compute BM25's
IDF per case; the product computes it over a shard (every scope the shard holds, here all of
quality.py's cases stored so far) and puts each shard's lexical ranking on 0..1 on its own
(``store.edge.reads.fuse_shard_answers``). That difference decided which side won LongMemEval's
turn recall@10. This script keeps the product's numbers: the cases go through
``MemoryService.store_many`` in quality.py's order into one store, and every question is asked
through ``MemoryService.retrieve`` right after its case is stored, once in the dense and lexical
modes and once per variant of the retrieval settings (``--grid``). What differs from quality.py:
document and question vectors come from the encoder cache ``retrieval_cv.py`` fills (the same
encoder; a text missing from it is embedded by the model), and index builds are waited for after
each case, so a run is deterministic. BM25's ``avg_len`` is a store-time setting, so each value
of ``--avg-lens`` is a store of its own.

The choice: for each of the ten held-out folds of both sets, the variant whose mean metric over
the other nine folds (both sets weighted equally) is best among the variants that are at least
their own lexical side on every metric of both sets over those nine folds (if none is, the one
whose worst margin is largest). Only the held-out folds' figures are reported, per category, as
the mean and spread of the fold means. Each variant's paired comparison with its lexical side
(``quality.paired``) is in the JSON.

What it showed (2026-12-05, the round-2 settings as default): the default reproduces quality.py
cell for cell (dense and pipeline every fold and metric; lexical-only within 0.006 on two LoCoMo
folds, ties of equal BM25). No grid (``GRIDS``: weights, the lexical side by its best score,
depth, the session term down to off; BM25 avg_len 40/64/256) gave a choice that keeps the
pipeline at or above its lexical side on LongMemEval's turn recall@10 on held-out folds. Over all
folds, the variants at or above it on all six metrics cost elsewhere: at avg_len 40, LoCoMo
recall@10 about 0.01 (weight 2, session 0.25: 0.757); at 64, LongMemEval session recall@5 0.03
(0.905); at 256, LongMemEval MRR 0.06-0.08. The default's loss there
(0.871 against 0.890) is 5 questions won and 5 lost, difference -0.019 [-0.118, +0.069]: one
evidence turn at rank 11 instead of 10 in a 5-question fold.
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from common import CACHE_DIR, LOCOMO_DIR, machine, parser, progress, write_results
from datasets import LONGMEMEVAL_DIR, Case, locomo_cases, longmemeval_cases
from quality import METRICS, paired, score, store_case
from retrieval_cv import Rows, embedded, nested, summarise
from rich.console import Console

Variant = dict[str, Any]
# What each grid varies (RetrievalSettings fields, and "lexical_norm": how a shard's lexical
# ranking is put on 0..1, "minmax" as the product does or "max", divided by its best score).
GRIDS: dict[str, dict[str, tuple[Any, ...]]] = {
    "none": {},
    "weights": {
        "lexical_weight": (0.75, 1.0, 1.25, 1.5, 2.0),
        "session_weight": (0.25, 0.5, 0.75),
        "next_turn_weight": (0.0, 0.2, 0.4),
    },
    "norm": {
        "lexical_norm": ("minmax", "max"),
        "lexical_weight": (1.0, 1.25, 1.5, 2.0),
        "session_weight": (0.25, 0.5),
        "next_turn_weight": (0.2, 0.4),
    },
    "depth": {
        "prefetch_limit": (30, 50, 75, 100),
        "lexical_weight": (1.25, 1.5, 2.0),
        "session_weight": (0.25, 0.5),
        "next_turn_weight": (0.2, 0.4),
    },
    "session": {"session_weight": (0.0, 0.1, 0.25, 0.5), "next_turn_weight": (0.0, 0.2, 0.4)},
}
SHORT = {
    "lexical_weight": "w",
    "session_weight": "s",
    "next_turn_weight": "next",
    "prefetch_limit": "depth",
    "lexical_norm": "norm",
}


def grid(name: str) -> dict[str, Variant]:
    """The variants of a ``GRIDS`` entry by name; "default" is the settings as they are."""
    axes = GRIDS[name]
    out: dict[str, Variant] = {"default": {}}
    for values in itertools.product(*axes.values()) if axes else ():
        variant = dict(zip(axes, values, strict=True))
        out[" ".join(f"{SHORT[k]}={v}" for k, v in variant.items())] = variant
    return out


def by_best(ranking: Any) -> Iterator[tuple[float, Any]]:
    """A shard's lexical ranking divided by its best score (``on_unit_scale`` puts it best-to-last)."""
    best = ranking[0].score if ranking else 0.0
    return ((max(0.0, p.score) / best if best > 0 else 1.0, p) for p in ranking)


class CachedVectors:
    """Vectors of the encoder cache in front of the real model: ``embed_documents`` and
    ``embed_query`` answer from the cache and ask the model for what it lacks."""

    def __init__(self, provider: Any, documents: dict[str, np.ndarray], queries: dict[str, np.ndarray]):
        self.provider = provider
        self.documents = documents
        self.queries = queries
        self.misses = 0
        self._documents = provider.embed_documents
        self._query = provider.embed_query
        provider.embed_documents = self.embed_documents
        provider.embed_query = self.embed_query

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        missing = [t for t in texts if t not in self.documents]
        if missing:
            self.misses += len(missing)
            for text, vector in zip(missing, self._documents(missing), strict=True):
                self.documents[text] = np.asarray(vector, dtype=np.float32)
        return [self.documents[t].tolist() for t in texts]

    def embed_query(self, text: str) -> list[float]:
        if text not in self.queries:
            self.misses += 1
            self.queries[text] = np.asarray(self._query(text), dtype=np.float32)
        return self.queries[text].tolist()


def asked(
    service: Any, case: Case, variants: dict[str, Variant]
) -> Iterator[tuple[str, tuple[str, str, dict[str, float]]]]:
    """(variant or mode, row) for every question of a stored case."""
    from clarity.requests import RetrieveRequest
    from clarity.store.base import on_unit_scale
    from clarity.store.edge import reads

    keys_of, sessions = store_case(service, case)
    service.db.wait_for_index()

    base = service.settings.retrieval
    for question in case.questions:
        runs = [("dense-only", "dense", {}), ("lexical-only", "lexical", {})]
        runs += [(name, "hybrid", overrides) for name, overrides in variants.items()]
        for name, mode, variant in runs:
            overrides = {k: v for k, v in variant.items() if k != "lexical_norm"}
            reads.on_unit_scale = by_best if variant.get("lexical_norm") == "max" else on_unit_scale
            service.settings.retrieval = base.model_copy(update=overrides)
            found = service.retrieve(
                RetrieveRequest(query=question.text, limit=10, scope=case.scope, mode=mode), track_use=False
            )
            ranked = [keys_of.get(r.memory.id, set()) for r in found.results]
            yield name, (case.fold, question.category, score(question, ranked, sessions))
    service.settings.retrieval = base
    reads.on_unit_scale = on_unit_scale


def measure(
    cases: dict[str, list[Case]],
    avg_len: float,
    variants: dict[str, Variant],
    vectors: CachedVectors,
    console: Console,
) -> dict[str, dict[str, Rows]]:
    """Rows per variant (and mode) per dataset over one fresh store, BM25 at ``avg_len``."""
    from clarity.config import Settings
    from clarity.embedding import lexical
    from clarity.memory import MemoryService
    from clarity.store import open_store

    lexical.BM25_AVG_LEN = avg_len  # read when the service's encoder is made
    settings = Settings(storage={"root": tempfile.mkdtemp(prefix="clarity-quality-cv-")})
    service = MemoryService(settings, open_store(settings), vectors.provider)
    runs: dict[str, dict[str, Rows]] = {}
    with progress(console) as bar:
        for dataset, dataset_cases in cases.items():
            task = bar.add_task(f"avg_len {avg_len:g}, {dataset}", total=len(dataset_cases))
            for case in dataset_cases:
                for name, row in asked(service, case, variants):
                    runs.setdefault(name, {}).setdefault(dataset, []).append(row)
                bar.advance(task)
    service.close()
    return runs


def fold_means(rows: Rows, metric: str, exclude: str | None = None) -> float:
    """The mean over folds (all but ``exclude``) of a metric's per-fold means."""
    folds = sorted({f for f, _, _ in rows} - {exclude})
    return statistics.fmean(statistics.fmean(r[metric] for f, _, r in rows if f == fold) for fold in folds)


def constrained(
    runs: dict[str, dict[str, Rows]], lexical_of: dict[str, str]
) -> tuple[dict[str, Rows], dict[str, Rows], dict[str, str]]:
    """The nested choice of the module docstring: held-out rows of the pipeline and of the
    chosen variants' lexical sides, per dataset, and the choice per held-out fold."""
    datasets = list(next(iter(runs.values())))
    held: dict[str, Rows] = {d: [] for d in datasets}
    held_lexical: dict[str, Rows] = {d: [] for d in datasets}
    chosen: dict[str, str] = {}
    candidates = [name for name in runs if name in lexical_of]
    for dataset in datasets:
        for fold in sorted({f for f, _, _ in runs[candidates[0]][dataset]}):

            def training(name: str, dataset: str = dataset, fold: str = fold) -> tuple[bool, float, float]:
                lexical = runs[lexical_of[name]]
                margins, means = [], []
                for d in datasets:
                    left_out = fold if d == dataset else None
                    if left_out is not None and len({f for f, _, _ in runs[name][d]}) < 2:
                        continue  # a set with no other fold (--quick) has no say
                    ours = [fold_means(runs[name][d], m, left_out) for m in METRICS[d]]
                    theirs = [fold_means(lexical[d], m, left_out) for m in METRICS[d]]
                    margins += [a - b for a, b in zip(ours, theirs, strict=True)]
                    means.append(statistics.fmean(ours))
                worst = min(margins, default=0.0)
                return worst >= 0, statistics.fmean(means) if means else 0.0, worst

            def key(name: str) -> tuple[bool, float]:
                ok, mean, worst = training(name)
                return (ok, mean if ok else worst)

            best = max(candidates, key=key)
            chosen[f"{dataset}:{fold}"] = best
            held[dataset] += [row for row in runs[best][dataset] if row[0] == fold]
            held_lexical[dataset] += [row for row in runs[lexical_of[best]][dataset] if row[0] == fold]
    return held, held_lexical, chosen


def line(summary: dict[str, Any], metrics: tuple[str, ...]) -> str:
    spread = summary["fold_spread"]
    return "  ".join(
        f"{spread[m]['mean']:.3f} ± {spread[m]['std']:.3f} ({spread[m]['min']:.3f})" for m in metrics
    )


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--data", default=str(LOCOMO_DIR), help="the LoCoMo dev split")
    p.add_argument("--longmemeval", default=str(LONGMEMEVAL_DIR), help="the LongMemEval dev split")
    p.add_argument("--cache", default=str(CACHE_DIR), help="the encoder cache of retrieval_cv.py")
    p.add_argument("--avg-lens", default="40", help="BM25 avg_len values, each a store of its own")
    p.add_argument("--grid", default="weights", choices=sorted(GRIDS), help="which settings to vary")
    args = p.parse_args()
    console = Console(stderr=True)
    out = Console(width=200)
    started = time.perf_counter()
    info = machine()
    from clarity.config import Settings
    from clarity.embedding import create_embedding_provider

    cases = {
        "locomo": locomo_cases(Path(args.data), args.quick),
        "longmemeval": longmemeval_cases(Path(args.longmemeval), args.quick),
    }
    documents: dict[str, np.ndarray] = {}
    queries: dict[str, np.ndarray] = {}
    for dataset_cases in cases.values():
        _, docs, qs = embedded(dataset_cases, Path(args.cache))
        documents |= docs
        queries |= qs
    provider = create_embedding_provider(Settings().embedding)
    provider.wait_ready(300)
    vectors = CachedVectors(provider, documents, queries)
    variants = grid(args.grid)
    runs: dict[str, dict[str, Rows]] = {}
    lexical_of: dict[str, str] = {}
    for avg_len in (float(a) for a in args.avg_lens.split(",")):
        for name, sets in measure(cases, avg_len, variants, vectors, console).items():
            tagged = f"avg_len {avg_len:g}: {name}"
            runs[tagged] = sets
            if name not in ("dense-only", "lexical-only"):
                lexical_of[tagged] = f"avg_len {avg_len:g}: lexical-only"
    report: dict[str, Any] = {"machine": info, "quick": args.quick, "encoder_misses": vectors.misses}
    report["variants"] = {
        name: {d: summarise(rows, METRICS[d]) for d, rows in sets.items()} for name, sets in runs.items()
    }
    for dataset in cases:
        out.print(f"[bold]{dataset}[/] ({' / '.join(METRICS[dataset])}): fold mean ± std (lowest fold)")
        for name, sets in report["variants"].items():
            out.print(f"  {name:44s} {line(sets[dataset], METRICS[dataset])}")
    held, held_lexical, chosen = constrained(runs, lexical_of)
    free, free_chosen = nested({name: runs[name] for name in lexical_of})
    report["nested"] = {
        "pipeline": {d: summarise(rows, METRICS[d]) for d, rows in held.items()},
        "its lexical side": {d: summarise(rows, METRICS[d]) for d, rows in held_lexical.items()},
        "choices": chosen,
        "unconstrained": {d: summarise(rows, METRICS[d]) for d, rows in free.items()},
        "unconstrained_choices": free_chosen,
    }
    for dataset in cases:
        metrics = METRICS[dataset]
        out.print(f"[bold]{dataset}, held-out folds[/] ({' / '.join(metrics)})")
        for label in ("pipeline", "its lexical side", "unconstrained"):
            summary = report["nested"][label][dataset]
            out.print(f"  {label:44s} {line(summary, metrics)}")
            out.print(
                "      per category: "
                + "; ".join(
                    f"{c}: " + "/".join(f"{v:.3f}" for v in cell.values())
                    for c, cell in summary["categories"].items()
                )
            )
    report["paired"] = {}
    for name, sets in runs.items():
        if name in lexical_of:
            report["paired"][name] = {
                d: paired(
                    [r for _, _, r in rows],
                    [r for _, _, r in runs[lexical_of[name]][d]],
                    [f for f, _, _ in rows],
                    METRICS[d],
                )
                for d, rows in sets.items()
            }
    for name in [n for n in runs if n.endswith(": default")]:
        for d, cells in report["paired"][name].items():
            out.print(
                f"{name}, {d}: against its lexical side, questions won/lost, difference [95% interval]: "
                + "; ".join(
                    f"{m} {c['won']}/{c['lost']} {c['difference']:+.3f} [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]"
                    for m, c in cells.items()
                )
            )
    out.print(f"choices by held-out fold: {chosen}")
    out.print(f"unconstrained choices: {free_chosen}")
    report["seconds"] = round(time.perf_counter() - started, 1)
    out.print(
        f"encoder misses {vectors.misses}, {report['seconds']} s, load at start {info.get('load_at_start')}"
    )
    write_results(args.out, "quality_cv", report, None)


if __name__ == "__main__":
    main()
