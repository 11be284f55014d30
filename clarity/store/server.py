"""Server engine: a Qdrant server or cluster through qdrant-client (HTTP, or gRPC when preferred).

The same class runs against qdrant-client's in-process mode (``location=":memory:"``), which is
how the test suite exercises this engine on machines without a Qdrant server.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
from qdrant_client import QdrantClient, models

from clarity.config import QdrantSettings
from clarity.store.base import (
    DENSE,
    ID_PAGE,
    LEXICAL,
    PAYLOAD_INDEXES,
    SORT_KEYS,
    Hit,
    MemoryFilter,
    PointData,
    Reencode,
    SearchQuery,
    SortOrder,
    VectorStore,
    fuse_scores,
    hit_of,
    on_unit_scale,
)

log = logging.getLogger(__name__)

_INDEX_KIND = {
    "keyword": models.PayloadSchemaType.KEYWORD,
    "float": models.PayloadSchemaType.FLOAT,
}


def server_filter(flt: MemoryFilter | None) -> models.Filter | None:
    if flt is None or flt.is_empty():
        return None
    must: list[Any] = []
    if flt.scopes:
        must.append(models.FieldCondition(key="scope", match=models.MatchAny(any=list(flt.scopes))))
    if flt.memory_types:
        must.append(
            models.FieldCondition(key="memory_type", match=models.MatchAny(any=list(flt.memory_types)))
        )
    if flt.tags:
        must.append(models.FieldCondition(key="tags", match=models.MatchAny(any=list(flt.tags))))
    if isinstance(flt.content_hash, list):
        must.append(models.FieldCondition(key="content_hash", match=models.MatchAny(any=flt.content_hash)))
    elif flt.content_hash:
        must.append(
            models.FieldCondition(key="content_hash", match=models.MatchValue(value=flt.content_hash))
        )
    if flt.created_from is not None or flt.created_to is not None:
        must.append(
            models.FieldCondition(
                key="created_at", range=models.Range(gte=flt.created_from, lte=flt.created_to)
            )
        )
    if flt.sources:
        must.append(models.FieldCondition(key="source", match=models.MatchAny(any=list(flt.sources))))
    if flt.importance_min is not None or flt.importance_max is not None:
        must.append(
            models.FieldCondition(
                key="importance", range=models.Range(gte=flt.importance_min, lte=flt.importance_max)
            )
        )
    if flt.pending_vector:
        must.append(models.FieldCondition(key="vector_state", match=models.MatchValue(value="pending")))
    if flt.session_id is not None:
        must.append(models.FieldCondition(key="session_id", match=models.MatchValue(value=flt.session_id)))
    if flt.anchor_path is not None:
        must.append(models.FieldCondition(key="anchor_paths", match=models.MatchValue(value=flt.anchor_path)))
    if flt.previous_ids is not None:
        must.append(
            models.FieldCondition(key="previous_id", match=models.MatchAny(any=list(flt.previous_ids)))
        )
    if flt.changed_from is not None:
        must.append(models.FieldCondition(key="changed_at", range=models.Range(gte=flt.changed_from)))
    must_not: list[Any] = [models.HasIdCondition(has_id=list(flt.exclude_ids))] if flt.exclude_ids else []
    if flt.lexical_version_below is not None:  # as superseded_at: a record without one matches no range
        must_not.append(
            models.FieldCondition(key="lexical_version", range=models.Range(gte=flt.lexical_version_below))
        )
    if flt.exclude_superseded:  # as the embedded engine: null (never superseded) matches no range
        must_not.append(models.FieldCondition(key="superseded_at", range=models.Range(gte=0.0)))
    return models.Filter(must=must or None, must_not=must_not or None)


def _hit(point: Any, with_dense: bool = False) -> Hit:
    dense = None
    if with_dense and isinstance(point.vector, dict):
        dense = point.vector.get(DENSE)
    return Hit(str(point.id), float(getattr(point, "score", 0.0) or 0.0), point.payload or {}, dense)


def connect(settings: QdrantSettings) -> QdrantClient:
    """A client of the Qdrant server at ``settings.url``: the one connection code of the server
    engine, shared with the team server's state (``clarity.team.qdrant_state``)."""
    return QdrantClient(
        url=settings.url,
        api_key=settings.api_key.get_secret_value() if settings.api_key else None,
        prefer_grpc=settings.prefer_grpc,
        timeout=int(settings.timeout),
        pool_size=settings.pool_size,
    )


class ServerStore(VectorStore):
    engine = "server"

    def __init__(self, settings: QdrantSettings, dimension: int, location: str | None = None) -> None:
        self.dimension = dimension
        self.collection = settings.collection
        self._settings = settings
        self._in_process = location is not None
        if location is not None:  # in-process twin used by tests and the baseline benchmark
            self.client = QdrantClient(location=location)
            self.location = f"qdrant-client local ({location})"
        else:
            self.client = connect(settings)
            self.location = str(settings.url)
        self._ensure_collection()

    def _ensure_collection(self) -> None:
        if self.client.collection_exists(self.collection):
            info = self.client.get_collection(self.collection)
            vectors = info.config.params.vectors
            size = vectors[DENSE].size if isinstance(vectors, dict) and DENSE in vectors else None
            if size is not None and size != self.dimension:
                raise ValueError(
                    f"collection {self.collection} holds {size}-d vectors but the model makes {self.dimension}-d"
                )
            self._ensure_payload_indexes(set(info.payload_schema))
            return
        index = self._settings.index_params
        self.client.create_collection(
            self.collection,
            vectors_config={DENSE: models.VectorParams(size=self.dimension, distance=models.Distance.COSINE)},
            sparse_vectors_config={LEXICAL: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            hnsw_config=models.HnswConfigDiff(
                m=index.m, ef_construct=index.ef_construct, full_scan_threshold=index.full_scan_threshold
            ),
            shard_number=self._settings.shard_number,
            replication_factor=self._settings.replication_factor,
        )
        self._ensure_payload_indexes(set())

    def _ensure_payload_indexes(self, existing: set[str]) -> None:
        if self._in_process:
            return  # qdrant-client's local mode filters without indexes and warns about each one
        for field_name, kind in PAYLOAD_INDEXES.items():
            if field_name not in existing:
                self.client.create_payload_index(self.collection, field_name, _INDEX_KIND[kind], wait=True)

    def upsert(
        self, points: Sequence[PointData], replaces_existing: bool = False, purge_replaced: bool = False
    ) -> None:
        """``purge_replaced`` asks nothing more here: what the server keeps of a replaced point is
        the server's business (its own WAL and optimizer)."""
        if not points:
            return
        structs = []
        for p in points:
            vector: dict[str, Any] = {LEXICAL: models.SparseVector(indices=p.sparse[0], values=p.sparse[1])}
            if p.dense is not None:
                vector[DENSE] = p.dense
            structs.append(models.PointStruct(id=p.id, vector=vector, payload=p.payload))
        self.client.upsert(self.collection, structs, wait=True)

    def delete(self, ids: Sequence[str]) -> None:
        self.client.delete(self.collection, models.PointIdsList(points=list(ids)), wait=True)

    def set_payload(self, point_id: str, payload: dict[str, Any]) -> None:
        self.client.set_payload(self.collection, payload, points=[point_id], wait=True)

    def get(self, ids: Sequence[str], with_vectors: bool = False) -> list[Hit]:
        records = self.client.retrieve(
            self.collection, list(ids), with_payload=True, with_vectors=[DENSE] if with_vectors else False
        )
        by_id = {str(r.id): _hit(r, with_vectors) for r in records}
        return [by_id[i] for i in ids if i in by_id]

    def run_search(self, query: SearchQuery) -> list[Hit]:
        """The dense and lexical rankings in one batch request, fused here with the function the
        embedded engine uses (``store.base.fuse_scores``), so both engines rank alike: Qdrant's
        own fusions are rank-based (RRF) or distribution-based (DBSF), not the min-max sum measured
        best."""
        dense, sparse, flt, limit, mode = query.dense, query.sparse, query.flt, query.limit, query.mode
        query_filter = server_filter(flt)
        params = models.SearchParams(exact=query.exact)
        sparse_query = (
            models.SparseVector(indices=sparse[0], values=sparse[1]) if sparse and sparse[0] else None
        )
        if mode == "hybrid" and (dense is None or sparse is None):  # as the embedded engine decides
            mode = "dense" if sparse is None else "lexical"
        depth = limit if mode != "hybrid" else max(query.prefetch_limit, limit)
        requests = []
        if mode != "lexical" and dense is not None:
            requests.append(
                models.QueryRequest(
                    query=dense,
                    using=DENSE,
                    filter=query_filter,
                    limit=depth,
                    params=params,
                    with_payload=True,
                )
            )
        if mode != "dense" and sparse_query is not None:
            requests.append(
                models.QueryRequest(
                    query=sparse_query, using=LEXICAL, filter=query_filter, limit=depth, with_payload=True
                )
            )
        if not requests:
            return []
        answers = [response.points for response in self.client.query_batch_points(self.collection, requests)]
        payloads = {str(p.id): p.payload or {} for points in answers for p in points}
        dense_ranking = [(str(p.id), p.score) for p in answers.pop(0)] if mode != "lexical" else []
        lexical_points = answers.pop(0) if answers else []
        lexical_ranking = [(str(p.id), score) for score, p in on_unit_scale(lexical_points)]
        ranked = fuse_scores(dense_ranking, lexical_ranking, mode, limit, query.lexical_weight)
        return [hit_of(fused, fused.id, payloads[fused.id]) for fused in ranked]

    def newest(self, flt: MemoryFilter, limit: int, offset: int = 0, sort: SortOrder = "newest") -> list[Hit]:
        key, descending = SORT_KEYS[sort]
        direction = models.Direction.DESC if descending else models.Direction.ASC
        records, _ = self.client.scroll(
            self.collection,
            scroll_filter=server_filter(flt),
            limit=offset + limit,
            with_payload=True,
            order_by=models.OrderBy(key=key, direction=direction),
        )
        return [_hit(r) for r in records[offset : offset + limit]]

    def ids(self) -> Iterator[str]:
        offset = None
        while True:
            records, offset = self.client.scroll(
                self.collection, limit=ID_PAGE, offset=offset, with_payload=False, with_vectors=False
            )
            yield from (str(record.id) for record in records)
            if offset is None:
                return

    def count(self, flt: MemoryFilter | None = None) -> int:
        return self.client.count(self.collection, count_filter=server_filter(flt), exact=True).count

    def facet(self, key: str, flt: MemoryFilter | None = None, limit: int = 100) -> dict[str, int]:
        response = self.client.facet(
            self.collection, key, facet_filter=server_filter(flt), limit=limit, exact=True
        )
        return {str(hit.value): hit.count for hit in response.hits}

    def reencode_lexical(self, reencode: Reencode, version: int, limit: int) -> int:
        """One batch: the records still below ``version``, their lexical vectors and payloads
        replaced in one request (the server re-indexes them itself)."""
        records, _ = self.client.scroll(
            self.collection,
            scroll_filter=server_filter(MemoryFilter(lexical_version_below=version)),
            limit=limit,
            with_payload=True,
            with_vectors=False,
        )
        operations: list[Any] = []
        for record in records:
            (indices, values), payload = reencode(record.payload or {})
            vector = {LEXICAL: models.SparseVector(indices=indices, values=values)}
            operations.append(
                models.UpdateVectorsOperation(
                    update_vectors=models.UpdateVectors(
                        points=[models.PointVectors(id=record.id, vector=vector)]
                    )
                )
            )
            operations.append(
                models.OverwritePayloadOperation(
                    overwrite_payload=models.SetPayload(payload=payload, points=[record.id])
                )
            )
        if operations:
            self.client.batch_update_points(self.collection, operations, wait=True)
        return len(records)

    def flush(self) -> None:
        """Writes use wait=True, so an acknowledged write is already durable on the server."""

    def info(self) -> dict[str, Any]:
        info = self.client.get_collection(self.collection)
        return {
            "engine": self.engine,
            "location": self.location,
            "collection": self.collection,
            "points": info.points_count,
            "indexed_vectors": info.indexed_vectors_count,
            "index_state": str(info.status.value if hasattr(info.status, "value") else info.status),
        }

    def snapshot(self, destination: Path) -> None:
        """A Qdrant snapshot of the collection, downloaded into ``destination`` and then removed
        from the server so backups do not pile up there. The in-process twin has none to take."""
        if self._in_process:
            return
        described = self.client.create_snapshot(self.collection, wait=True)
        if described is None:
            raise RuntimeError(f"Qdrant did not create a snapshot of {self.collection}")
        destination.mkdir(parents=True, exist_ok=True, mode=0o700)
        api_key = self._settings.api_key.get_secret_value() if self._settings.api_key else None
        url = (
            f"{str(self._settings.url).rstrip('/')}/collections/{self.collection}/snapshots/{described.name}"
        )
        with (
            httpx.stream(
                "GET", url, headers={"api-key": api_key} if api_key else {}, timeout=600
            ) as response,
            open(destination / described.name, "wb") as handle,
        ):
            response.raise_for_status()
            for chunk in response.iter_bytes(1 << 20):
                handle.write(chunk)
        self.client.delete_snapshot(self.collection, described.name, wait=True)

    def close(self) -> None:
        self.client.close()
