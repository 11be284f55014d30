"""Reads of the embedded engine: every query fans out over the shards of one published view
(``layout.py``) and the answers are merged, so nothing written is invisible at any moment.

A search asks each shard for its dense and lexical rankings, ids and scores only, and fuses them
here (``fuse_shard_answers``, then ``store.base.fuse_scores``, as the server engine does);
payloads come once, for the final list. Points tombstoned in a frozen shard are filtered out by
that shard's own query, and where a point has two copies the active shard's wins.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from collections.abc import Set as AbstractSet
from operator import attrgetter, itemgetter
from typing import Any

from qdrant_edge import (
    CountRequest,
    Direction,
    FacetRequest,
    FieldCondition,
    Filter,
    HasIdCondition,
    MatchAny,
    MatchValue,
    OrderBy,
    QuantizationSearchParams,
    Query,
    QueryBatchRequest,
    QueryRequest,
    RangeFloat,
    ScrollRequest,
    SearchParams,
    SparseVector,
)

from clarity.store.base import (
    DENSE,
    ID_PAGE,
    LEXICAL,
    SORT_KEYS,
    Fused,
    Hit,
    MemoryFilter,
    SearchMode,
    SearchQuery,
    SortOrder,
    Sparse,
    fuse_scores,
    hit_of,
    on_unit_scale,
)
from clarity.store.edge.layout import Layout, View
from clarity.store.edge.shard import Quantization, point_ids

# int8 candidates per result that the float32 originals rescore. At 95k points and ef 64: no
# rescoring found 0.96 of the exact top 10; 1x 0.99; 2x 0.996, at 0.33 ms a dense query against
# 0.57 ms on the originals alone. A hybrid search asks each shard for its dense top 50 (the fusion
# depth), where 2x walked with ef 100 and rescored 100: 1.5x kept recall@50 at 0.999 and recall@10
# at 0.9997, 0.08 ms sooner (docs/benchmarks.md, sixth round).
RESCORE_OVERSAMPLING = 1.5

# A filtered dense search in a segment where the filter keeps under this share of the points scans
# those points instead of walking the graph. Qdrant walks an HNSW graph unless its bound on the
# matches is under full_scan_threshold, and its bound for two conditions (a project and a kind) is
# that of the larger one, so narrow filters were walked and their matches, scattered over the
# graph, were missed: in a 500k segment, recall@10 against exact was 0.78 at 1.25 % of the points,
# 0.89 at 2.5 %, 0.96 at 3.4 %, 0.99 at 4.3 % and 1.0 from 5.6 % on (docs/benchmarks.md). The
# count is Qdrant's estimate from the payload indexes (a few microseconds a shard).
FILTERED_SCAN_SHARE = 0.045


def _narrow(shard: Any, shard_filter: Filter) -> bool:
    """Whether ``shard_filter`` keeps under ``FILTERED_SCAN_SHARE`` of ``shard``'s points."""
    total = shard.handle.count(CountRequest(exact=False))
    return bool(total) and shard.handle.count(CountRequest(exact=False, filter=shard_filter)) < (
        FILTERED_SCAN_SHARE * total
    )


def edge_filter(flt: MemoryFilter | None, exclude: AbstractSet[str] | None = None) -> Filter | None:
    if flt is None and not exclude:
        return None
    must: list[Any] = []
    must_not: list[Any] = []
    if flt is not None:
        if flt.scopes:
            must.append(FieldCondition(key="scope", match=MatchAny(list(flt.scopes))))
        if flt.memory_types:
            must.append(FieldCondition(key="memory_type", match=MatchAny(list(flt.memory_types))))
        if flt.tags:
            must.append(FieldCondition(key="tags", match=MatchAny(list(flt.tags))))
        if isinstance(flt.content_hash, list):
            must.append(FieldCondition(key="content_hash", match=MatchAny(flt.content_hash)))
        elif flt.content_hash:
            must.append(FieldCondition(key="content_hash", match=MatchValue(flt.content_hash)))
        if flt.created_from is not None or flt.created_to is not None:
            must.append(
                FieldCondition(key="created_at", range=RangeFloat(gte=flt.created_from, lte=flt.created_to))
            )
        if flt.sources:
            must.append(FieldCondition(key="source", match=MatchAny(list(flt.sources))))
        if flt.importance_min is not None or flt.importance_max is not None:
            must.append(
                FieldCondition(
                    key="importance", range=RangeFloat(gte=flt.importance_min, lte=flt.importance_max)
                )
            )
        if flt.pending_vector:
            must.append(FieldCondition(key="vector_state", match=MatchValue("pending")))
        if flt.session_id is not None:
            must.append(FieldCondition(key="session_id", match=MatchValue(flt.session_id)))
        if flt.anchor_path is not None:
            must.append(FieldCondition(key="anchor_paths", match=MatchValue(flt.anchor_path)))
        if flt.previous_ids is not None:
            must.append(FieldCondition(key="previous_id", match=MatchAny(list(flt.previous_ids))))
        if flt.changed_from is not None:
            must.append(FieldCondition(key="changed_at", range=RangeFloat(gte=flt.changed_from)))
        if flt.lexical_version_below is not None:  # a record without a version holds no value: never >=
            must_not.append(
                FieldCondition(key="lexical_version", range=RangeFloat(gte=flt.lexical_version_below))
            )
        if flt.exclude_ids:
            must_not.append(HasIdCondition(set(flt.exclude_ids)))
        if flt.exclude_superseded:  # a memory never superseded holds null there, which no range matches
            must_not.append(FieldCondition(key="superseded_at", range=RangeFloat(gte=0.0)))
    if exclude:
        must_not.append(HasIdCondition(set(exclude)))
    if not must and not must_not:
        return None
    return Filter(must=must or None, must_not=must_not or None)


def _dense(record: Any) -> list[float] | None:
    vector = record.vector
    return vector.get(DENSE) if isinstance(vector, dict) else None


def _hit(point: Any) -> Hit:
    return Hit(str(point.id), float(getattr(point, "score", 0.0) or 0.0), point.payload or {})


def fuse_shard_answers(
    dense_points: Sequence[Any],
    lexical_rankings: Sequence[Sequence[Any]],
    mode: SearchMode,
    depth: int,
    limit: int,
    lexical_weight: float,
) -> list[Fused]:
    """Every shard's ScoredPoints fused best first (``store.base.fuse_scores``);
    ``tests/test_fusion.py`` pins it to the plain formulation of the same formulas.

    Dense scores are cosines, comparable across shards, so the dense ranking is one merge by
    score. BM25 with IDF is computed against each shard's own statistics, so raw lexical scores of
    a small shard and a big one do not compare: each shard's scores are put on 0..1 over that
    shard's own ranking (``min_max``), the scale the fusion puts every ranking on anyway, and the
    shards' rankings are merged by that (with one shard, exactly the single-index ranking). A point that two shards
    return (a crash can leave two copies until the next start reconciles) counts once, at its
    best place, in both; for the few milliseconds an update of a memory has its new copy in the
    active shard and the old one not yet deleted, the cosine may be the old copy's while the
    payload is the new one's. Ids stay the engine's own objects, and are read only for points
    that can still matter: each ``.id`` makes the binding build a ``uuid.UUID`` (~1 us), which
    cost more than the fusion arithmetic.
    """
    dense: list[tuple[Any, float]] = []
    seen: set[Any] = set()
    if mode != "lexical":
        for point in sorted(dense_points, key=attrgetter("score"), reverse=True):
            point_id = point.id
            if point_id not in seen:
                seen.add(point_id)
                dense.append((point_id, point.score))
                if len(dense) == depth:
                    break
    lexical: list[tuple[Any, float]] = []
    if mode != "dense":
        taken: set[Any] = set()
        scaled = [on_unit_scale(ranking) for ranking in lexical_rankings if ranking]
        for score, point in heapq.merge(*scaled, key=itemgetter(0), reverse=True):
            point_id = point.id
            if point_id not in taken:
                taken.add(point_id)
                lexical.append((point_id, score))
                if len(lexical) == depth:
                    break
    return fuse_scores(dense, lexical, mode, limit, lexical_weight)


class EdgeReads:
    """The read methods of ``EdgeStore``, which derives from this class: reads keep no state of
    their own, only the published view of the store's layout and two search settings."""

    layout: Layout
    _hnsw_ef: int  # retrieval.hnsw_ef
    _quantization: Quantization

    def get(self, ids: Sequence[str], with_vectors: bool = False) -> list[Hit]:
        return self._get(self.layout.view, ids, with_vectors)

    def _get(self, view: View, ids: Sequence[str], with_vectors: bool = False) -> list[Hit]:
        wanted = list(ids)
        found: dict[str, Hit] = {}
        # Only the dense vector: every caller wants that one, and the lexical one costs a conversion.
        vectors: list[str] | bool = [DENSE] if with_vectors else False
        for shard in view.shards:
            missing = [i for i in wanted if i not in found]  # the newest shard's copy is the one
            if not missing:
                break
            exclude: AbstractSet[str] = view.exclude(shard) or frozenset()
            for record in shard.handle.retrieve(point_ids(missing), with_payload=True, with_vector=vectors):
                point_id = str(record.id)  # each .id builds a UUID: read it once
                if point_id in exclude or point_id in found:
                    continue
                dense = _dense(record) if with_vectors else None
                found[point_id] = Hit(point_id, 0.0, record.payload or {}, dense)
        return [found[i] for i in wanted if i in found]

    def run_search(self, query: SearchQuery) -> list[Hit]:
        dense, sparse, flt, limit, mode = query.dense, query.sparse, query.flt, query.limit, query.mode
        prefetch_limit, exact, lexical_weight = query.prefetch_limit, query.exact, query.lexical_weight
        params = self._search_params(limit, exact)
        view = self.layout.view
        shards = view.shards
        if mode == "hybrid" and (dense is None or sparse is None):
            mode = "dense" if sparse is None else "lexical"
        depth = limit if mode != "hybrid" else max(prefetch_limit, limit)
        dense_points: list[Any] = []
        lexical_rankings: list[list[Any]] = []
        asks_dense = mode in ("hybrid", "dense") and dense is not None
        asks_lexical = mode in ("hybrid", "lexical") and sparse is not None and bool(sparse[0])
        unexcluded: list[QueryRequest] | None = None  # the same for every shard without tombstones
        scan_params = self._scan_params(limit) if asks_dense and not exact and flt is not None else None
        common_filter = edge_filter(flt)
        for shard in shards:
            exclude = view.exclude(shard)
            shard_filter = edge_filter(flt, exclude) if exclude else common_filter
            shard_params = params
            if scan_params is not None and shard_filter is not None and _narrow(shard, shard_filter):
                shard_params = scan_params
            own = bool(exclude) or shard_params is not params  # requests no other shard can share
            if own or unexcluded is None:
                requests = self._shard_requests(
                    dense if asks_dense else None,
                    sparse if asks_lexical else None,
                    shard_filter,
                    depth,
                    shard_params,
                )
                unexcluded = unexcluded if own else requests
            else:
                requests = unexcluded
            if not requests:
                continue
            answers = shard.handle.query_batch(QueryBatchRequest(requests))
            if asks_dense:
                dense_points.extend(answers.pop(0))
            if answers:
                lexical_rankings.append(answers.pop(0))
        ranked = fuse_shard_answers(dense_points, lexical_rankings, mode, depth, limit, lexical_weight)
        return self._with_payloads(view, ranked)

    @staticmethod
    def _shard_requests(
        dense: list[float] | None,
        sparse: Sparse | None,
        shard_filter: Filter | None,
        depth: int,
        params: SearchParams,
    ) -> list[QueryRequest]:
        """A shard's dense ranking, then its lexical one, ids and scores only. Built once for
        all shards that need no tombstone filter: each build converts the query vector again."""
        requests = []
        if dense is not None:
            requests.append(
                QueryRequest(
                    limit=depth,
                    query=Query.Nearest(dense, using=DENSE),
                    filter=shard_filter,
                    with_payload=False,
                    params=params,
                )
            )
        if sparse is not None:
            requests.append(
                QueryRequest(
                    limit=depth,
                    query=Query.Nearest(SparseVector(*sparse), using=LEXICAL),
                    filter=shard_filter,
                    with_payload=False,
                )
            )
        return requests

    def _search_params(self, limit: int, exact: bool) -> SearchParams:
        """Exact search reads the float32 originals only: it is the yardstick for the others.
        With quantization off, segments built while it was on keep their int8 copies, unused but
        still pinned in RAM (384 bytes a memory), until their next merge build drops them."""
        quantization = QuantizationSearchParams(
            ignore=exact or self._quantization == "none", rescore=True, oversampling=RESCORE_OVERSAMPLING
        )
        return SearchParams(hnsw_ef=max(self._hnsw_ef, limit), exact=exact, quantization=quantization)

    def _scan_params(self, limit: int) -> SearchParams:
        """A scan of the points a narrow filter keeps (``FILTERED_SCAN_SHARE``): on the int8 copy
        rescored by the originals, as a walk is, but visiting every match."""
        params = self._search_params(limit, exact=False)
        return SearchParams(hnsw_ef=params.hnsw_ef, exact=True, quantization=params.quantization)

    def _with_payloads(self, view: View, ranked: list[Fused]) -> list[Hit]:
        """Shards are queried for ids and scores only: fetching every shard's prefetch payloads
        cost more than the searches themselves. Payloads come once, for the final list."""
        ids = [str(fused.id) for fused in ranked]
        payloads = {hit.id: hit.payload for hit in self._get(view, ids)}
        return [hit_of(fused, i, payloads[i]) for i, fused in zip(ids, ranked, strict=True) if i in payloads]

    def newest(self, flt: MemoryFilter, limit: int, offset: int = 0, sort: SortOrder = "newest") -> list[Hit]:
        key, descending = SORT_KEYS[sort]
        order = OrderBy(key, direction=Direction.Desc if descending else Direction.Asc)
        merged: list[Hit] = []
        view = self.layout.view
        for shard in view.shards:
            records, _ = shard.handle.scroll(
                ScrollRequest(
                    limit=offset + limit,
                    filter=edge_filter(flt, view.exclude(shard)),
                    with_payload=True,
                    order_by=order,
                )
            )
            merged.extend(_hit(r) for r in records)
        unique = list({hit.id: hit for hit in reversed(merged)}.values())  # the active shard's copy wins
        unique.sort(key=lambda h: h.payload.get(key) or 0.0, reverse=descending)
        return unique[offset : offset + limit]

    def ids(self) -> Iterator[str]:
        """Each shard's ids are read whole before any is handed out, so a caller that takes its
        time never holds a shard a build has retired (they stay open RETIRE_GRACE_SECONDS)."""
        view = self.layout.view
        seen: set[str] = set()
        for shard in view.shards:
            found: list[str] = []
            offset = None
            while True:
                records, offset = shard.handle.scroll(
                    ScrollRequest(
                        offset=offset,
                        limit=ID_PAGE,
                        filter=edge_filter(None, view.exclude(shard)),
                        with_payload=False,
                        with_vector=False,
                    )
                )
                found.extend(str(record.id) for record in records)
                if offset is None:
                    break
            for point_id in found:
                if point_id not in seen:  # a point with two copies (the active shard's and an older)
                    seen.add(point_id)
                    yield point_id

    def count(self, flt: MemoryFilter | None = None) -> int:
        view = self.layout.view
        return sum(
            shard.handle.count(CountRequest(exact=True, filter=edge_filter(flt, view.exclude(shard))))
            for shard in view.shards
        )

    def facet(self, key: str, flt: MemoryFilter | None = None, limit: int = 100) -> dict[str, int]:
        totals: dict[str, int] = {}
        view = self.layout.view
        for shard in view.shards:
            response = shard.handle.facet(
                FacetRequest(key=key, limit=limit, exact=True, filter=edge_filter(flt, view.exclude(shard)))
            )
            for hit in response:
                totals[str(hit.value)] = totals.get(str(hit.value), 0) + hit.count
        return dict(sorted(totals.items(), key=lambda kv: -kv[1])[:limit])
