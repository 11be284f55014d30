"""Retrieval quality on the LoCoMo development split: dense-only, lexical-only and Clarity's pipeline.

    .venv/bin/python scripts/bench/quality.py [--quick] [--data ../shared/bench/locomo-dev] [--out DIR]

As the split's README defines it: every turn is one memory (text prefixed with the speaker and
the session date), each conversation in its own scope; every question of categories 1-4 is asked
of its own conversation; recall@k = mean over questions of |evidence turns in the top k| /
|evidence turns|, MRR = mean reciprocal rank of the first evidence turn (0 if none in the top 10).
Turns go through MemoryService.store, so redaction, dedup and merging apply as in real use.
The three modes run in the same process over the same stored memories: dense-only (the model
alone, what a plain vector store gives), lexical-only (BM25 with IDF) and Clarity's full pipeline
(hybrid fusion plus rescoring). --quick takes the smallest conversation and its first 40
questions (a smoke test, not a figure to quote). Prints a table per mode and category; writes
bench-results/quality.json and quality.png.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from common import LOCOMO_DIR, machine, parser, progress, write_results
from rich.console import Console
from rich.table import Table

MODES = ("dense", "lexical", "hybrid")
CATEGORIES = (1, 2, 3, 4)


def turns_of(conversation: dict[str, Any]) -> list[tuple[str, str]]:
    """(dia_id, indexed text) for every turn, in order."""
    out = []
    session = 1
    while f"session_{session}" in conversation:
        date = conversation.get(f"session_{session}_date_time", "")
        for turn in conversation[f"session_{session}"]:
            text = turn["text"]
            if turn.get("blip_caption"):
                text += f" [shares a photo: {turn['blip_caption']}]"
            out.append((turn["dia_id"], f"[{date}] {turn['speaker']}: {text}"))
        session += 1
    return out


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--data", default=str(LOCOMO_DIR))
    args = p.parse_args()
    info = machine()
    started = time.perf_counter()
    from clarity.config import Settings
    from clarity.embedding import create_embedding_provider
    from clarity.memory import MemoryService
    from clarity.models import MemoryCreate, Source
    from clarity.requests import RetrieveRequest
    from clarity.store import open_store

    console = Console(stderr=True)
    files = sorted(Path(args.data).glob("*.json"))
    if not files:
        console.print(
            f"[red]error:[/] no LoCoMo conversations (*.json) in {args.data}; "
            "pass --data DIR or set LOCOMO_DEV_DIR"
        )
        raise SystemExit(2)
    if args.quick:  # the smallest conversation
        files = [min(files, key=lambda f: f.stat().st_size)]
    settings = Settings(storage={"root": tempfile.mkdtemp(prefix="clarity-quality-")})
    service = MemoryService(settings, open_store(settings), create_embedding_provider(settings.embedding))
    # Stores made before the model is loaded get their dense vectors later (the daemon's
    # backfill); a benchmark must compare the modes on complete vectors, so it waits.
    service.embedder.wait_ready(300)
    hits: dict[str, dict[int, list[tuple[float, float, float]]]] = {m: defaultdict(list) for m in MODES}
    merged = 0
    with progress(console) as bar:
        for path in files:
            conversation = json.loads(path.read_text())
            scope = f"locomo-{path.stem}"
            turns = turns_of(conversation)
            task = bar.add_task(f"storing {path.name}", total=len(turns))
            id_to_dia: dict[str, str] = {}
            for dia_id, text in turns:
                result = service.store(
                    MemoryCreate(
                        content=text, scope=scope, source=Source.import_, metadata={"dia_id": dia_id}
                    )
                )
                if result.status != "created":
                    merged += 1
                id_to_dia.setdefault(result.id, dia_id)
                bar.advance(task)
            questions = [
                q for q in conversation["qa"] if q.get("category") in CATEGORIES and q.get("evidence")
            ]
            if args.quick:
                questions = questions[:40]
            task = bar.add_task(f"asking {path.name}", total=len(questions))
            for question in questions:
                evidence = set(question["evidence"])
                for mode in MODES:
                    found = service.retrieve(
                        RetrieveRequest(query=question["question"][:4000], limit=10, scope=scope, mode=mode)
                    )
                    ranked = [id_to_dia.get(r.memory.id) for r in found.results]
                    r5 = len(evidence & set(ranked[:5])) / len(evidence)
                    r10 = len(evidence & set(ranked[:10])) / len(evidence)
                    first = next((i for i, d in enumerate(ranked) if d in evidence), None)
                    hits[mode][question["category"]].append(
                        (r5, r10, 0.0 if first is None else 1.0 / (first + 1))
                    )
                bar.advance(task)
    service_model = service.embedder.name.rsplit("/", 1)[-1]
    service.close()

    def mean(rows: list[tuple[float, float, float]], i: int) -> float:
        return round(sum(r[i] for r in rows) / len(rows), 4) if rows else 0.0

    report: dict[str, Any] = {
        "machine": info,
        "quick": args.quick,
        "conversations": [f.stem for f in files],
        "merged_turns": merged,
        "model": service_model,
        "modes": {},
    }
    table = Table(title="LoCoMo dev, categories 1-4 (recall@5 / recall@10 / MRR)")
    table.add_column("mode")
    for category in (*CATEGORIES, "all"):
        table.add_column(f"cat {category}" if category != "all" else "all", justify="right")
    for mode in MODES:
        rows = {c: hits[mode][c] for c in CATEGORIES}
        everything = [r for c in CATEGORIES for r in rows[c]]
        report["modes"][mode] = {
            str(c): {"n": len(v), "recall@5": mean(v, 0), "recall@10": mean(v, 1), "mrr": mean(v, 2)}
            for c, v in (*rows.items(), ("all", everything))
        }
        cells = [f"{mean(v, 0):.3f}/{mean(v, 1):.3f}/{mean(v, 2):.3f}" for v in (*rows.values(), everything)]
        table.add_row("clarity (hybrid)" if mode == "hybrid" else f"{mode}-only", *cells)
    Console(width=140).print(table)
    console.print(f"{merged} turns were deduplicated or merged into another memory")
    dense_all = report["modes"]["dense"]["all"]["recall@10"]
    hybrid_all = report["modes"]["hybrid"]["all"]["recall@10"]
    report["hybrid_minus_dense_recall@10_points"] = round(100 * (hybrid_all - dense_all), 2)
    report["seconds"] = round(time.perf_counter() - started, 1)
    console.print(
        f"full pipeline recall@10 {hybrid_all:.3f} vs dense-only {dense_all:.3f}: "
        f"{100 * (hybrid_all - dense_all):+.1f} points (target +5)"
    )
    write_results(args.out, "quality", report, lambda fig: plot(fig, report))


def plot(fig: Any, report: dict[str, Any]) -> None:
    import numpy as np

    groups = [*(str(c) for c in CATEGORIES), "all"]
    labels = {"dense": "dense-only", "lexical": "lexical-only", "hybrid": "Clarity (full pipeline)"}
    axes = fig.subplots(1, 2)
    for ax, metric in zip(axes, ("recall@10", "mrr"), strict=True):
        x = np.arange(len(groups))
        for j, mode in enumerate(MODES):
            values = [report["modes"][mode][g][metric] for g in groups]
            ax.bar(x + (j - 1) * 0.27, values, 0.27, label=labels[mode])
        ax.set_xticks(x, [f"cat {g}\n(n={report['modes']['dense'][g]['n']})" for g in groups], fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"LoCoMo dev {metric}, conversations {', '.join(report['conversations'])}", fontsize=9)
        ax.legend(fontsize=7)


if __name__ == "__main__":
    main()
