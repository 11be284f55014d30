"""Retrieval quality on both dev sets, per fold: dense-only, lexical-only and Clarity's pipeline.

    .venv/bin/python scripts/bench/quality.py [--quick] [--datasets locomo,longmemeval] [--out DIR]

As each split's README defines it (scripts/bench/datasets.py builds the cases):
- LoCoMo dev: every turn is one memory (speaker and session date before the text), each
  conversation in its own scope; every question of categories 1-4 is asked of its own
  conversation. recall@k = mean over questions of |evidence turns in the top k| / |evidence
  turns|; MRR = mean reciprocal rank of the first evidence turn (0 if none in the top 10). A fold
  is a conversation (leave one conversation out).
- LongMemEval dev: every turn of a question's haystack is one memory (role and session date
  before the text, the session as the memory's session), in a scope of its own; the question is
  the query. Session recall@5 = answer sessions among the top 5 turns' sessions / answer
  sessions; turn recall@10 = evidence turns in the top 10 / evidence turns. Five folds by a hash
  of the question id.

Turns go through MemoryService.store_many, so redaction, dedup and merging apply as in real use (a
turn merged into another counts wherever that memory ranks), with the default settings: "lexical-
only" is the pipeline's lexical side as it is (scripts/bench/retrieval_cv.py measures the ranking
variants, the previous turn as lexical context among them, in seconds). The three modes run in the same
process over the same stored memories. Every figure is given per category (question type), over
all questions, and as the mean and spread of the per-fold means: a change is kept only when the
folds agree. --quick: the smallest LoCoMo conversation's first 40 questions and the two smallest
LongMemEval haystacks (a smoke test, not a figure to quote).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from common import LOCOMO_DIR, machine, parser, progress, write_results
from datasets import LONGMEMEVAL_DIR, Case, Question, locomo_cases, longmemeval_cases
from rich.console import Console
from rich.table import Table

MODES = ("dense", "lexical", "hybrid")
MODE_NAMES = {"dense": "dense-only", "lexical": "lexical-only", "hybrid": "clarity (pipeline)"}
METRICS = {
    "locomo": ("recall@5", "recall@10", "mrr"),
    "longmemeval": ("session_recall@5", "recall@10", "mrr"),
}
CHUNK = 128  # memories per store_many call, as `clarity import` sends


def score(question: Question, ranked: list[set[str]], sessions: dict[str, str]) -> dict[str, float]:
    """The metrics of one question, given each result's turn keys in rank order."""
    found5 = set().union(*ranked[:5]) if ranked else set()
    found10 = set().union(*ranked[:10]) if ranked else set()
    first = next((i for i, keys in enumerate(ranked[:10]) if keys & question.evidence), None)
    out = {
        "recall@5": len(question.evidence & found5) / len(question.evidence),
        "recall@10": len(question.evidence & found10) / len(question.evidence),
        "mrr": 0.0 if first is None else 1.0 / (first + 1),
    }
    if question.sessions:
        top_sessions = {sessions[key] for key in found5}
        out["session_recall@5"] = len(question.sessions & top_sessions) / len(question.sessions)
    return out


def store_case(service: Any, case: Case) -> tuple[dict[str, set[str]], dict[str, str]]:
    """Store the case's turns: each memory id's turn keys, and each turn's session."""
    from clarity.models import MemoryCreate, Source

    keys_of: dict[str, set[str]] = defaultdict(set)
    for start in range(0, len(case.turns), CHUNK):
        chunk = case.turns[start : start + CHUNK]
        requests = [
            MemoryCreate(content=t.text, scope=case.scope, source=Source.import_, session_id=t.session[:200])
            for t in chunk
        ]
        for turn, result in zip(chunk, service.store_many(requests), strict=True):
            keys_of[result.id].add(turn.key)
    return keys_of, {turn.key: turn.session for turn in case.turns}


def run_case(service: Any, case: Case) -> list[tuple[str, str, str, dict[str, float]]]:
    """Store the case's turns, ask its questions in every mode: (mode, fold, category, metrics)."""
    from clarity.requests import RetrieveRequest

    keys_of, sessions = store_case(service, case)
    rows = []
    for question in case.questions:
        for mode in MODES:
            found = service.retrieve(
                RetrieveRequest(query=question.text, limit=10, scope=case.scope, mode=mode)
            )
            ranked = [keys_of.get(r.memory.id, set()) for r in found.results]
            rows.append((mode, case.fold, question.category, score(question, ranked, sessions)))
    return rows


def summarise(rows: list[tuple[str, str, str, dict[str, float]]], metrics: tuple[str, ...]) -> dict[str, Any]:
    """Per mode: per category and overall means over questions, and per-fold means with their mean,
    standard deviation and minimum."""

    def means(selected: list[dict[str, float]]) -> dict[str, float]:
        return {m: round(sum(r[m] for r in selected) / len(selected), 4) for m in metrics} | {
            "n": len(selected)
        }

    out: dict[str, Any] = {}
    for mode in MODES:
        mine = [(fold, category, r) for m, fold, category, r in rows if m == mode]
        categories = sorted({c for _, c, _ in mine})
        folds = sorted({f for f, _, _ in mine})
        per_fold = {f: means([r for fold, _, r in mine if fold == f]) for f in folds}
        spread = {}
        for metric in metrics:
            values = [per_fold[f][metric] for f in folds]
            spread[metric] = {
                "mean": round(statistics.fmean(values), 4),
                "std": round(statistics.pstdev(values), 4),
                "min": round(min(values), 4),
            }
        out[mode] = {
            "all": means([r for _, _, r in mine]),
            "categories": {c: means([r for _, cat, r in mine if cat == c]) for c in categories},
            "folds": per_fold,
            "fold_spread": spread,
        }
    return out


def paired(
    ours: list[dict[str, float]],
    theirs: list[dict[str, float]],
    folds: list[str],
    metrics: tuple[str, ...],
    rounds: int = 2000,
) -> dict[str, dict[str, Any]]:
    """Per metric, one mode against another question by question (the same questions in the same
    order): the questions it wins, loses and ties, the difference of the mean of fold means, and a
    95% interval of that difference (questions resampled within their fold, a fixed seed).

    Why: LongMemEval dev has 5 to 14 questions a fold, so one evidence turn at rank 11 instead of
    10 moves a fold's recall@10 by up to 0.2 and the mean of the folds by 0.04 (its turn recall@10
    with the round-2 settings: 0.871 against 0.890 for lexical-only, 5 questions won and 5 lost). A
    difference whose interval holds 0 is within what the split can tell apart."""
    rng = np.random.default_rng(0)
    groups = [np.flatnonzero(np.asarray(folds) == fold) for fold in sorted(set(folds))]
    out = {}
    for metric in metrics:
        diff = np.asarray([a[metric] - b[metric] for a, b in zip(ours, theirs, strict=True)])
        boot = np.mean(
            [diff[g][rng.integers(0, len(g), (rounds, len(g)))].mean(axis=1) for g in groups], axis=0
        )
        low, high = np.percentile(boot, [2.5, 97.5])
        out[metric] = {
            "won": int((diff > 0).sum()),
            "lost": int((diff < 0).sum()),
            "tied": int((diff == 0).sum()),
            "difference": round(float(np.mean([diff[g].mean() for g in groups])), 4),
            "ci95": [round(float(low), 4), round(float(high), 4)],
        }
    return out


def print_tables(console: Console, dataset: str, summary: dict[str, Any]) -> None:
    metrics = METRICS[dataset]
    categories = list(summary["hybrid"]["categories"])
    table = Table(title=f"{dataset} dev ({' / '.join(metrics)}), per category over questions")
    table.add_column("mode")
    for category in [*categories, "all"]:
        n = (
            summary["hybrid"]["categories"][category]["n"]
            if category != "all"
            else summary["hybrid"]["all"]["n"]
        )
        table.add_column(f"{category} (n={n})", justify="right")
    for mode in MODES:
        cells = [summary[mode]["categories"][c] for c in categories] + [summary[mode]["all"]]
        table.add_row(MODE_NAMES[mode], *("/".join(f"{cell[m]:.3f}" for m in metrics) for cell in cells))
    console.print(table)
    folds = Table(title=f"{dataset} dev, per-fold means: mean ± std (lowest fold)")
    folds.add_column("mode")
    for metric in metrics:
        folds.add_column(metric, justify="right")
    for mode in MODES:
        spread = summary[mode]["fold_spread"]
        folds.add_row(
            MODE_NAMES[mode],
            *(f"{spread[m]['mean']:.3f} ± {spread[m]['std']:.3f} ({spread[m]['min']:.3f})" for m in metrics),
        )
    console.print(folds)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--data", default=str(LOCOMO_DIR), help="the LoCoMo dev split")
    p.add_argument("--longmemeval", default=str(LONGMEMEVAL_DIR), help="the LongMemEval dev split")
    p.add_argument(
        "--datasets", default=None, help="locomo, longmemeval or both (default: each one that is there)"
    )
    args = p.parse_args()
    info = machine()
    started = time.perf_counter()
    from clarity.config import Settings
    from clarity.embedding import create_embedding_provider
    from clarity.memory import MemoryService
    from clarity.store import open_store

    console = Console(stderr=True)
    wanted = {name.strip() for name in (args.datasets or "locomo,longmemeval").split(",") if name.strip()}
    cases: dict[str, list[Case]] = {}
    if "locomo" in wanted:
        cases["locomo"] = locomo_cases(Path(args.data), args.quick)
    if "longmemeval" in wanted:
        cases["longmemeval"] = longmemeval_cases(Path(args.longmemeval), args.quick)
    missing = [name for name, found in cases.items() if not found]
    if missing and args.datasets is None and len(missing) < len(cases):
        console.print(f"[yellow]note:[/] {', '.join(missing)} dev split not found; measuring the others")
        cases = {name: found for name, found in cases.items() if found}
        missing = []
    if missing or not cases:
        console.print(
            f"[red]error:[/] no cases for {', '.join(missing) or args.datasets}; pass --data / --longmemeval "
            "or set LOCOMO_DEV_DIR / LONGMEMEVAL_DEV_DIR"
        )
        raise SystemExit(2)
    settings = Settings(storage={"root": tempfile.mkdtemp(prefix="clarity-quality-")})
    service = MemoryService(settings, open_store(settings), create_embedding_provider(settings.embedding))
    # Stores made before the model is loaded get their dense vectors later (the daemon's
    # backfill); a benchmark must compare the modes on complete vectors, so it waits.
    service.embedder.wait_ready(300)
    report: dict[str, Any] = {
        "machine": info,
        "quick": args.quick,
        "model": service.embedder.identity,
        "datasets": {},
    }
    out = Console(width=160)
    with progress(console) as bar:
        for dataset, dataset_cases in cases.items():
            rows: list[tuple[str, str, str, dict[str, float]]] = []
            task = bar.add_task(f"{dataset}: storing and asking", total=len(dataset_cases))
            for case in dataset_cases:
                rows += run_case(service, case)
                bar.advance(task)
            summary = summarise(rows, METRICS[dataset])
            report["datasets"][dataset] = {
                "cases": len(dataset_cases),
                "folds": sorted({c.fold for c in dataset_cases}),
                "modes": summary,
                "pipeline_vs_lexical": paired(
                    [r for mode, _, _, r in rows if mode == "hybrid"],
                    [r for mode, _, _, r in rows if mode == "lexical"],
                    [fold for mode, fold, _, _ in rows if mode == "hybrid"],
                    METRICS[dataset],
                ),
            }
            print_tables(out, dataset, summary)
    service.close()
    report["seconds"] = round(time.perf_counter() - started, 1)
    for dataset, result in report["datasets"].items():
        modes = result["modes"]
        metrics = METRICS[dataset]
        beats = all(
            modes["hybrid"][view][m] > modes["lexical"][view][m]
            if view == "all"
            else modes["hybrid"][view][m]["mean"] > modes["lexical"][view][m]["mean"]
            for m in metrics
            for view in ("all", "fold_spread")
        )
        folds = modes["hybrid"]["folds"]
        won = {m: sum(folds[f][m] > modes["lexical"]["folds"][f][m] for f in folds) for m in metrics}
        result["pipeline_beats_lexical"] = {"every_metric": beats, "folds_won": won, "folds": len(folds)}
        console.print(
            f"{dataset}: the pipeline {'beats' if beats else 'does NOT beat'} its lexical side on every metric "
            f"(over questions and fold means); folds won of {len(folds)}: "
            + ", ".join(f"{m} {n}" for m, n in won.items())
        )
        console.print(
            f"{dataset}: pipeline - lexical-only, questions won/lost, difference of fold means [95% interval]: "
            + "; ".join(
                f"{m} {c['won']}/{c['lost']}, {c['difference']:+.3f} [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]"
                for m, c in result["pipeline_vs_lexical"].items()
            )
        )
    write_results(args.out, "quality", report, lambda fig: plot(fig, report))


def plot(fig: Any, report: dict[str, Any]) -> None:
    import numpy as np

    datasets = list(report["datasets"])
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    for ax, dataset in zip(axes, datasets, strict=True):
        modes = report["datasets"][dataset]["modes"]
        metrics = METRICS[dataset]
        x = np.arange(len(metrics))
        for j, mode in enumerate(MODES):
            spread = modes[mode]["fold_spread"]
            ax.bar(
                x + (j - 1) * 0.27,
                [spread[m]["mean"] for m in metrics],
                0.27,
                yerr=[spread[m]["std"] for m in metrics],
                label=MODE_NAMES[mode],
            )
        ax.set_xticks(x, metrics, fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"{dataset} dev: mean of fold means ± std", fontsize=9)
        ax.legend(fontsize=7)


if __name__ == "__main__":
    main()
