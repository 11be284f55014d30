"""Moving memories in and out: the export file format, paging, and engine-to-engine copies.

An export is JSON Lines: one header line, then one memory per line with its dense vector. The
format names nothing engine-specific, so the same file restores into the embedded engine or a
Qdrant server, and a machine with another model recomputes the vectors instead of trusting them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clarity.config import describe_validation_error
from clarity.models import ExportCursor, ExportPage, ExportPageRequest, Memory, MemoryRecord
from clarity.store.base import Hit, MemoryFilter, PointData, VectorStore

EXPORT_FORMAT = "clarity-export"
EXPORT_VERSION = 1

Progress = Callable[[int], None]


class TransferError(ValueError):
    """A file or a copy that cannot be used; the message names the line or the mismatch."""


class ExportHeader(BaseModel):
    model_config = ConfigDict(extra="ignore")

    format: Literal["clarity-export"] = "clarity-export"
    version: int = EXPORT_VERSION
    model: str
    dimension: int = Field(gt=0)
    count: int | None = Field(None, ge=0, description="memories that follow; a shorter file is truncated")
    exported_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


def page_oldest(
    store: VectorStore, flt: MemoryFilter, cursor: ExportCursor | None, limit: int
) -> tuple[list[Hit], ExportCursor | None]:
    """The next ``limit`` memories by creation time, and the cursor after them (None at the end).

    Paging on a payload value rather than on engine offsets keeps every page correct while
    memories are added or deleted and while the embedded engine reorganises its shards."""
    cursor = cursor or ExportCursor()
    page_filter = MemoryFilter(
        scopes=flt.scopes, created_from=cursor.after, exclude_ids=[*flt.exclude_ids, *cursor.after_ids]
    )
    hits = store.newest(page_filter, limit=limit, sort="oldest")
    if len(hits) < limit:
        return hits, None
    last = hits[-1].payload.get("created_at")
    tied = [h.id for h in hits if h.payload.get("created_at") == last]
    carried = cursor.after_ids if cursor.after == last else []
    return hits, ExportCursor(after=last, after_ids=[*carried, *tied])


def iter_export(
    fetch: Callable[[ExportPageRequest], ExportPage], request: ExportPageRequest
) -> Iterator[ExportPage]:
    """Every page of an export, from the service itself or from a daemon's REST API."""
    while True:
        page = fetch(request)
        yield page
        if page.next is None:
            return
        request = request.model_copy(update={"cursor": page.next})


# -- files ----------------------------------------------------------------------------------------


def write_export(handle: IO[str], pages: Iterator[ExportPage], progress: Progress | None = None) -> int:
    """Write pages as JSON Lines; the header is written from the first page. Returns the count."""
    written = 0
    for page in pages:
        if written == 0:
            header = ExportHeader(model=page.model, dimension=page.dimension, count=page.total)
            handle.write(header.model_dump_json() + "\n")
        for i, memory in enumerate(page.memories):
            record: dict[str, Any] = memory.model_dump(mode="json")
            vector = page.vectors[i] if page.vectors else None
            if vector is not None:
                record["vector"] = [round(x, 7) for x in vector]
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        written += len(page.memories)
        if progress:
            progress(len(page.memories))
    return written


def is_export(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8") as handle:
            first = handle.readline()
        return json.loads(first).get("format") == EXPORT_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def read_export(path: Path) -> tuple[ExportHeader, list[MemoryRecord], list[list[float] | None]]:
    """Read and check a whole export before anything is written, so a bad file imports nothing."""
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise TransferError(f"{path}: {exc.strerror}") from None
    records: list[MemoryRecord] = []
    vectors: list[list[float] | None] = []
    with handle:
        try:
            lines = handle.readlines()
        except UnicodeDecodeError as exc:
            raise TransferError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        if not lines:
            raise TransferError(f"{path}: empty file; expected a Clarity export (JSON Lines with a header)")
        header = _header(path, lines[0])
        for number, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError as exc:
                cut = "" if line.endswith("\n") else " (the file looks truncated)"
                raise TransferError(f"{path}:{number}: not valid JSON{cut}: {exc}") from None
            if not isinstance(data, dict):
                raise TransferError(f"{path}:{number}: expected a JSON object, got {type(data).__name__}")
            vector = data.pop("vector", None)
            if vector is not None and (not isinstance(vector, list) or len(vector) != header.dimension):
                size = len(vector) if isinstance(vector, list) else type(vector).__name__
                raise TransferError(
                    f"{path}:{number}: vector has {size} numbers but the header says {header.dimension}"
                )
            try:
                records.append(MemoryRecord.model_validate(data))
            except ValidationError as exc:
                raise TransferError(
                    f"{path}:{number}: " + "; ".join(describe_validation_error(exc))
                ) from None
            vectors.append(vector)
    if header.count is not None and len(records) != header.count:
        raise TransferError(
            f"{path}: the header announces {header.count} memories but {len(records)} follow; "
            "the file is truncated or was edited"
        )
    return header, records, vectors


def _header(path: Path, line: str) -> ExportHeader:
    try:
        data = json.loads(line)
    except ValueError:
        data = None
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise TransferError(
            f"{path}: not a Clarity export (its first line is not a {EXPORT_FORMAT!r} header); "
            "Clarity also imports a memory server's memory.json and a directory of Markdown notes"
        )
    try:
        header = ExportHeader.model_validate(data)
    except ValidationError as exc:
        raise TransferError(f"{path}:1: " + "; ".join(describe_validation_error(exc))) from None
    if header.version > EXPORT_VERSION:
        raise TransferError(f"{path}: export version {header.version} is newer than this Clarity reads")
    return header


# -- engine to engine ------------------------------------------------------------------------------


class CopyReport(BaseModel):
    copied: int
    source_count: int
    target_count: int
    mismatched: list[str] = Field(default_factory=list, description="ids whose content hash differs")


def copy_store(
    source: VectorStore,
    target: VectorStore,
    encode_sparse: Callable[[Memory], tuple[list[int], list[float]]],
    progress: Progress | None = None,
    batch: int = 256,
) -> CopyReport:
    """Copy every point with its vectors, then check counts and content hashes; the source is
    only read. The lexical vector is re-encoded from the text, which makes it engine-neutral."""
    flt = MemoryFilter()
    cursor: ExportCursor | None = None
    copied = 0
    expected: dict[str, str] = {}
    while True:
        hits, cursor = page_oldest(source, flt, cursor, batch)
        if hits:
            with_vectors = {h.id: h.dense for h in source.get([h.id for h in hits], with_vectors=True)}
            points = []
            for hit in hits:
                memory = Memory.from_payload(hit.id, hit.payload)
                expected[memory.id] = memory.content_hash
                points.append(PointData(hit.id, with_vectors.get(hit.id), encode_sparse(memory), hit.payload))
            target.upsert(points, replaces_existing=True)
            copied += len(hits)
            if progress:
                progress(len(hits))
        if cursor is None:
            break
    mismatched: list[str] = []
    ids = list(expected)
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        found = {h.id: h.payload.get("content_hash") for h in target.get(chunk)}
        mismatched.extend(i for i in chunk if found.get(i) != expected[i])
    return CopyReport(
        copied=copied, source_count=source.count(), target_count=target.count(), mismatched=mismatched
    )
