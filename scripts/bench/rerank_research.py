"""A learned reranking stage over the fused candidates, cross-validated on both dev sets: does it
lift LoCoMo recall@10 towards 0.80 without losing on LongMemEval, on every fold?

    .venv/bin/python scripts/bench/rerank_research.py [--pool 30] [--quick] [--out DIR]

The candidates are the best round-2 fusion's kept list (``retrieval_round2``: the previous turn,
when under 250 characters, in the lexical text, BM25 avg_len 40, lexical weight 1.25, credit
0.2 from the next turn among the kept, session term 0.5), in its order. Each candidate gets
features from what the engine returns and the payloads hold (each side's top 50 with scores and
ranks, the session, the neighbouring turns when they are candidates too) and, in the ``all``
set, what would need more than that (the neighbours' cosines and a BM25 over the turn alone),
its position, the question's form and what it shares with the question. Two models, both with
hyperparameters fixed before looking (no grid): a logistic regression over standardised
features, and LightGBM LambdaRank (optional: a package the project does not depend on; the
variants are left out when it is missing). Each is trained three ways for every held-out fold:

- ``same``: the other folds of the same set (LoCoMo: the other four conversations; LongMemEval:
  the other four hash folds of ``datasets.longmemeval_fold``);
- ``both``: those plus the whole other set, each set weighted equally;
- ``other``: the other set alone (the transfer figure: the project is measured on data it has
  not seen).

Figures are fold mean ± std (lowest fold) and, per metric, the folds >= the round-2 fusion, as
``retrieval_round2`` prints them, plus per category, and the cost per question of the feature
computation and of the model (µs, one thread; LambdaRank also exported to ONNX when onnxmltools
is at hand) beside the one-minute load.

What it found (2026-12-05, load 2-4): with ``--pool 50`` and every feature, LambdaRank reaches
LoCoMo recall@10 0.808 trained on LoCoMo alone and 0.804 trained on both sets (every fold above
round 2's 0.768), but loses LongMemEval session recall@5 (0.913 vs 0.940 trained on both) and
does not carry over from one set to the other (LongMemEval-trained on LoCoMo: 0.753;
LoCoMo-trained on LongMemEval: MRR 0.628 vs 0.738); at pool 30 the best is 0.794.
"""

from __future__ import annotations

import math
import os
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import retrieval_round2
from common import CACHE_DIR, LOCOMO_DIR, machine, parser, write_results
from datasets import LONGMEMEVAL_DIR, locomo_cases, longmemeval_cases
from quality import METRICS
from retrieval_cv import DEPTH, Rows, evaluate, summarise, top
from retrieval_round2 import Case2, V, prepare, rank_with, unit
from rich.console import Console

BASE = V()  # Clarity today
BEST = V(lexical="prev<250@avg40", weight=1.25, propagate_kept=0.2)  # round 2's best
PREFIX = re.compile(r"^\[[^\]]*\]\s*[^:\n]{1,60}:\s*")  # "[date] speaker: ", the benchmark's framing
WORD = re.compile(r"[a-z0-9]+")
NAME = re.compile(r"\b[A-Z][a-z]+\b")
TIME = re.compile(
    r"\b(?:january|february|march|april|may|june|july|august|september|october|november|december"
    r"|monday|tuesday|wednesday|thursday|friday|saturday|sunday|yesterday|today|tomorrow|tonight"
    r"|weekend|ago|last (?:week|month|year|night|time)|next (?:week|month|year)|(?:19|20)\d\d"
    r"|\d+ (?:days?|weeks?|months?|years?))\b"
)
TEMPORAL_QUERY = {"when", "ago", "last", "first", "before", "after", "recent", "recently", "since", "until"}
STOP = frozenset(
    re.findall(
        r"\S+",
        "a an the and or but of to in on at for with from by about as is are was were be been being do does did"
        " have has had i you he she it we they me my your his her its our their this that these those what"
        " when where who whom which why how there here not no yes so if then than too very can could would"
        " should will shall may might must just also any some all more most other such only own same s t"
        " am im ive dont",
    )
)
YESNO = ("is ", "are ", "was ", "were ", "did ", "does ", "do ", "has ", "have ", "can ", "would ", "will ")
CORE = (
    "base_recip",
    "base_rank",
    "dense_unit",
    "lex_unit",
    "fused",
    "cos",
    "cos_gap",
    "dense_rank",
    "lex_rank",
    "bm25_rel",
    "sess_best",
    "sess_count",
    "sess_rank",
    "prev_in",
    "next_in",
    "next_lex_in",
)
EXTRA = (
    "plain_rel",
    "ctx_minus_plain",
    "prev_cos",
    "next_cos",
    "prev_plain",
    "next_plain",
    "pos_in_session",
    "session_order",
    "log_len",
    "has_qmark",
    "cand_time",
    "cand_number",
    "q_when",
    "q_what",
    "q_who",
    "q_where",
    "q_how_many",
    "q_how",
    "q_why",
    "q_which",
    "q_yesno",
    "q_len",
    "q_number",
    "q_temporal",
    "overlap",
    "rare_shared",
    "num_shared",
    "name_shared",
    "when_x_time",
    "howmany_x_number",
)
# How a set is written rather than whether a turn answers: in the LoCoMo-trained and the
# LongMemEval-trained logistic models these weigh in opposite directions (length +0.46 / -0.78,
# a question mark -0.35 / +0.21, a name of the question -0.33 / +0.18, standardised).
CONVENTIONS = ("log_len", "has_qmark", "q_len", "pos_in_session", "session_order", "name_shared")
FEATURES = {
    "core": CORE,
    "all": CORE + EXTRA,
    "portable": CORE + tuple(n for n in EXTRA if n not in CONVENTIONS),
}
# Groups an ablation leaves out: "all-plain-query" is every feature but those of both groups.
GROUPS = {
    "plain": ("plain_rel", "ctx_minus_plain", "prev_plain", "next_plain"),
    "neighbours": ("prev_cos", "next_cos", "prev_plain", "next_plain"),
    "place": ("pos_in_session", "session_order"),
    "query": (*(n for n in EXTRA if n.startswith("q_")), "when_x_time", "howmany_x_number"),
    "text": ("log_len", "has_qmark", "cand_time", "cand_number", "when_x_time", "howmany_x_number"),
    "shared": ("overlap", "rare_shared", "num_shared", "name_shared"),
}


def feature_names(spec: str) -> tuple[str, ...]:
    """A FEATURES entry, optionally minus GROUPS: "all-query-text"."""
    base, *dropped = spec.split("-")
    gone = {n for g in dropped for n in GROUPS[g]}
    return tuple(n for n in FEATURES[base] if n not in gone)


@dataclass
class Engine:
    """What the engine hands the reranker for one question: each side's top ``DEPTH`` ranking
    (memory indices, best first) and the fused candidates in the fusion's order."""

    dense: np.ndarray
    lexical: np.ndarray
    pool: list[int]


@dataclass
class Layout:
    """Per case, what store time could keep in each memory's payload: its place in its session
    and its session's place in time, and from its text without the benchmark's "[date] speaker:"
    framing its words, whether it holds a time expression, a digit or a question mark, and its
    length. A question then costs set lookups, not a pass over texts of up to 20,000 characters
    (LongMemEval, pool 30: 8-9 ms a question with that pass at load 8, 0.4-0.6 ms without it at
    load 3-5)."""

    position: np.ndarray  # 0 first turn of its session .. 1 last
    session_order: np.ndarray  # 0 oldest session .. 1 newest
    words: list[frozenset[str]]
    has_time: np.ndarray
    has_number: np.ndarray
    has_qmark: np.ndarray
    log_len: np.ndarray


def layout(p: Case2) -> Layout:
    """The ``Layout`` of a case (timed per memory as the store-time cost)."""
    length = np.zeros(len(p.texts))
    index = np.zeros(len(p.texts))
    for i in range(len(p.texts)):
        j, n = int(p.previous[i]), 0
        while j >= 0:
            j, n = int(p.previous[j]), n + 1
        index[i] = n
    for s in np.unique(p.sessions):
        members = p.sessions == s
        length[members] = index[members].max() + 1
    sessions = max(1, int(p.sessions.max()))
    content = [PREFIX.sub("", t, count=1) for t in p.texts]
    return Layout(
        index / np.maximum(1, length - 1),
        p.sessions / sessions,
        [frozenset(WORD.findall(c.lower())) for c in content],
        np.asarray([bool(TIME.search(c.lower())) for c in content], dtype=float),
        np.asarray([any(ch.isdigit() for ch in c) for c in content], dtype=float),
        np.asarray(["?" in c for c in content], dtype=float),
        np.asarray([math.log1p(len(c)) for c in content]),
    )


def engine(p: Case2, q: int, rank: Callable[[Case2, int], Sequence[int]]) -> Engine:
    lexical = p.lex(BEST.lexical)[q]
    return Engine(
        top(p.cos[q], DEPTH),
        top(lexical, min(DEPTH, int((lexical > 0).sum()))),
        [int(i) for i in rank(p, q)],
    )


def query_features(text: str) -> tuple[dict[str, float], set[str], set[str], set[str]]:
    """The question's form (question word, length, numbers, time words) and its content terms,
    numbers and capitalised names (not the first word)."""
    lower = text.lower().strip()
    words = WORD.findall(lower)
    first = words[0] if words else ""
    terms = {w for w in words if w not in STOP and len(w) > 1}
    numbers = {w for w in words if w.isdigit()}
    names = {n.lower() for n in NAME.findall(text)[1:] if n.lower() not in STOP}
    form = {
        "q_when": float("when" in words),
        "q_what": float(first == "what" or "what" in words[:3]),
        "q_who": float("who" in words[:3]),
        "q_where": float("where" in words),
        "q_how_many": float("how many" in lower or "how much" in lower or "how long" in lower),
        "q_how": float(first == "how"),
        "q_why": float("why" in words[:3]),
        "q_which": float("which" in words[:3]),
        "q_yesno": float(lower.startswith(YESNO) or " would " in lower[:40]),
        "q_len": math.log1p(len(words)),
        "q_number": float(bool(numbers)),
        "q_temporal": float(bool(TEMPORAL_QUERY & set(words))),
    }
    return form, terms, numbers, names


def features(p: Case2, lay: Layout, q: int, eng: Engine, names: Sequence[str]) -> np.ndarray:
    """One row per candidate (``eng.pool`` order), the columns ``names``: computed per question
    from the engine's lists and the fields ``layout`` keeps per memory. This is what the cost
    figure times (the top-50 lists and the pool are the engine's work and are not timed)."""
    full = len(names) > len(CORE)
    cos = p.cos[q]
    dense_unit = unit(cos, eng.dense)
    lexical_scores = p.lex(BEST.lexical)[q]
    lex_unit = unit(lexical_scores, eng.lexical)
    dense_rank = {int(i): r for r, i in enumerate(eng.dense)}
    lex_rank = {int(i): r for r, i in enumerate(eng.lexical)}
    pool = eng.pool
    inside = set(pool)
    fused = {i: dense_unit.get(i, 0.0) + BEST.weight * lex_unit.get(i, 0.0) for i in pool}
    best_fused = max(fused.values(), default=0.0) or 1.0
    session_best: dict[int, float] = {}
    session_count: dict[int, int] = {}
    for i in pool:
        s = int(p.sessions[i])
        session_best[s] = max(session_best.get(s, 0.0), fused[i])
        session_count[s] = session_count.get(s, 0) + 1
    session_rank = {s: r for r, s in enumerate(sorted(session_best, key=lambda s: -session_best[s]))}
    max_cos = float(cos[eng.dense[0]]) if len(eng.dense) else 1.0
    max_bm25 = float(lexical_scores[eng.lexical[0]]) if len(eng.lexical) else 0.0
    k = len(pool)
    rows: list[dict[str, float]] = []
    if full:
        plain = p.lex("plain")[q]
        max_plain = max((float(plain[i]) for i in pool), default=0.0) or 1.0
        form, terms, numbers, qnames = query_features(p.question_texts[q])
        tokens = [lay.words[i] for i in pool]
        spread: dict[str, int] = {}
        for t in tokens:
            for w in t & terms:
                spread[w] = spread.get(w, 0) + 1
    for r, i in enumerate(pool):
        s = int(p.sessions[i])
        prev, nxt = int(p.previous[i]), int(p.following[i])
        row = {
            "base_recip": 1.0 / (1 + r),
            "base_rank": r / k,
            "dense_unit": dense_unit.get(i, 0.0),
            "lex_unit": lex_unit.get(i, 0.0),
            "fused": fused[i],
            "cos": float(cos[i]),
            "cos_gap": max_cos - float(cos[i]),
            "dense_rank": dense_rank.get(i, DEPTH) / DEPTH,
            "lex_rank": lex_rank.get(i, DEPTH) / DEPTH,
            "bm25_rel": float(lexical_scores[i]) / max_bm25 if max_bm25 > 0 else 0.0,
            "sess_best": session_best[s] / best_fused,
            "sess_count": session_count[s] / k,
            "sess_rank": 1.0 / (1 + session_rank[s]),
            "prev_in": fused[prev] if prev in inside else 0.0,
            "next_in": fused[nxt] if nxt in inside else 0.0,
            "next_lex_in": lex_unit.get(nxt, 0.0) if nxt in inside else 0.0,
        }
        if full:
            words = tokens[r]
            shared = words & terms
            cand_time = float(lay.has_time[i])
            cand_number = float(lay.has_number[i])
            plain_rel = float(plain[i]) / max_plain
            row.update(form)
            row.update(
                {
                    "plain_rel": plain_rel,
                    "ctx_minus_plain": row["bm25_rel"] - plain_rel,
                    "prev_cos": float(cos[prev]) if prev >= 0 else 0.0,
                    "next_cos": float(cos[nxt]) if nxt >= 0 else 0.0,
                    "prev_plain": float(plain[prev]) / max_plain if prev >= 0 else 0.0,
                    "next_plain": float(plain[nxt]) / max_plain if nxt >= 0 else 0.0,
                    "pos_in_session": float(lay.position[i]),
                    "session_order": float(lay.session_order[i]),
                    "log_len": float(lay.log_len[i]),
                    "has_qmark": float(lay.has_qmark[i]),
                    "cand_time": cand_time,
                    "cand_number": cand_number,
                    "overlap": len(shared) / len(terms) if terms else 0.0,
                    "rare_shared": float(sum(1 for w in shared if spread[w] <= 2)),
                    "num_shared": float(bool(numbers & words)),
                    "name_shared": float(bool(qnames & words)),
                    "when_x_time": form["q_when"] * cand_time,
                    "howmany_x_number": form["q_how_many"] * cand_number,
                }
            )
        rows.append(row)
    return np.asarray([[row[n] for n in names] for row in rows], dtype=np.float64)


@dataclass
class Table:
    """Every question of one set: its candidates' features and labels, its fold, where it is."""

    dataset: str
    X: list[np.ndarray]
    y: list[np.ndarray]
    folds: list[str]
    where: list[tuple[int, int]]  # (case index, question index)
    pools: list[list[int]]


def build(
    dataset: str, prepared: list[Case2], names: Sequence[str], pool: int
) -> tuple[Table, dict[str, float]]:
    """The table of a set, the mean cost per question of ``features`` and per memory of what
    store time would precompute (``layout``), in µs."""
    retrieval_round2.CANDIDATES = pool  # the kept list's length (30 = limit x 3 in the product)
    rank = rank_with(BEST)
    table = Table(dataset, [], [], [], [], [])
    spent = stored = 0.0
    memories = 0
    for ci, p in enumerate(prepared):
        started = time.perf_counter()
        lay = layout(p)
        stored += time.perf_counter() - started
        memories += len(p.texts)
        for q, question in enumerate(p.case.questions):
            eng = engine(p, q, rank)
            started = time.perf_counter()
            x = features(p, lay, q, eng, names)
            spent += time.perf_counter() - started
            table.X.append(x)
            table.y.append(np.asarray([float(bool(p.keys[i] & question.evidence)) for i in eng.pool]))
            table.folds.append(p.case.fold)
            table.where.append((ci, q))
            table.pools.append(eng.pool)
    retrieval_round2.CANDIDATES = 30
    return table, {"question": spent / max(1, len(table.X)) * 1e6, "memory": stored / max(1, memories) * 1e6}


Scorer = Callable[[np.ndarray], np.ndarray]


def fit_logistic(X: np.ndarray, y: np.ndarray, w: np.ndarray, groups: list[int]) -> Scorer:
    """L2 logistic regression (C=1) on standardised features; returns a plain linear scorer (the
    weights folded back onto the raw features), which is what would ship."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=1.0, max_iter=2000).fit((X - mean) / scale, y, sample_weight=w)
    coef = model.coef_[0] / scale
    return lambda Z: Z @ coef


def fit_lambdarank(X: np.ndarray, y: np.ndarray, w: np.ndarray, groups: list[int]) -> Scorer:
    """LightGBM LambdaRank, fixed before looking: 200 trees of 15 leaves, learning rate 0.05, at
    least 40 rows a leaf, row and column subsampling 0.8, one thread."""
    import lightgbm

    model = lightgbm.LGBMRanker(
        objective="lambdarank",
        n_estimators=200,
        learning_rate=0.05,
        num_leaves=15,
        min_child_samples=40,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        reg_lambda=1.0,
        num_threads=1,
        random_state=0,
        verbose=-1,
    )
    model.fit(X, y, group=groups, sample_weight=w)
    booster = model.booster_

    def score(Z: np.ndarray) -> np.ndarray:
        return np.asarray(booster.predict(Z, num_threads=1))

    score.booster = booster  # type: ignore[attr-defined]  # for predict_cost's ONNX export
    return score


MODELS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray, list[int]], Scorer]] = {
    "logistic": fit_logistic,
    "lambdarank": fit_lambdarank,
}


def training(tables: dict[str, Table], picks: dict[str, Callable[[str], bool]]) -> tuple[Any, ...]:
    """Stack the chosen questions of each set (``picks[dataset](fold)``), each set weighted
    equally in total, each question equally within its set."""
    X, y, w, groups = [], [], [], []
    for dataset, pick in picks.items():
        t = tables[dataset]
        chosen = [n for n, f in enumerate(t.folds) if pick(f)]
        for n in chosen:
            X.append(t.X[n])
            y.append(t.y[n])
            w.append(np.full(len(t.y[n]), 1.0 / len(chosen)))
            groups.append(len(t.y[n]))
    if not X:
        return np.zeros((0, 0)), np.zeros(0), np.zeros(0), groups
    weights = np.concatenate(w)
    return np.vstack(X), np.concatenate(y), weights / weights.mean(), groups


def learned_rows(
    tables: dict[str, Table],
    prepared: dict[str, list[Case2]],
    fit: Callable[[np.ndarray, np.ndarray, np.ndarray, list[int]], Scorer],
    regime: str,
) -> tuple[dict[str, Rows], dict[str, Scorer]]:
    """Held-out rows of both sets under ``regime`` (same / both / other), and the models used."""
    out: dict[str, Rows] = {}
    models: dict[str, Scorer] = {}
    for dataset, table in tables.items():
        other = next(d for d in tables if d != dataset)
        order: dict[tuple[int, int], list[int]] = {}
        for fold in sorted(set(table.folds)):
            picks: dict[str, Callable[[str], bool]] = {}
            if regime != "other":
                picks[dataset] = other_than(fold)
            if regime != "same":
                picks[other] = every
            key = f"{dataset}:{'*' if regime == 'other' else fold}"
            if key not in models:
                stacked = training(tables, picks)
                # --quick keeps one LoCoMo fold: nothing to learn from, the fusion's order stays.
                models[key] = fit(*stacked) if len(stacked[1]) else keep_order
            for n, f in enumerate(table.folds):
                if f == fold:
                    scores = models[key](table.X[n])
                    pool = table.pools[n]
                    ci, q = table.where[n]
                    ranked = [pool[j] for j in np.argsort(-scores, kind="stable")]
                    order[(id(prepared[dataset][ci]), q)] = ranked

        def ranker(p: Any, q: int, order: dict[tuple[int, int], list[int]] = order) -> list[int]:
            return order[(id(p), q)]

        out[dataset] = evaluate(prepared[dataset], ranker)  # type: ignore[arg-type]
    return out, models


def keep_order(x: np.ndarray) -> np.ndarray:
    return -np.arange(len(x), dtype=float)


def other_than(fold: str) -> Callable[[str], bool]:
    return lambda f: f != fold


def every(fold: str) -> bool:
    return True


def predict_cost(fit: Callable[..., Scorer], table: Table) -> dict[str, float]:
    """µs per question (median) of the model alone, trained on the whole table; for LambdaRank
    also through onnxruntime (a dependency already) when onnxmltools is at hand to convert it."""
    scorer = fit(*training({table.dataset: table}, {table.dataset: every}))
    out = {"model": median_us(scorer, table.X)}
    booster = getattr(scorer, "booster", None)
    if booster is not None:
        try:
            import onnxruntime
            from onnxmltools import convert_lightgbm
            from onnxmltools.convert.common.data_types import FloatTensorType
        except ImportError:
            return out
        columns = table.X[0].shape[1]
        onx = convert_lightgbm(
            booster, initial_types=[("x", FloatTensorType([None, columns]))], target_opset=15, zipmap=False
        )
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            onx.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        out["onnx"] = median_us(lambda x: session.run(None, {"x": x.astype(np.float32)})[0], table.X)
        out["onnx_bytes"] = float(len(onx.SerializeToString()))
    return out


def median_us(scorer: Scorer, inputs: list[np.ndarray]) -> float:
    spent = []
    for x in inputs:
        started = time.perf_counter()
        scorer(x)
        spent.append(time.perf_counter() - started)
    return statistics.median(spent) * 1e6


def line(name: str, summaries: dict[str, dict[str, Any]], reference: dict[str, dict[str, Any]]) -> str:
    parts = []
    for dataset, s in summaries.items():
        cells = []
        for m in METRICS[dataset]:
            sp = s["fold_spread"][m]
            folds = s["folds"]
            agree = sum(folds[f][m] >= reference[dataset]["folds"][f][m] - 1e-9 for f in folds)
            cells.append(f"{sp['mean']:.3f}±{sp['std']:.3f}({sp['min']:.3f}){agree}/{len(folds)}")
        parts.append(" ".join(cells))
    return f"  {name:34s} L: {' | M: '.join(parts)}"


def categories(summaries: dict[str, dict[str, Any]]) -> str:
    return "; ".join(
        f"{c}: " + "/".join(f"{v:.3f}" for v in values.values())
        for c, values in summaries["locomo"]["categories"].items()
    )


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--data", default=str(LOCOMO_DIR))
    p.add_argument("--longmemeval", default=str(LONGMEMEVAL_DIR))
    p.add_argument("--cache", default=str(CACHE_DIR))
    p.add_argument("--pool", type=int, default=30, help="candidates reranked (the fusion's kept list)")
    p.add_argument("--features", default="core,all", help="feature sets: core, all")
    p.add_argument("--models", default="logistic,lambdarank")
    p.add_argument("--regimes", default="same,both,other", help="training regimes: same, both, other")
    args = p.parse_args()
    console = Console(width=230)
    try:
        import lightgbm  # noqa: F401
    except ImportError:
        MODELS.pop("lambdarank")
    prepared = {
        "locomo": prepare(locomo_cases(Path(args.data), args.quick), Path(args.cache)),
        "longmemeval": prepare(longmemeval_cases(Path(args.longmemeval), args.quick), Path(args.cache)),
    }
    report: dict[str, Any] = {"machine": machine(), "pool": args.pool, "variants": {}, "cost_us": {}}
    summaries: dict[str, dict[str, dict[str, Any]]] = {}
    for name, v in (("Clarity today", BASE), ("round-2 best", BEST)):
        summaries[name] = {
            d: summarise(evaluate(ps, rank_with(v)), METRICS[d])  # type: ignore[arg-type]
            for d, ps in prepared.items()
        }
    reference = summaries["round-2 best"]
    console.print(f"load {os.getloadavg()[0]:.2f}; pool {args.pool}; fold mean±std(lowest) folds>=round-2")
    for name in summaries:
        console.print(line(name, summaries[name], reference))
        console.print(f"      LoCoMo per category: {categories(summaries[name])}")
    for feature_set in args.features.split(","):
        names = feature_names(feature_set)
        tables, cost = {}, {}
        for d, ps in prepared.items():
            tables[d], cost[d] = build(d, ps, names, args.pool)
        report["cost_us"][f"features {feature_set} pool {args.pool}"] = cost
        positives = {d: statistics.fmean(float(y.any()) for y in t.y) for d, t in tables.items()}
        console.print(
            f"[bold]features {feature_set}[/] ({len(names)}): "
            + " / ".join(f"{c['question']:.0f}" for c in cost.values())
            + " µs a question, "
            + " / ".join(f"{c['memory']:.0f}" for c in cost.values())
            + f" µs a memory at store time (LoCoMo / LongMemEval), load {os.getloadavg()[0]:.2f}; "
            f"questions with evidence in the pool {positives}"
        )
        for model_name in args.models.split(","):
            if model_name not in MODELS:
                continue
            fit = MODELS[model_name]
            cost_key = f"{model_name} {feature_set} pool {args.pool}"
            report["cost_us"][cost_key] = predict_cost(fit, tables["locomo"])
            for regime in args.regimes.split(","):
                rows, _ = learned_rows(tables, prepared, fit, regime)
                name = f"{model_name} {feature_set} {regime}"
                summaries[name] = {d: summarise(r, METRICS[d]) for d, r in rows.items()}
                console.print(line(name, summaries[name], reference))
                console.print(f"      LoCoMo per category: {categories(summaries[name])}")
                console.print(
                    "      LongMemEval per type: "
                    + "; ".join(
                        f"{c}: " + "/".join(f"{v:.3f}" for v in values.values())
                        for c, values in summaries[name]["longmemeval"]["categories"].items()
                    )
                )
            console.print(
                f"      {model_name} predict, µs a question (median): {report['cost_us'][cost_key]}, "
                f"load {os.getloadavg()[0]:.2f}"
            )
    report["variants"] = summaries
    write_results(args.out, "rerank_research", report, None)


if __name__ == "__main__":
    main()
