"""quality.py's paired comparison of two modes: the counts and the interval that say whether a
difference of fold means is more than a question or two on a small split."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts" / "bench"))

from quality import paired


def test_one_question_in_a_small_fold_is_within_noise() -> None:
    # Fold "a": 10 questions, the pipeline wins one; fold "b": 5 questions, it loses one.
    ours = [{"recall@10": 1.0}] * 10 + [{"recall@10": 0.0}] + [{"recall@10": 1.0}] * 4
    theirs = [{"recall@10": 1.0}] * 9 + [{"recall@10": 0.0}] + [{"recall@10": 1.0}] * 5
    folds = ["a"] * 10 + ["b"] * 5
    result = paired(ours, theirs, folds, ("recall@10",))["recall@10"]
    assert (result["won"], result["lost"], result["tied"]) == (1, 1, 13)
    # Fold means: a +0.1, b -0.2; their mean -0.05, but either sign is possible.
    assert result["difference"] == -0.05
    low, high = result["ci95"]
    assert low < 0 < high


def test_a_consistent_gain_has_an_interval_above_zero() -> None:
    ours = [{"mrr": 1.0}] * 8 + [{"mrr": 0.5}] * 2
    theirs = [{"mrr": 0.5}] * 10
    result = paired(ours, theirs, ["a"] * 5 + ["b"] * 5, ("mrr",))["mrr"]
    assert (result["won"], result["lost"]) == (8, 0)
    assert result["ci95"][0] > 0
    assert result["ci95"][0] <= result["difference"] <= result["ci95"][1]
