"""How a search's hits become ranked results: relevance blended with recency and importance.

Relevance stays the dominant term. Scores need two payload fields only, so ``rescore`` ranks
every candidate without building ``Memory`` objects (validated, ~30 µs each); the caller builds
them for the few results it keeps.
"""

from __future__ import annotations

import math
import re
import time
from operator import itemgetter

import numpy as np

from clarity.config import RetrievalSettings
from clarity.models import Memory, UnreadableMemory
from clarity.requests import ScoredMemory
from clarity.store.base import Hit, VectorStore, rrf_term

DEFAULT_IMPORTANCE: float = Memory.model_fields["importance"].default

# Tokens that name something exactly: error codes (E4711, ERR_CONN_RESET), hashes, file names,
# flags. The dense model cannot tell one from another; the lexical index can.
_IDENTIFIER = re.compile(r"(?<![\w-])(?=[\w.\-/]*[0-9_./])(?=[\w.\-/]*[A-Za-z])[\w.\-/]{3,}")


def has_identifier(query: str) -> bool:
    return _IDENTIFIER.search(query) is not None


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


def rescore(
    hits: list[Hit],
    cfg: RetrievalSettings,
    mode: str,
    lexical_weight: float = 1.0,
    lexical_used: bool = True,
) -> list[tuple[float, Hit]]:
    """(score, hit) best first.

    Relevance is put on 0..1 first: fused RRF scores are divided by their maximum (rank 0 in
    both lists), cosine is clipped at 0, BM25 is divided by the best hit.
    """
    if not hits:
        return []
    if mode == "hybrid":
        # The best possible fused score: rank 0 in every ranking that took part.
        ceiling = rrf_term(0, cfg.rrf_k) + (rrf_term(0, cfg.rrf_k, lexical_weight) if lexical_used else 0.0)
    elif mode == "lexical":
        ceiling = max(h.score for h in hits) or 1.0
    else:
        ceiling = 1.0
    now = time.time()
    half_life = cfg.recency_half_life_days * 86400.0
    relevance_weight = max(0.0, 1.0 - cfg.recency_weight - cfg.importance_weight)
    scored = []
    for hit in hits:
        relevance = min(1.0, max(0.0, hit.score / ceiling))
        age = max(0.0, now - _updated_at(hit))
        recency = math.pow(0.5, age / half_life)
        importance = _importance(hit)
        score = (
            relevance_weight * relevance + cfg.recency_weight * recency + cfg.importance_weight * importance
        )
        scored.append((round(score, 6), hit))
    scored.sort(key=itemgetter(0), reverse=True)
    return scored


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
