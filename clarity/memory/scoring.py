"""How a search's hits become ranked results: relevance blended with recency and importance.

Relevance stays the dominant term. Scores need two payload fields only, so ``rescore`` ranks
every candidate without building ``Memory`` objects (validated, ~30 µs each); the caller builds
them for the few results it keeps.
"""

from __future__ import annotations

import math
import time
from operator import itemgetter
from typing import Any, NamedTuple

import numpy as np

from clarity.config import RetrievalSettings
from clarity.embedding.lexical import PREVIOUS_KEY
from clarity.models import Memory, UnreadableMemory
from clarity.requests import RankWhy, ScoredMemory
from clarity.store.base import Hit, VectorStore

DEFAULT_IMPORTANCE: float = Memory.model_fields["importance"].default


def _updated_at(hit: Hit) -> float:
    """The payload keeps a timestamp; anything else is read the way ``Memory`` reads it."""
    value = hit.payload.get("updated_at")
    if isinstance(value, int | float):
        return float(value)
    try:
        return Memory.from_payload(hit.id, hit.payload).updated_at.timestamp()
    except UnreadableMemory:
        return 0.0  # scored last; left out, and reported, when results are built


def _importance(hit: Hit) -> float:
    value = hit.payload.get("importance")
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return DEFAULT_IMPORTANCE  # a damaged record: left out when results are built


class Parts(NamedTuple):
    """The terms of a final score, kept so a result can say why it ranked where it did."""

    relevance: float
    relevance_part: float
    recency_part: float
    importance_part: float
    session: float | None  # the session's best fused score over the best of all, weighted
    next_turn: float | None  # the credit from its next memory's lexical match, weighted


def next_turn_parts(hits: list[Hit], weight: float) -> list[float]:
    """Each hit's next-turn credit: ``weight`` x the best lexical score (on 0..1) among the
    candidates whose previous memory (``previous_id``) it is.

    The turn after an answer often repeats what the question asks ("so the zebra migration is
    Tuesday?"), the answer itself less. Credited so, among the candidates only, before the
    session term, weight 0.2 alone moved LongMemEval MRR 0.643 -> 0.658 (LoCoMo 0.526 -> 0.528),
    and was part of the variant chosen on both dev sets (scripts/bench/retrieval_round2.py,
    ``propagate_kept``; docs/benchmarks.md). Payloads only, no extra query.
    """
    ids = {hit.id for hit in hits}
    credit: dict[str, float] = {}
    for hit in hits:
        previous = hit.payload.get(PREVIOUS_KEY)
        if hit.lexical and previous in ids and previous != hit.id:
            credit[previous] = max(credit.get(previous, 0.0), weight * hit.lexical)
    return [credit.get(hit.id, 0.0) for hit in hits]


def session_parts(hits: list[Hit], weight: float, scores: list[float] | None = None) -> list[float]:
    """Each hit's session term: ``weight`` x the best fused score (``scores``, else the hits')
    among the candidates of its session (a memory without a session is a session of its own)
    over the best of all.

    An answer tends to sit among turns that match the question too. Weight 0.5 was the choice of
    the nested cross-validation on both dev sets: +3.5 points of LoCoMo recall@5 over the same
    fusion without it, -0.7 on LongMemEval (docs/benchmarks.md). It reads the candidates'
    payloads only, no extra query; candidates outside the fused top ``limit * 3`` take no part.
    """
    best: dict[Any, float] = {}
    keys = []
    for hit, score in zip(hits, scores or [hit.score for hit in hits], strict=True):
        key = hit.payload.get("session_id") or hit.id
        keys.append(key)
        if score > best.get(key, 0.0):
            best[key] = score
    top = max(best.values(), default=0.0)
    if top <= 0:
        return [0.0] * len(hits)
    return [weight * best.get(key, 0.0) / top for key in keys]


def rescore(
    hits: list[Hit],
    cfg: RetrievalSettings,
    mode: str,
    lexical_weight: float = 1.0,
    lexical_used: bool = True,
) -> list[tuple[float, Hit, Parts]]:
    """(score, hit, its parts) best first; score = relevance_part + recency_part + importance_part.

    Relevance is put on 0..1 first: a fused score (each side on 0..1 over its ranking, the
    lexical one weighted: ``store.base.fuse_scores``) plus its next-turn credit and its session
    term is divided by its ceiling, 1 + the lexical weight + the next-turn weight + the session
    weight (first in both rankings, its next turn first in the lexical one, in the best session);
    a cosine is clipped at 0; lexical scores are divided by the best.
    """
    if not hits:
        return []
    sessions: list[float | None] = [None] * len(hits)
    nexts: list[float | None] = [None] * len(hits)
    if mode == "hybrid":
        ceiling = 1.0 + (lexical_weight if lexical_used else 0.0)
        fused = [hit.score for hit in hits]
        if lexical_used and cfg.next_turn_weight:
            nexts = list(next_turn_parts(hits, cfg.next_turn_weight))
            fused = [score + (credit or 0.0) for score, credit in zip(fused, nexts, strict=True)]
            ceiling += cfg.next_turn_weight
        if cfg.session_weight:
            sessions = list(session_parts(hits, cfg.session_weight, fused))
            ceiling += cfg.session_weight
    elif mode == "lexical":
        ceiling = max(h.score for h in hits) or 1.0
    else:
        ceiling = 1.0
    now = time.time()
    half_life = cfg.recency_half_life_days * 86400.0
    relevance_weight = max(0.0, 1.0 - cfg.recency_weight - cfg.importance_weight)
    scored = []
    for hit, session, credit in zip(hits, sessions, nexts, strict=True):
        relevance = min(1.0, max(0.0, (hit.score + (credit or 0.0) + (session or 0.0)) / ceiling))
        age = max(0.0, now - _updated_at(hit))
        parts = Parts(
            round(relevance, 6),
            round(relevance_weight * relevance, 6),
            round(cfg.recency_weight * math.pow(0.5, age / half_life), 6),
            round(cfg.importance_weight * _importance(hit), 6),
            None if session is None else round(session, 6),
            None if credit is None else round(credit, 6),
        )
        scored.append((round(parts[1] + parts[2] + parts[3], 6), hit, parts))
    scored.sort(key=itemgetter(0), reverse=True)
    return scored


def why(score: float, hit: Hit, parts: Parts, lexical_weight: float | None) -> RankWhy:
    """The explanation of one kept result (built for the few results returned, not every
    candidate). Ranks count from 1; the lexical weight is None where no lexical ranking took part."""
    return RankWhy(
        dense_cosine=None if hit.similarity is None else round(hit.similarity, 4),
        dense_rank=None if hit.dense_rank is None else hit.dense_rank + 1,
        lexical=None if hit.lexical is None else round(hit.lexical, 4),
        lexical_rank=None if hit.lexical_rank is None else hit.lexical_rank + 1,
        lexical_weight=lexical_weight,
        session=parts.session,
        next_turn=parts.next_turn,
        relevance=parts.relevance,
        relevance_part=parts.relevance_part,
        recency_part=parts.recency_part,
        importance_part=parts.importance_part,
        score=score,
    )


def add_similarity(store: VectorStore, results: list[ScoredMemory], query: list[float]) -> None:
    """Fused scores rank; only cosine says how close a memory really is, which hooks gate on.
    Results from the search's dense ranking already carry their cosine; the vectors of the
    rest (lexical-only results, an engine that fuses internally) are fetched, for the final
    few only: asking the search for every candidate's vector cost ~1 ms more."""
    missing = [result for result in results if result.similarity is None]
    if not missing:
        return
    vectors = {h.id: h.dense for h in store.get([r.memory.id for r in missing], with_vectors=True)}
    # A memory without a vector (still pending) gets no similarity.
    fetched = [result for result in missing if vectors.get(result.memory.id) is not None]
    if not fetched:
        return
    matrix = np.asarray([vectors[result.memory.id] for result in fetched], dtype=np.float32)
    for result, similarity in zip(
        fetched, (matrix @ np.asarray(query, dtype=np.float32)).tolist(), strict=True
    ):
        result.similarity = round(similarity, 4)
