"""Ranking variants on both dev sets in seconds, cross-validated by fold: the yardstick behind
Clarity's fusion settings.

    .venv/bin/python scripts/bench/retrieval_cv.py [--context-chars 1000] [--out DIR]

``quality.py`` measures the product end to end (store, retrieve, every mode) in about 12
minutes; this measures ranking choices over the same cases in seconds, so that many can be
compared fold by fold. Every turn is embedded once with Clarity's own encoder (cached under
bench-results/cache), and BM25 is computed as Qdrant computes it: the document weights of
Clarity's ``LexicalEncoder`` times idf = ln(1 + (N - n + 0.5) / (n + 0.5)), but over the case's
documents, where the engine counts every memory of a shard (all scopes); ``quality_cv.py``
chooses on the product path itself when that difference matters (it hid a loss on
LongMemEval's turn recall@10 in round 2). Exact duplicates in a scope are one memory, as
``store_many`` stores them.

Each variant is reported as the mean ± std of its per-fold means and its lowest fold (LoCoMo: one
conversation per fold; LongMemEval: five folds by a hash of the question id), per category. Then
the nested choice: for each of the ten held-out folds of both sets, the variant of ``grid()`` with
the best mean metric over the other nine (each set weighted equally) is picked and only the
held-out fold's figures are kept, so no figure comes from a setting picked by looking at its own
fold. Clarity's defaults are the variant most of those choices agree on.
"""

from __future__ import annotations

import hashlib
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from common import CACHE_DIR, LOCOMO_DIR, machine, parser, write_results
from datasets import LONGMEMEVAL_DIR, Case, locomo_cases, longmemeval_cases
from quality import METRICS, score
from rich.console import Console

Ranker = Callable[["Prepared", int], Sequence[int]]
CANDIDATES = 30  # what MemoryService.retrieve asks the engine for at limit 10 (limit * 3)
DEPTH = 50  # RetrievalSettings.prefetch_limit: each side's ranking depth


@dataclass
class Prepared:
    """One case: its memories (unique texts), their turn keys and sessions, and per question the
    cosine and BM25 (plain and with the previous turn as lexical context) of every memory."""

    case: Case
    keys: list[set[str]]
    sessions: np.ndarray
    key_session: dict[str, str]
    cos: np.ndarray
    bm25: np.ndarray
    bm25_context: np.ndarray


def embed(texts: list[str], queries: bool, cache: Path) -> np.ndarray:
    """Clarity's encoder over ``texts`` (documents or queries), cached by a hash of the texts."""
    digest = hashlib.sha256(("q" if queries else "d").encode() + "\x00".join(texts).encode()).hexdigest()[:20]
    path = cache / f"cv-{digest}.npy"
    if path.exists():
        return np.load(path)
    from clarity.config import Settings
    from clarity.embedding import create_embedding_provider

    provider = create_embedding_provider(Settings().embedding)
    provider.wait_ready(300)
    if queries:
        vectors = np.asarray([provider.embed_query(t) for t in texts], dtype=np.float32)
    else:  # shortest first: batches of similar length pad least
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        parts = {}
        for start in range(0, len(order), 64):
            chunk = order[start : start + 64]
            for i, vector in zip(chunk, provider.embed_documents([texts[i] for i in chunk]), strict=True):
                parts[i] = vector
        vectors = np.asarray([parts[i] for i in range(len(texts))], dtype=np.float32)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def bm25(documents: list[str], queries: list[str]) -> np.ndarray:
    """Qdrant's BM25 with IDF over ``documents``: questions x documents."""
    from clarity.embedding import LexicalEncoder

    lexical = LexicalEncoder()
    columns: dict[int, int] = {}
    encoded = [lexical.document(d) for d in documents]
    for indices, _ in encoded:
        for term in indices:
            columns.setdefault(term, len(columns))
    matrix = np.zeros((len(documents), len(columns)), dtype=np.float32)
    for row, (indices, values) in enumerate(encoded):
        for term, value in zip(indices, values, strict=True):
            matrix[row, columns[term]] = value
    n = (matrix > 0).sum(axis=0)
    idf = np.log(1 + (len(documents) - n + 0.5) / (n + 0.5))
    weights = np.zeros((len(queries), len(columns)), dtype=np.float32)
    for row, query in enumerate(queries):
        for term, value in zip(*lexical.query(query), strict=True):
            if term in columns:
                weights[row, columns[term]] += value * idf[columns[term]]
    return weights @ matrix.T


def embedded(
    cases: list[Case], cache: Path
) -> tuple[list[list[str]], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Each case's distinct turn texts (redacted, as stored), and every text's and question's
    vector, embedded once across cases (the cache keeps them between runs)."""
    from clarity.redact import redact

    texts_of = [list(dict.fromkeys(redact(t.text) for t in case.turns)) for case in cases]
    all_texts = sorted({t for texts in texts_of for t in texts})
    all_queries = sorted({q.text for case in cases for q in case.questions})
    vectors = dict(zip(all_texts, embed(all_texts, False, cache), strict=True))
    query_vectors = dict(zip(all_queries, embed(all_queries, True, cache), strict=True))
    return texts_of, vectors, query_vectors


def prepare(cases: list[Case], cache: Path, context_chars: int) -> list[Prepared]:
    from clarity.redact import redact

    texts_of, vectors, query_vectors = embedded(cases, cache)
    prepared = []
    for case, texts in zip(cases, texts_of, strict=True):
        index = {text: i for i, text in enumerate(texts)}
        keys: list[set[str]] = [set() for _ in texts]
        session_of = [""] * len(texts)
        context: list[str | None] = [None] * len(texts)
        last: dict[str, str] = {}
        for turn in case.turns:
            text = redact(turn.text)
            i = index[text]
            if not keys[i]:  # first sight: the memory store_many creates
                session_of[i] = turn.session
                previous = last.get(turn.session)
                context[i] = previous[:context_chars] if previous and context_chars else None
            keys[i].add(turn.key)
            last[turn.session] = text
        questions = [q.text for q in case.questions]
        lexical_texts = [t if c is None else f"{t} {c}" for t, c in zip(texts, context, strict=True)]
        numbered = {s: n for n, s in enumerate(dict.fromkeys(session_of))}
        prepared.append(
            Prepared(
                case,
                keys,
                np.asarray([numbered[s] for s in session_of]),
                {t.key: t.session for t in case.turns},
                np.asarray([query_vectors[q] for q in questions]) @ np.asarray([vectors[t] for t in texts]).T,
                bm25(texts, questions),
                bm25(lexical_texts, questions),
            )
        )
    return prepared


def top(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values, best first (stable among ties)."""
    k = min(k, len(values))
    if k <= 0:
        return np.zeros(0, dtype=int)
    picked = np.argpartition(-values, k - 1)[:k]
    return picked[np.argsort(-values[picked], kind="stable")]


def sides(p: Prepared, q: int, context: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lexical = (p.bm25_context if context else p.bm25)[q]
    matched = int((lexical > 0).sum())
    return top(p.cos[q], DEPTH), top(lexical, min(DEPTH, matched)), lexical


def dense_only(p: Prepared, q: int) -> Sequence[int]:
    return top(p.cos[q], CANDIDATES)


def lexical_only(context: bool) -> Ranker:
    def rank(p: Prepared, q: int) -> Sequence[int]:
        return sides(p, q, context)[1][:CANDIDATES]

    return rank


def rrf(k: int = 10, weight: float = 1.0, context: bool = False) -> Ranker:
    """The fusion Clarity used before: weighted RRF, Qdrant's formula."""

    def rank(p: Prepared, q: int) -> Sequence[int]:
        dense, lexical, _ = sides(p, q, context)
        fused: dict[int, float] = defaultdict(float)
        for r, i in enumerate(dense):
            fused[i] += 1 / (k + r)
        for r, i in enumerate(lexical):
            fused[i] += 1 / ((r + 1) / weight + k - 1)
        return sorted(fused, key=lambda i: -fused[i])[:CANDIDATES]

    return rank


def fused(weight: float = 1.0, context: bool = False, session: float = 0.0, norm: str = "minmax") -> Ranker:
    """Score-level fusion: each side on 0..1 over its own top ``DEPTH`` ("minmax": best 1, last 0,
    as store.base.fuse_scores; "max": divided by the best), the lexical one weighted; then, among
    the ``CANDIDATES`` kept, the session term (memory.scoring.session_parts)."""

    def unit(values: np.ndarray, ranking: np.ndarray) -> dict[int, float]:
        if not len(ranking):
            return {}
        best, worst = float(values[ranking[0]]), float(values[ranking[-1]])
        if norm == "max":
            return {i: max(0.0, float(values[i])) / best if best > 0 else 0.0 for i in ranking}
        if best <= worst:
            return {i: 1.0 for i in ranking}
        return {i: (float(values[i]) - worst) / (best - worst) for i in ranking}

    def rank(p: Prepared, q: int) -> Sequence[int]:
        dense, lexical, scores = sides(p, q, context)
        total = unit(p.cos[q], dense)
        for i, value in unit(scores, lexical).items():
            total[i] = total.get(i, 0.0) + weight * value
        kept = sorted(total, key=lambda i: -total[i])[:CANDIDATES]
        if session and kept:
            best: dict[int, float] = {}
            for i in kept:
                best[p.sessions[i]] = max(best.get(p.sessions[i], 0.0), total[i])
            ceiling = total[kept[0]] or 1.0
            total = {i: total[i] + session * best[p.sessions[i]] / ceiling for i in kept}
            kept.sort(key=lambda i: -total[i])
        return kept

    return rank


def evaluate(prepared: list[Prepared], rank: Ranker) -> list[tuple[str, str, dict[str, float]]]:
    rows = []
    for p in prepared:
        for q, question in enumerate(p.case.questions):
            ranked = [p.keys[i] for i in list(rank(p, q))[:10]]
            rows.append((p.case.fold, question.category, score(question, ranked, p.key_session)))
    return rows


def summarise(rows: list[tuple[str, str, dict[str, float]]], metrics: tuple[str, ...]) -> dict[str, Any]:
    folds = sorted({f for f, _, _ in rows})
    categories = sorted({c for _, c, _ in rows})

    def means(selected: list[dict[str, float]]) -> dict[str, float]:
        return {m: round(statistics.fmean(r[m] for r in selected), 4) for m in metrics}

    per_fold = {f: means([r for fold, _, r in rows if fold == f]) for f in folds}
    return {
        "fold_spread": {
            m: {
                "mean": round(statistics.fmean(per_fold[f][m] for f in folds), 4),
                "std": round(statistics.pstdev([per_fold[f][m] for f in folds]), 4),
                "min": round(min(per_fold[f][m] for f in folds), 4),
            }
            for m in metrics
        },
        "folds": per_fold,
        "categories": {c: means([r for _, cat, r in rows if cat == c]) for c in categories},
    }


Rows = list[tuple[str, str, dict[str, float]]]


def nested(runs: dict[str, dict[str, Rows]]) -> tuple[dict[str, Rows], dict[str, str]]:
    """Held-out rows per dataset: for each of the folds of both sets, the variant whose mean
    metric over every other fold (the two sets weighted equally) is best; chosen by fold."""

    def fold_means(rows: Rows, dataset: str) -> dict[str, float]:
        folds = sorted({f for f, _, _ in rows})
        return {
            f: statistics.fmean(
                statistics.fmean(r[m] for fold, _, r in rows if fold == f) for m in METRICS[dataset]
            )
            for f in folds
        }

    means = {name: {d: fold_means(rows, d) for d, rows in sets.items()} for name, sets in runs.items()}
    held: dict[str, Rows] = {}
    chosen: dict[str, str] = {}
    datasets = list(next(iter(runs.values())))
    for dataset in datasets:
        held[dataset] = []
        for fold in next(iter(means.values()))[dataset]:

            def training(name: str, dataset: str = dataset, fold: str = fold) -> float:
                # Every other fold of every set; a set with no other fold (--quick) has no say.
                others = [
                    [v for f, v in means[name][d].items() if (d, f) != (dataset, fold)] for d in datasets
                ]
                return statistics.fmean(statistics.fmean(o) for o in others if o) if any(others) else 0.0

            best = max(runs, key=training)
            chosen[f"{dataset}:{fold}"] = best
            held[dataset] += [row for row in runs[best][dataset] if row[0] == fold]
    return held, chosen


def grid() -> dict[str, Ranker]:
    """What the nested choice picks from: the fusion before (RRF), max- and min-max-normalised sums,
    lexical weight, session weight, with and without the previous turn as lexical context."""
    out: dict[str, Ranker] = {}
    for context in (False, True):
        tail = " + previous turn" if context else ""
        for k in (5, 10, 20):
            for w in (0.5, 1.0, 2.0):
                out[f"RRF k={k} w={w}{tail}"] = rrf(k, w, context)
        for norm in ("max", "minmax"):
            for w in (0.5, 1.0, 1.5, 2.0):
                for s in (0.0, 0.5, 1.0):
                    out[f"{norm} w={w} session {s}{tail}"] = fused(w, context, s, norm)
    return out


def variants() -> dict[str, Ranker]:
    return {
        "dense-only": dense_only,
        "lexical-only (BM25)": lexical_only(False),
        "lexical-only + previous turn": lexical_only(True),
        "RRF k=10 (before)": rrf(),
        "RRF k=10 + previous turn": rrf(context=True),
        "max-normalised sum w=2": fused(2.0, norm="max"),
        "max-normalised sum w=2 + previous turn": fused(2.0, True, norm="max"),
        "max-normalised w=2 + previous turn + session 1": fused(2.0, True, 1.0, norm="max"),
        "min-max sum w=1": fused(1.0),
        "min-max w=1 + previous turn + session 0.5": fused(1.0, True, 0.5),
        "min-max w=1 + session 0.5 (Clarity)": fused(1.0, False, 0.5),
    }


def show(console: Console, dataset: str, name: str, summary: dict[str, Any]) -> None:
    metrics = METRICS[dataset]
    spread = summary["fold_spread"]
    cells = "  ".join(
        f"{spread[m]['mean']:.3f} ± {spread[m]['std']:.3f} ({spread[m]['min']:.3f})" for m in metrics
    )
    console.print(f"  {name:52s} {cells}")
    console.print(
        "      per category: "
        + "; ".join(
            f"{c}: " + "/".join(f"{v:.3f}" for v in values.values())
            for c, values in summary["categories"].items()
        )
    )


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--data", default=str(LOCOMO_DIR), help="the LoCoMo dev split")
    p.add_argument("--longmemeval", default=str(LONGMEMEVAL_DIR), help="the LongMemEval dev split")
    p.add_argument("--context-chars", type=int, default=1000, help="cap on the previous turn's text")
    p.add_argument("--cache", default=str(CACHE_DIR), help="where embeddings are cached")
    args = p.parse_args()
    console = Console(width=200)
    report: dict[str, Any] = {"machine": machine(), "context_chars": args.context_chars, "datasets": {}}
    runs: dict[str, dict[str, Rows]] = {}
    for dataset in ("locomo", "longmemeval"):
        cases = (
            locomo_cases(Path(args.data), args.quick)
            if dataset == "locomo"
            else longmemeval_cases(Path(args.longmemeval), args.quick)
        )
        prepared = prepare(cases, Path(args.cache), args.context_chars)
        results = {
            name: summarise(evaluate(prepared, rank), METRICS[dataset]) for name, rank in variants().items()
        }
        for name, rank in grid().items():
            runs.setdefault(name, {})[dataset] = evaluate(prepared, rank)
        report["datasets"][dataset] = results
    held, chosen = nested(runs)
    for dataset, results in report["datasets"].items():
        results["nested choice (both sets' training folds)"] = summarise(held[dataset], METRICS[dataset])
        console.print(f"[bold]{dataset}[/] ({', '.join(METRICS[dataset])}): fold mean ± std (lowest fold)")
        for name, summary in results.items():
            show(console, dataset, name, summary)
    report["nested_choices"] = chosen
    console.print(f"nested choices by held-out fold: {chosen}")
    write_results(args.out, "retrieval_cv", report, None)


if __name__ == "__main__":
    main()
