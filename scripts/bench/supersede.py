"""How well and how fast ``clarity.memory.supersede`` tells a new value from a compatible or a
different fact, on the labelled pairs in tests/fixtures/supersede/pairs.jsonl.

    .venv/bin/python scripts/bench/supersede.py [--repeat 200] [--misses] [--out results.json]

A pair is positive when labelled "supersede"; the detector's answer is positive when it returns
a verdict. Prints precision, recall and F1 for the whole set, its dev part (the pairs the rules
were written against) and its held-out part (written after the rules were frozen), then, per
label, how many pairs the detector flagged, then the per-pair latency (median and 99th
percentile over ``--repeat`` calls of every pair) and the 1-minute load. Precision below 0.95
on any part exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from clarity.memory.supersede import supersedes

PAIRS = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "supersede" / "pairs.jsonl"
PRECISION_FLOOR = 0.95
LABELS = ("supersede", "compatible", "different")


def load(path: Path = PAIRS) -> list[dict[str, str]]:
    """The labelled pairs, each with old, new, label, why and split."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for number, row in enumerate(rows, 1):
        if row.get("label") not in LABELS or row.get("split") not in ("dev", "held_out"):
            raise ValueError(f"{path}:{number}: label must be one of {LABELS}, split dev or held_out")
    return rows


def score(rows: list[dict[str, str]]) -> dict[str, Any]:
    """Precision, recall and F1 of the detector on ``rows``, and what it flagged per label."""
    flagged: Counter[str] = Counter()
    for row in rows:
        if supersedes(row["new"], row["old"]) is not None:
            flagged[row["label"]] += 1
    total = Counter(row["label"] for row in rows)
    tp = flagged["supersede"]
    fp = flagged["compatible"] + flagged["different"]
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / total["supersede"] if total["supersede"] else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "pairs": len(rows),
        "precision": round(precision, 3),
        "recall": round(recall, 3),
        "f1": round(f1, 3),
        "flagged": {label: f"{flagged[label]}/{total[label]}" for label in LABELS},
    }


def latency(rows: list[dict[str, str]], repeat: int) -> tuple[float, float]:
    """Median and 99th percentile of one ``supersedes`` call, in microseconds."""
    times = []
    for _ in range(repeat):
        for row in rows:
            started = time.perf_counter()
            supersedes(row["new"], row["old"])
            times.append((time.perf_counter() - started) * 1e6)
    times.sort()
    return statistics.median(times), times[int(0.99 * (len(times) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=200, help="calls of every pair for the latency")
    parser.add_argument("--misses", action="store_true", help="list the pairs it gets wrong")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    rows = load()
    parts = {
        "dev": [r for r in rows if r["split"] == "dev"],
        "held_out": [r for r in rows if r["split"] == "held_out"],
        "all": rows,
    }
    results: dict[str, Any] = {name: score(part) for name, part in parts.items()}
    print(f"{'part':<9} {'pairs':>5} {'precision':>9} {'recall':>6} {'F1':>5}   flagged per label")
    for name, figures in results.items():
        per_label = "  ".join(f"{label} {figures['flagged'][label]}" for label in LABELS)
        print(
            f"{name:<9} {figures['pairs']:>5} {figures['precision']:>9.3f} {figures['recall']:>6.3f}"
            f" {figures['f1']:>5.3f}   {per_label}"
        )
    if args.misses:
        for row in rows:
            verdict = supersedes(row["new"], row["old"])
            if (verdict is not None) != (row["label"] == "supersede"):
                print(f"  {row['split']:<8} {row['label']:<10} {row['old']!r} -> {row['new']!r}: {verdict}")
    p50, p99 = latency(rows, args.repeat)
    load_1m = round(os.getloadavg()[0], 2)
    results["latency_us"] = {"p50": round(p50, 1), "p99": round(p99, 1), "calls": len(rows) * args.repeat}
    results["load_1m"] = load_1m
    print(
        f"latency per pair: p50 {p50:.1f} µs, p99 {p99:.1f} µs ({len(rows) * args.repeat} calls); load {load_1m}"
    )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    below = [name for name in parts if results[name]["precision"] < PRECISION_FLOOR]
    if below:
        print(f"precision below {PRECISION_FLOOR} on: {', '.join(below)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
