"""Second round of ranking variants over both dev sets, fold by fold, beside Clarity's current
fusion (min-max dense + 1.0 x lexical over each side's top 50, session term 0.5).

    .venv/bin/python scripts/bench/retrieval_round2.py [--only FAMILY,...] [--extra EXPR] [--out DIR]
    .venv/bin/python scripts/bench/retrieval_round2.py --only final      # the grid behind the choice
    .venv/bin/python scripts/bench/retrieval_round2.py --only none \
        --extra '{"chosen": V(lexical="prev<250@avg40", weight=1.25, propagate_kept=0.2)}'

Same cases, encoder cache and metrics as ``retrieval_cv.py``; adds per memory its neighbours in
its session and its vector, and BM25 over other lexical texts (IDF per case, as in
``retrieval_cv.py``; ``quality_cv.py`` has the engine's shard-wide IDF): a ``LEXICAL`` text
builder (the turn with its previous / next turn, under a length limit, or the neighbour alone),
optionally ``@`` a ``CONFIGS`` entry (qdrant_edge ``Bm25Config``: avg_len, k, b). Each variant is reported as
fold mean ± std (lowest fold) and, per metric, the number of folds where it is >= the current
fusion, then a nested choice over the family (``retrieval_cv.nested``). ``--dense-context``
(with ``--locomo-only``) also embeds previous + current turn for the ``dense2`` family.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from common import CACHE_DIR, LOCOMO_DIR, machine, parser, write_results
from datasets import LONGMEMEVAL_DIR, Case, locomo_cases, longmemeval_cases
from quality import METRICS
from retrieval_cv import CANDIDATES, DEPTH, Rows, embed, embedded, evaluate, nested, summarise, top
from rich.console import Console


@dataclass
class Case2:
    """One case with what the variants need beyond ``retrieval_cv.Prepared``."""

    case: Case
    keys: list[set[str]]
    sessions: np.ndarray
    key_session: dict[str, str]
    cos: np.ndarray
    vectors: np.ndarray
    queries: np.ndarray
    previous: np.ndarray  # memory index of the previous turn of the session, -1 for none
    following: np.ndarray
    lexical: dict[str, np.ndarray] = field(default_factory=dict)
    cos2: np.ndarray | None = None  # cosine to the embedding of previous + current turn
    question_texts: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    def lex(self, name: str) -> np.ndarray:
        """BM25 of ``name``: a LEXICAL text builder, optionally ``@`` a CONFIGS entry; cached."""
        if name not in self.lexical:
            build, _, config = name.partition("@")
            texts, prev, nxt = self.texts, self.previous, self.following
            docs = [
                LEXICAL[build or "plain"](
                    t, texts[prev[i]] if prev[i] >= 0 else None, texts[nxt[i]] if nxt[i] >= 0 else None
                )
                for i, t in enumerate(texts)
            ]
            self.lexical[name] = bm25(docs, self.question_texts, CONFIGS[config] if config else None)
        return self.lexical[name]


def bm25(documents: list[str], queries: list[str], config: dict[str, float] | None = None) -> np.ndarray:
    """Qdrant's BM25 (document weights from qdrant_edge's Bm25 with ``config``, IDF over the
    non-empty ``documents``): questions x documents."""
    from qdrant_edge import Bm25, Bm25Config

    encoder = Bm25(Bm25Config(**config)) if config else Bm25()
    columns: dict[int, int] = {}
    encoded = []
    for d in documents:
        sparse = encoder.embed_document(d) if d else None
        pair = (list(sparse.indices), list(sparse.values)) if sparse is not None else ([], [])
        encoded.append(pair)
        for term in pair[0]:
            columns.setdefault(term, len(columns))
    matrix = np.zeros((len(documents), max(1, len(columns))), dtype=np.float32)
    for row, (indices, values) in enumerate(encoded):
        for term, value in zip(indices, values, strict=True):
            matrix[row, columns[term]] = value
    n = (matrix > 0).sum(axis=0)
    total = sum(1 for d in documents if d)
    idf = np.log(1 + (total - n + 0.5) / (n + 0.5))
    weights = np.zeros((len(queries), matrix.shape[1]), dtype=np.float32)
    for row, query in enumerate(queries):
        sparse = encoder.embed_query(query)
        for term, value in zip(sparse.indices, sparse.values, strict=True):
            if term in columns:
                weights[row, columns[term]] += value * idf[columns[term]]
    return weights @ matrix.T


LEXICAL: dict[str, Callable[[str, str | None, str | None], str]] = {
    "plain": lambda t, p, n: t,
    "prev": lambda t, p, n: t if not p else f"{t} {p[:1000]}",
    "prev<200": lambda t, p, n: t if not p or len(p) >= 200 else f"{t} {p}",
    "prev<400": lambda t, p, n: t if not p or len(p) >= 400 else f"{t} {p}",
    "prev<150": lambda t, p, n: t if not p or len(p) >= 150 else f"{t} {p}",
    "prev<250": lambda t, p, n: t if not p or len(p) >= 250 else f"{t} {p}",
    "prev<250|100": lambda t, p, n: t if not p else (f"{t} {p}" if len(p) < 250 else f"{t} {p[:100]}"),
    "prev<250|150": lambda t, p, n: t if not p else (f"{t} {p}" if len(p) < 250 else f"{t} {p[:150]}"),
    "prev<300": lambda t, p, n: t if not p or len(p) >= 300 else f"{t} {p}",
    "prev<800": lambda t, p, n: t if not p or len(p) >= 800 else f"{t} {p}",
    "prev200": lambda t, p, n: t if not p else f"{t} {p[:200]}",
    "next": lambda t, p, n: t if not n else f"{t} {n[:1000]}",
    "prevnext": lambda t, p, n: t if not (p or n) else f"{t} {(p or '')[:1000]} {(n or '')[:1000]}",
    "prevonly": lambda t, p, n: (p or "")[:1000],
    "nextonly": lambda t, p, n: (n or "")[:1000],
}
CONFIGS: dict[str, dict[str, float]] = {
    "avg16": {"avg_len": 16.0},
    "avg32": {"avg_len": 32.0},
    "avg64": {"avg_len": 64.0},
    "avg128": {"avg_len": 128.0},
    "avg24": {"avg_len": 24.0},
    "avg48": {"avg_len": 48.0},
    "avg96": {"avg_len": 96.0},
    "avg40": {"avg_len": 40.0},
    "avg56": {"avg_len": 56.0},
    "avg48 k1.5": {"avg_len": 48.0, "k": 1.5},
    "avg48 k0.9": {"avg_len": 48.0, "k": 0.9},
    "avg48 b0.5": {"avg_len": 48.0, "b": 0.5},
    "avg48 b0.9": {"avg_len": 48.0, "b": 0.9},
    "k0.9": {"k": 0.9},
    "k1.5": {"k": 1.5},
    "k2.0": {"k": 2.0},
    "b0.5": {"b": 0.5},
    "b0.9": {"b": 0.9},
    "b0.3": {"b": 0.3},
    "avg32 b0.5": {"avg_len": 32.0, "b": 0.5},
    "avg64 k1.5": {"avg_len": 64.0, "k": 1.5},
}


def prepare(cases: list[Case], cache: Path, dense_context: bool = False) -> list[Case2]:
    from clarity.redact import redact

    texts_of, vectors, query_vectors = embedded(cases, cache)
    out = []
    for case, texts in zip(cases, texts_of, strict=True):
        index = {text: i for i, text in enumerate(texts)}
        keys: list[set[str]] = [set() for _ in texts]
        session_of = [""] * len(texts)
        previous = np.full(len(texts), -1)
        following = np.full(len(texts), -1)
        last: dict[str, int] = {}
        for turn in case.turns:
            i = index[redact(turn.text)]
            if not keys[i]:
                session_of[i] = turn.session
                before = last.get(turn.session)
                if before is not None and before != i:
                    previous[i] = before
                    if following[before] < 0:
                        following[before] = i
            keys[i].add(turn.key)
            last[turn.session] = i
        questions = [q.text for q in case.questions]
        numbered = {s: n for n, s in enumerate(dict.fromkeys(session_of))}
        doc = np.asarray([vectors[t] for t in texts])
        qv = np.asarray([query_vectors[q] for q in questions])
        c = Case2(
            case,
            keys,
            np.asarray([numbered[s] for s in session_of]),
            {t.key: t.session for t in case.turns},
            qv @ doc.T,
            doc,
            qv,
            previous,
            following,
            question_texts=questions,
        )
        c.texts = texts
        if dense_context:
            joined = [
                t if previous[i] < 0 else f"{texts[previous[i]][:1000]} {t}" for i, t in enumerate(texts)
            ]
            c.cos2 = qv @ embed(joined, False, cache).T
        out.append(c)
    return out


def unit(values: np.ndarray, ranking: np.ndarray) -> dict[int, float]:
    """Min-max over a ranking: best 1, last 0 (store.base.fuse_scores)."""
    if not len(ranking):
        return {}
    best, worst = float(values[ranking[0]]), float(values[ranking[-1]])
    if best <= worst:
        return {int(i): 1.0 for i in ranking}
    return {int(i): (float(values[i]) - worst) / (best - worst) for i in ranking}


def lexical_top(values: np.ndarray) -> np.ndarray:
    return top(values, min(DEPTH, int((values > 0).sum())))


@dataclass(frozen=True)
class V:
    """A variant: Clarity's fusion plus the named changes."""

    lexical: str = "plain"  # the lexical list's BM25 texts/config
    weight: float = 1.0
    session: float = 0.5
    third: str | None = None  # a third (lexical) list fused with weight ``third_weight``
    third_weight: float = 0.0
    neighbour: float = 0.0  # + a x max fused score of adjacent turns among the candidates
    neighbour_pool: str = "kept"  # "kept" (the 30 kept) or "union" (every fused candidate)
    rocchio: float = 0.0  # q' = q + b x mean of the top-k vectors
    rocchio_k: int = 3
    rocchio_from: str = "dense"  # "dense" top-k, or "fused" top-k (a second pass)
    rocchio_scope: str = "search"  # "search": a new dense top 50; "rerank": rescore the first top 50
    when_weight: float | None = None  # lexical weight for questions with "when"
    when_session: float | None = None
    propagate: float = 0.0  # + w x (min-max lexical score of the turn after it), from the lexical top 50
    propagate_from: str = ""  # lexical list to propagate from ("" = the main one)
    third_pool_only: bool = False  # the third list / propagation only re-scores fused candidates
    propagate_kept: float = (
        0.0  # the same among the 30 kept only (source and target), before the session term
    )
    mmr: float = 0.0  # greedy top 10: score - mmr x max cosine to the ones already chosen
    session_diversity: float = 0.0  # greedy top 10: score - x per result of the same session already chosen
    propagate_dense: float = 0.0  # among the kept: + x dense min-max score of the turn after it
    depth: int = DEPTH  # each side's ranking depth (retrieval.prefetch_limit)
    lexical_only: bool = False  # the lexical list alone (the lexical mode)
    dense2: float = 0.0  # weight of a second dense list: embeddings of previous + current turn


def rank_with(v: V) -> Callable[[Case2, int], Sequence[int]]:
    lexical_unit: dict[int, float] = {}
    dense_unit: dict[int, float] = {}

    def fuse(p: Case2, q: int, cos: np.ndarray, dense: np.ndarray) -> dict[int, float]:
        when = "when" in p.question_texts[q].lower()
        weight = v.when_weight if when and v.when_weight is not None else v.weight
        lexical = p.lex(v.lexical)[q]
        total = unit(cos, dense)
        dense_unit.clear()
        dense_unit.update(total)
        lexical_unit.clear()
        for i, value in unit(lexical, top(lexical, min(v.depth, int((lexical > 0).sum())))).items():
            lexical_unit[i] = value
            total[i] = total.get(i, 0.0) + weight * value
        if v.dense2 and p.cos2 is not None:
            cos2 = p.cos2[q]
            for i, value in unit(cos2, top(cos2, DEPTH)).items():
                total[i] = total.get(i, 0.0) + v.dense2 * value
        pool = set(total)
        if v.third:
            extra = p.lex(v.third)[q]
            for i, value in unit(extra, lexical_top(extra)).items():
                if not v.third_pool_only or i in pool:
                    total[i] = total.get(i, 0.0) + v.third_weight * value
        if v.propagate:
            source = p.lex(v.propagate_from)[q] if v.propagate_from else lexical
            credit: dict[int, float] = {}
            for i, value in unit(source, lexical_top(source)).items():
                j = int(p.previous[i])
                if j >= 0:
                    credit[j] = max(credit.get(j, 0.0), value)
            for j, value in credit.items():
                if not v.third_pool_only or j in pool:
                    total[j] = total.get(j, 0.0) + v.propagate * value
        return total

    def rank(p: Case2, q: int) -> Sequence[int]:
        if v.lexical_only:
            return list(lexical_top(p.lex(v.lexical)[q])[:CANDIDATES])
        cos = p.cos[q]
        dense = top(cos, v.depth)
        total = fuse(p, q, cos, dense)
        if v.rocchio:
            if v.rocchio_from == "dense":
                seeds = dense[: v.rocchio_k]
            else:
                seeds = np.asarray(sorted(total, key=lambda i: -total[i])[: v.rocchio_k])
            centroid = p.vectors[seeds].mean(axis=0)
            if v.rocchio_scope == "search":
                cos = cos + v.rocchio * (p.vectors @ centroid)
                dense = top(cos, DEPTH)
            else:
                cos = cos.copy()
                cos[dense] = cos[dense] + v.rocchio * (p.vectors[dense] @ centroid)
                dense = dense[np.argsort(-cos[dense], kind="stable")]
            total = fuse(p, q, cos, dense)
        if v.neighbour and v.neighbour_pool == "union":
            total = smooth(p, total, v.neighbour)
        kept = sorted(total, key=lambda i: -total[i])[:CANDIDATES]
        if v.neighbour and v.neighbour_pool == "kept":
            sub = smooth(p, {i: total[i] for i in kept}, v.neighbour)
            total = {**total, **sub}
            kept.sort(key=lambda i: -total[i])
        if v.propagate_kept or v.propagate_dense:
            inside = set(kept)
            credit: dict[int, float] = {}
            for i in kept:
                j = int(p.previous[i])
                if j in inside:
                    c = v.propagate_kept * lexical_unit.get(i, 0.0) + v.propagate_dense * dense_unit.get(
                        i, 0.0
                    )
                    credit[j] = max(credit.get(j, 0.0), c)
            total = {**total, **{j: total[j] + c for j, c in credit.items()}}
            kept.sort(key=lambda i: -total[i])
        when = "when" in p.question_texts[q].lower()
        session = v.when_session if when and v.when_session is not None else v.session
        if session and kept:
            best: dict[int, float] = {}
            for i in kept:
                best[p.sessions[i]] = max(best.get(p.sessions[i], 0.0), total[i])
            ceiling = total[kept[0]] or 1.0
            total = {i: total[i] + session * best[p.sessions[i]] / ceiling for i in kept}
            kept.sort(key=lambda i: -total[i])
        if v.mmr or v.session_diversity:
            chosen: list[int] = []
            rest = list(kept)
            while rest and len(chosen) < 10:

                def adjusted(i: int) -> float:
                    value = total[i]
                    if chosen and v.mmr:
                        value -= v.mmr * float(max(p.vectors[chosen] @ p.vectors[i]))
                    if v.session_diversity:
                        value -= v.session_diversity * sum(p.sessions[j] == p.sessions[i] for j in chosen)
                    return value

                best_i = max(rest, key=adjusted)
                chosen.append(best_i)
                rest.remove(best_i)
            kept = chosen + rest
        return kept

    return rank


def smooth(p: Case2, scores: dict[int, float], a: float) -> dict[int, float]:
    """Each candidate plus ``a`` x the best score of its adjacent turns among the candidates."""
    out = {}
    for i, s in scores.items():
        around = [scores.get(int(j), 0.0) for j in (p.previous[i], p.following[i]) if j >= 0]
        out[i] = s + a * max(around, default=0.0)
    return out


BASE = V()


def families() -> dict[str, dict[str, V]]:
    f: dict[str, dict[str, V]] = {}
    f["context-in-doc"] = {
        f"lexical={name}": V(lexical=name)
        for name in ("prev", "prev<200", "prev<400", "prev<800", "prev200", "next", "prevnext")
    }
    f["third-list"] = {
        f"third={name} w={w}": V(third=name, third_weight=w)
        for name in ("prev", "prevonly", "next", "nextonly", "prevnext", "prev<400")
        for w in (0.1, 0.2, 0.3, 0.5)
    }
    f["neighbour"] = {
        f"neighbour a={a} {pool}": V(neighbour=a, neighbour_pool=pool)
        for a in (0.05, 0.1, 0.2, 0.3, 0.5)
        for pool in ("kept", "union")
    }
    f["rocchio"] = {
        f"rocchio b={b} k={k} {src} {scope}": V(rocchio=b, rocchio_k=k, rocchio_from=src, rocchio_scope=scope)
        for b in (0.3, 0.5, 1.0)
        for k in (3, 5)
        for src in ("dense", "fused")
        for scope in ("search", "rerank")
    }
    f["bm25-config"] = {f"bm25 {name}": V(lexical="@" + name) for name in CONFIGS}
    f["when"] = {
        f"when: w={w} s={s}": V(when_weight=w, when_session=s)
        for w in (0.5, 1.0, 1.5, 2.0)
        for s in (0.0, 0.5, 1.0)
        if (w, s) != (1.0, 0.5)
    }
    f["combo"] = {
        f"lexical={lex} w={w} s={s}" + (f" nb={a}" if a else ""): V(
            lexical=lex, weight=w, session=s, neighbour=a, neighbour_pool="union"
        )
        for lex in (
            "prev<200",
            "prev<150",
            "prev<300",
            "prev<200@avg32",
            "prev<200@avg64",
            "prev<200@avg128",
            "@avg48",
            "prev<200@avg48",
            "prev<200@avg96",
            "prev@avg64",
            "prev@avg128",
        )
        for w in (1.0, 1.25)
        for s in (0.5,)
        for a in (0.0, 0.2, 0.3)
    }
    f["refine"] = {
        f"lexical={lex} w={w} s={s}": V(lexical=lex, weight=w, session=s)
        for lex in (
            "prev<200@avg40",
            "prev<200@avg48",
            "prev<200@avg56",
            "prev<150@avg48",
            "prev<250@avg48",
            "prev<200@avg48 k1.5",
            "prev<200@avg48 k0.9",
            "prev<200@avg48 b0.5",
            "prev<200@avg48 b0.9",
        )
        for w in (1.0, 1.25, 1.5)
        for s in (0.25, 0.5, 0.75)
    }
    f["lexical-only"] = {
        f"lexical-only {lex}": V(lexical=lex, lexical_only=True)
        for lex in (
            "plain",
            "prev<200",
            "@avg48",
            "prev<200@avg48",
            "prev<200@avg40",
            "prev<200@avg56",
            "prev<250@avg48",
        )
    }
    f["extras"] = {
        "prev<200@avg48 w=1.25 + third nextonly 0.2": V(
            lexical="prev<200@avg48", weight=1.25, third="nextonly", third_weight=0.2
        ),
        "prev<200@avg48 w=1.25 + third nextonly 0.5": V(
            lexical="prev<200@avg48", weight=1.25, third="nextonly", third_weight=0.5
        ),
        "prev<200@avg48 w=1.25 + nb 0.1 kept": V(lexical="prev<200@avg48", weight=1.25, neighbour=0.1),
        "prev<200@avg48 w=1.25 + nb 0.1 union": V(
            lexical="prev<200@avg48", weight=1.25, neighbour=0.1, neighbour_pool="union"
        ),
        "prev<200@avg48 w=1.25 + third prev@avg48 0.2": V(
            lexical="prev<200@avg48", weight=1.25, third="prev@avg48", third_weight=0.2
        ),
        "prev<200@avg48 w=1.25 + when w=2": V(lexical="prev<200@avg48", weight=1.25, when_weight=2.0),
    }
    f["next"] = {}
    for lex in ("prev<200@avg48", "prev<250@avg48", "prev<200"):
        for w in (1.0, 1.25):
            for t in (0.1, 0.2, 0.3):
                f["next"][f"{lex} w={w} nextonly@avg48 {t}"] = V(
                    lexical=lex, weight=w, third="nextonly@avg48", third_weight=t
                )
                f["next"][f"{lex} w={w} nextonly {t}"] = V(
                    lexical=lex, weight=w, third="nextonly", third_weight=t
                )
                f["next"][f"{lex} w={w} nextonly {t} pool"] = V(
                    lexical=lex, weight=w, third="nextonly", third_weight=t, third_pool_only=True
                )
                f["next"][f"{lex} w={w} propagate main {t}"] = V(lexical=lex, weight=w, propagate=t)
                f["next"][f"{lex} w={w} propagate main {t} pool"] = V(
                    lexical=lex, weight=w, propagate=t, third_pool_only=True
                )
    f["final"] = {
        f"{lex} w={w} s={s} next={t}": V(lexical=lex, weight=w, session=s, propagate_kept=t)
        for lex in (
            "prev<200@avg40",
            "prev<200@avg48",
            "prev<200@avg64",
            "prev<250@avg40",
            "prev<250@avg48",
            "prev<250@avg64",
            "prev<300@avg40",
            "prev<300@avg48",
            "prev<300@avg64",
        )
        for w in (1.0, 1.25, 1.5)
        for s in (0.25, 0.5)
        for t in (0.0, 0.2, 0.3)
    }
    f["kept"] = {
        f"{lex} w={w} s=0.5 {kind}={t}": V(lexical=lex, weight=w, propagate_kept=t)
        if kind == "kept"
        else V(lexical=lex, weight=w, propagate=t, third_pool_only=True)
        for lex in ("prev<250@avg48", "prev<200@avg48")
        for w in (1.25,)
        for t in (0.1, 0.2, 0.3, 0.5)
        for kind in ("kept", "pool")
    }
    f["dense2"] = {f"dense2 w={w}": V(dense2=w) for w in (0.1, 0.2, 0.3, 0.5, 1.0)}
    f["weights"] = {
        f"w={w} s={s}": V(weight=w, session=s) for w in (0.75, 1.0, 1.25, 1.5) for s in (0.25, 0.5, 0.75)
    }
    return f


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--data", default=str(LOCOMO_DIR))
    p.add_argument("--longmemeval", default=str(LONGMEMEVAL_DIR))
    p.add_argument("--cache", default=str(CACHE_DIR))
    p.add_argument("--only", default="", help="comma-separated family names")
    p.add_argument("--dense-context", action="store_true", help="LoCoMo only: embed previous + current turn")
    p.add_argument("--locomo-only", action="store_true")
    p.add_argument("--extra", default="", help="python expression: dict name -> V of more variants")
    args = p.parse_args()
    console = Console(width=220)
    fams = families()
    if args.only:
        fams = {k: v for k, v in fams.items() if k in args.only.split(",")}
    if args.extra:
        fams["extra"] = eval(args.extra, {"V": V})  # a bench-only convenience: variants from the command line
    prepared = {
        "locomo": prepare(locomo_cases(Path(args.data), args.quick), Path(args.cache), args.dense_context),
    }
    if not args.locomo_only:
        prepared["longmemeval"] = prepare(
            longmemeval_cases(Path(args.longmemeval), args.quick), Path(args.cache)
        )
    report: dict[str, Any] = {"machine": machine(), "families": {}}
    base_rows = {d: evaluate(ps, rank_with(BASE)) for d, ps in prepared.items()}  # type: ignore[arg-type]
    base_sum = {d: summarise(rows, METRICS[d]) for d, rows in base_rows.items()}
    for fam, variants in fams.items():
        console.print(f"[bold]== {fam}[/]")
        runs: dict[str, dict[str, Rows]] = {"base": base_rows}
        fam_report: dict[str, Any] = {}
        for name, v in {"base": BASE, **variants}.items():
            if name != "base":
                runs[name] = {d: evaluate(ps, rank_with(v)) for d, ps in prepared.items()}  # type: ignore[arg-type]
            line = []
            entry = {}
            for d in prepared:
                s = summarise(runs[name][d], METRICS[d])
                entry[d] = s
                b = base_sum[d]
                cells = []
                for m in METRICS[d]:
                    sp = s["fold_spread"][m]
                    agree = sum(s["folds"][f][m] >= b["folds"][f][m] - 1e-9 for f in s["folds"])
                    cells.append(
                        f"{sp['mean']:.3f}±{sp['std']:.3f}({sp['min']:.3f}){agree}/{len(s['folds'])}"
                    )
                line.append(" ".join(cells))
            fam_report[name] = entry
            console.print(f"  {name:40s} L: {' | M: '.join(line)}")
        held, chosen = nested(runs)
        cells = []
        for d in prepared:
            s = summarise(held[d], METRICS[d])
            fam_report["nested"] = {**fam_report.get("nested", {}), d: s}
            cells.append(
                " ".join(
                    f"{s['fold_spread'][m]['mean']:.3f}±{s['fold_spread'][m]['std']:.3f}" for m in METRICS[d]
                )
            )
        console.print(f"  {'NESTED':40s} L: {' | M: '.join(cells)}")
        console.print(f"    chosen: {sorted(set(chosen.values()))} {chosen}")
        fam_report["nested_choices"] = chosen
        report["families"][fam] = fam_report
    write_results(args.out, "retrieval_round2", report, None)


if __name__ == "__main__":
    main()
