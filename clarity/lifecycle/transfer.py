"""Moving memories in and out: the export file format, paging, and engine-to-engine copies.

An export is JSON Lines: one header line, then one memory per line with its dense vector. The
format names nothing engine-specific, so the same file restores into the embedded engine or a
Qdrant server. The header names the model by its identity (name and weights hash, see
``clarity.model_identity``): another install of the same weights reuses the vectors, a machine
with another model recomputes them instead of trusting them.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, BinaryIO, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from clarity.config import describe_validation_error
from clarity.embedding.lexical import current_payload, payload_text
from clarity.exchange import ExportCursor, ExportPage, ExportPageRequest
from clarity.json_text import parse_json
from clarity.models import Memory, MemoryRecord, UnreadableMemory, Vector
from clarity.store.base import Hit, MemoryFilter, PointData, VectorStore
from clarity.store.paging import page_oldest

EXPORT_FORMAT = "clarity-export"
EXPORT_VERSION = 1

Progress = Callable[[int], None]

# The most an import reads from one file. An export of the largest store the default
# storage.max_bytes allows stays well under it; anything bigger is refused, not read until
# memory runs out.
MAX_IMPORT_BYTES = 4 * 1024**3
# Formats read whole into one string and parsed at once (memory.json, a Markdown note) cost
# several times their size in memory: a tighter cap. 256 MiB is far past any real notes file.
MAX_TEXT_IMPORT_BYTES = 256 * 1024**2
_VECTOR: TypeAdapter[list[float]] = TypeAdapter(Vector)


class TransferError(ValueError):
    """A file or a copy that cannot be used; the message names the line or the mismatch."""


# -- reading files from outside ------------------------------------------------------------------
# Every import reads through these: regular files only (a FIFO would block forever, /dev/zero
# never ends), and never more than MAX_IMPORT_BYTES.

_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}


def _over_limit(path: Path, size: int | None, limit: int) -> TransferError:
    got = f"{size} bytes" if size is not None else "more"
    return TransferError(
        f"{path}: {got} is over the import limit of {limit} bytes ({limit / 1024**3:g} GiB); "
        "split it, or import a directory of smaller files"
    )


def open_import(path: Path, limit: int = MAX_IMPORT_BYTES) -> BinaryIO:
    """Open a file to import, refusing anything but a regular file of at most ``limit`` bytes.

    Opened non-blocking, so a FIFO is refused at once instead of waiting for a writer; the type
    is checked on the open descriptor, so a file swapped after a check is caught too."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        raise TransferError(f"{path}: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        kind = _KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
        raise TransferError(
            f"{path}: is {kind}; import reads regular files (or a directory of Markdown notes)"
        )
    if info.st_size > limit:
        os.close(fd)
        raise _over_limit(path, info.st_size, limit)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_lines(path: Path, limit: int = MAX_IMPORT_BYTES) -> Iterator[str]:
    """The file's lines as text (with their newline), stopping with a TransferError past ``limit``
    bytes in all, whatever the file does meanwhile (a line never ends, the file grows)."""
    with open_import(path, limit) as handle:
        used = 0
        while raw := handle.readline(limit - used + 1):
            used += len(raw)
            if used > limit:
                raise _over_limit(path, None, limit)
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                at = used - len(raw) + exc.start
                raise TransferError(f"{path}: not UTF-8 text ({exc.reason} at byte {at})") from None


def read_text(path: Path, limit: int = MAX_TEXT_IMPORT_BYTES) -> str:
    return "".join(read_lines(path, limit))


def first_line(path: Path, limit: int = 1_048_576) -> str:
    """The first line (at most ``limit`` bytes of it), for recognising a file's format."""
    with open_import(path) as handle:
        return handle.readline(limit).decode("utf-8", errors="replace")


class ExportHeader(BaseModel):
    model_config = ConfigDict(extra="ignore")

    format: Literal["clarity-export"] = "clarity-export"
    version: int = EXPORT_VERSION
    model: str = Field(
        description="the model that made the vectors: <name>@sha256:<weights hash> (a path in older files)"
    )
    dimension: int = Field(gt=0)
    count: int | None = Field(None, ge=0, description="memories that follow; a shorter file is truncated")
    exported_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


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


_HEADER_ROOM = 24  # spaces after the header, so its count can be rewritten in place


def write_export(handle: IO[str], pages: Iterator[ExportPage], progress: Progress | None = None) -> int:
    """Write pages as JSON Lines; the header is written from the first page. Returns the count.

    Records the daemon cannot read are left out (each page lists them): an export holds only
    what an import accepts. The header's count, announced from the store's total, is then
    rewritten to what was written, so the file still checks out as complete."""
    written = 0
    header: ExportHeader | None = None
    width = 0
    for page in pages:
        if header is None:
            header = ExportHeader(model=page.model, dimension=page.dimension, count=page.total)
            line = header.model_dump_json()
            width = len(line) + _HEADER_ROOM
            handle.write(line.ljust(width) + "\n")
        for i, memory in enumerate(page.memories):
            record: dict[str, Any] = memory.model_dump(mode="json")
            vector = page.vectors[i] if page.vectors else None
            if vector is not None:
                record["vector"] = [round(x, 7) for x in vector]
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        written += len(page.memories)
        if progress:
            progress(len(page.memories) + len(page.unreadable))
    if header is not None and header.count is not None and header.count != written:
        _rewrite_count(handle, header.model_copy(update={"count": written}), width)
    return written


def _rewrite_count(handle: IO[str], header: ExportHeader, width: int) -> None:
    line = header.model_dump_json()
    if len(line) > width or not handle.seekable():
        raise TransferError("cannot correct the export header's count on this output; write to a file")
    end = handle.tell()
    handle.seek(0)
    handle.write(line.ljust(width))
    handle.seek(end)


def is_export(path: Path) -> bool:
    try:
        return bool(parse_json(first_line(path)).get("format") == EXPORT_FORMAT)
    except (TransferError, ValueError, AttributeError):
        return False


def read_export(
    path: Path, limit: int = MAX_IMPORT_BYTES
) -> tuple[ExportHeader, list[MemoryRecord], list[list[float] | None]]:
    """Read and check a whole export before anything is written, so a bad file imports nothing."""
    records: list[MemoryRecord] = []
    vectors: list[list[float] | None] = []
    lines = read_lines(path, limit)
    first = next(lines, None)
    if first is None:
        raise TransferError(f"{path}: empty file; expected a Clarity export (JSON Lines with a header)")
    header = _header(path, first)
    for number, line in enumerate(lines, start=2):
        if not line.strip():
            continue
        record, vector = _record(path, number, line, header.dimension)
        records.append(record)
        vectors.append(vector)
    if header.count is not None and len(records) != header.count:
        raise TransferError(
            f"{path}: the header announces {header.count} memories but {len(records)} follow; "
            "the file is truncated or was edited"
        )
    return header, records, vectors


def _record(path: Path, number: int, line: str, dimension: int) -> tuple[MemoryRecord, list[float] | None]:
    """One memory line: the record schema checks every field, the vector its numbers."""
    where = f"{path}:{number}"
    try:
        data = parse_json(line)
    except ValueError as exc:
        cut = "" if line.endswith("\n") else " (the file looks truncated)"
        raise TransferError(f"{where}: not valid JSON{cut}: {exc}") from None
    if not isinstance(data, dict):
        raise TransferError(f"{where}: expected a JSON object, got {type(data).__name__}")
    vector = data.pop("vector", None)
    try:
        if vector is not None:
            vector = _VECTOR.validate_python(vector)
            if len(vector) != dimension:
                raise TransferError(
                    f"{where}: vector has {len(vector)} numbers but the header says {dimension}"
                )
        return MemoryRecord.model_validate(data), vector
    except ValidationError as exc:
        prefix = "vector." if exc.title != "MemoryRecord" else ""
        raise TransferError(f"{where}: " + "; ".join(describe_validation_error(exc, prefix))) from None


def _header(path: Path, line: str) -> ExportHeader:
    try:
        data = parse_json(line)
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
    unreadable: list[str] = Field(
        default_factory=list, description="ids that fail the record schema, copied as they are"
    )


def copy_store(
    source: VectorStore,
    target: VectorStore,
    encode_sparse: Callable[[str], tuple[list[int], list[float]]],
    progress: Progress | None = None,
    batch: int = 256,
) -> CopyReport:
    """Copy every point with its vectors, then check counts and content hashes; the source is
    only read. The lexical vector is re-encoded (``encode_sparse``, the current encoding) from the
    memory's lexical text, its session context included, which makes it engine-neutral; the
    payload says so (``clarity.embedding.lexical.current_payload``), so the target never
    re-encodes it again."""
    flt = MemoryFilter()
    cursor: ExportCursor | None = None
    copied = 0
    expected: dict[str, str] = {}
    unreadable: list[str] = []
    while True:
        hits, cursor = page_oldest(source, flt, cursor, batch)
        if hits:
            with_vectors = {h.id: h.dense for h in source.get([h.id for h in hits], with_vectors=True)}
            points = []
            for hit in hits:
                _check_readable(hit, unreadable)
                expected[hit.id] = str(hit.payload.get("content_hash"))
                payload = current_payload(hit.payload)
                sparse = encode_sparse(payload_text(payload))
                points.append(PointData(hit.id, with_vectors.get(hit.id), sparse, payload))
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
        copied=copied,
        source_count=source.count(),
        target_count=target.count(),
        mismatched=mismatched,
        unreadable=unreadable,
    )


def _check_readable(hit: Hit, unreadable: list[str]) -> None:
    """A record that fails the schema is still copied as it is (a migration moves what the source
    holds, damaged or not; its lexical text counts its damaged fields as empty) and its id is
    reported."""
    try:
        Memory.from_payload(hit.id, hit.payload)
    except UnreadableMemory:
        unreadable.append(hit.id)
