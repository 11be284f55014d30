"""Backups: one archive holding everything needed to bring a memory back.

An archive (tar.gz) carries three things:
- ``engine/``: the engine's own files (the embedded engine's shards and manifest, or a Qdrant
  snapshot of the collection), copied consistently while the daemon runs;
- ``memories.jsonl``: the same memories as a portable export, which restores into either engine
  (with their use counts, which live beside the engine: ``clarity.memory.usage``);
- ``app-data/``: Clarity's own settings beside the store (not its caches).
Restoring never deletes: whatever the storage held before is moved aside, next to it.

A backup is staged in a private (0700) directory next to the archive it writes, never in the
engine's directory: the copies there would be counted by the size cap (``retention``), which
then evicted memories to make room for their own backup. Staging beside the archive keeps it on
the filesystem whose free space was checked, and the engine files are copied sparse
(``store.space.copy_sparse``), so the staging takes what the data takes, not the ~190 MB of
preallocated holes of every shard.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from clarity import __version__
from clarity.config import Settings
from clarity.exchange import ExportPage, ExportPageRequest, ImportBatch, ImportSummary
from clarity.lifecycle.transfer import Progress, TransferError, iter_export, read_export, write_export
from clarity.memory import MemoryService
from clarity.memory.usage import UsageCounts, recorded_use, sidecar_path
from clarity.models import MemoryRecord
from clarity.store.space import SpaceGuard, allocated_bytes

BACKUP_FORMAT = "clarity-backup"
MANIFEST = "clarity-backup.json"
STAGING_PREFIX = ".clarity-backup-"
_PAGE = 500
# Room a backup needs, as a multiple of the engine's allocated size: the sparse copy, the
# portable export (its vectors as JSON are about as large) and the archive (smaller, compressed).
_SPACE_FACTOR = 3
_running = 0
_running_lock = threading.Lock()


def backup_running() -> bool:
    """A backup is being taken in this process (the size cap waits for it to end)."""
    return _running > 0


@contextlib.contextmanager
def _in_progress() -> Iterator[None]:
    global _running
    with _running_lock:
        _running += 1
    try:
        yield
    finally:
        with _running_lock:
            _running -= 1


class BackupSummary(BaseModel):
    path: str
    memories: int
    bytes: int
    engine: str
    seconds: float


class RestoreSummary(BaseModel):
    memories: int
    engine: str
    moved_aside: str | None
    imported: ImportSummary | None = None


def export_pages(service: MemoryService, scope: str = "all") -> Iterator[ExportPage]:
    return iter_export(service.export_page, ExportPageRequest(scope=scope, limit=_PAGE))


def create_backup(
    service: MemoryService, settings: Settings, archive: Path, progress: Progress | None = None
) -> BackupSummary:
    """Write the archive next to its final name first, so a failed backup never leaves half a file."""
    started = time.perf_counter()
    with _in_progress(), _staging_for(service, settings, archive) as staging:
        # Writes wait while the engine files and the portable export are taken, so both hold the
        # same memories; reads (hooks, searches) go on.
        with service.writes_paused():
            service.db.snapshot(staging / "engine")
            with open(staging / "memories.jsonl", "w", encoding="utf-8") as handle:
                count = write_export(handle, export_pages(service), progress)
        manifest = {
            "format": BACKUP_FORMAT,
            "version": 1,
            "created_at": datetime.now(UTC).isoformat(),
            "clarity": __version__,
            "engine": service.db.engine,
            "location": service.db.location,
            "collection": settings.qdrant.collection,
            "model": service.embedder.identity,
            "memories": count,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        partial = archive.with_name(archive.name + ".partial")
        try:
            with tarfile.open(partial, "w:gz") as tar:
                tar.add(staging / MANIFEST, arcname=MANIFEST)
                tar.add(staging / "memories.jsonl", arcname="memories.jsonl")
                tar.add(staging / "engine", arcname="engine")
                app_data = settings.storage.app_data_dir
                if app_data.is_dir():
                    skip = {settings.storage.cache_dir.name, staging.name, partial.name}
                    tar.add(app_data, arcname="app-data", filter=_skipping(skip))
            os.chmod(partial, 0o600)
            os.replace(partial, archive)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    return BackupSummary(
        path=str(archive),
        memories=count,
        bytes=archive.stat().st_size,
        engine=service.db.engine,
        seconds=round(time.perf_counter() - started, 2),
    )


@contextlib.contextmanager
def _staging_for(service: MemoryService, settings: Settings, archive: Path) -> Iterator[Path]:
    """A private directory beside the archive, once there is room for the backup above the
    free-space floor (``storage.min_free_bytes``); removed whatever happens."""
    engine_dir = Path(service.db.location)
    where = archive.parent.resolve()
    if service.db.engine == "embedded" and where.is_relative_to(engine_dir.resolve()):
        raise ValueError(
            f"archive: {archive} is inside the engine's directory {engine_dir}; write it anywhere else"
        )
    where.mkdir(parents=True, exist_ok=True, mode=0o700)
    needed = _SPACE_FACTOR * allocated_bytes(engine_dir) if service.db.engine == "embedded" else 0
    SpaceGuard(where, settings.storage.min_free_bytes).check("backup", needed=needed)
    with tempfile.TemporaryDirectory(prefix=STAGING_PREFIX, dir=where) as tmp:  # mode 0700
        staging = Path(tmp)
        (staging / "engine").mkdir(mode=0o700)
        yield staging


def _skipping(names: set[str]) -> Callable[[tarfile.TarInfo], tarfile.TarInfo | None]:
    """Leave out app-data's cache, and the backup's own staging and partial archive if the
    archive is being written inside app-data."""

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        return None if len(parts) > 1 and parts[1] in names else info

    return keep


def read_manifest(archive: Path) -> dict[str, object]:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            member = tar.extractfile(MANIFEST)
            if member is None:
                raise TransferError(f"{archive}: not a Clarity backup (no {MANIFEST})")
            data = json.loads(member.read())
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise TransferError(f"{archive}: not a readable backup archive ({exc})") from None
    except KeyError:
        raise TransferError(f"{archive}: not a Clarity backup (no {MANIFEST})") from None
    if data.get("format") != BACKUP_FORMAT:
        raise TransferError(f"{archive}: {MANIFEST} does not describe a Clarity backup")
    return dict(data)


def restore_backup(
    archive: Path,
    settings: Settings,
    open_service: Callable[[], MemoryService],
    progress: Progress | None = None,
) -> RestoreSummary:
    """Bring an archive back into the configured engine. The caller holds the storage lock, so no
    daemon is writing meanwhile. The embedded engine gets the archived files when the archive
    came from the embedded engine; otherwise memories are imported from the portable export."""
    manifest = read_manifest(archive)
    root = settings.storage.root
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with tempfile.TemporaryDirectory(prefix="restore-", dir=root) as tmp:
        staging = Path(tmp)
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(staging, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise TransferError(f"{archive}: cannot unpack ({exc}); nothing was changed") from None
        header, records, vectors = read_export(staging / "memories.jsonl")
        copy_app_data(staging, settings)
        moved: str | None = None
        if settings.engine == "embedded":
            target = settings.storage.qdrant_dir
            if target.exists():
                aside = target.with_name(f"{target.name}.before-restore-{stamp}")
                target.rename(aside)
                moved = str(aside)
            if manifest.get("engine") == "embedded":
                (staging / "engine").rename(target)
                _restore_use_counts(settings, records)
                if progress:
                    progress(len(records))
                return RestoreSummary(memories=len(records), engine="embedded", moved_aside=moved)
        service = open_service()
        try:
            summary = ImportSummary()
            for start in range(0, len(records), _PAGE):
                batch = ImportBatch(
                    memories=records[start : start + _PAGE],
                    vectors=vectors[start : start + _PAGE],
                    model=header.model,
                )
                summary.add(service.import_batch(batch))
                if progress:
                    progress(len(batch.memories))
        finally:
            service.close()
        return RestoreSummary(
            memories=len(records), engine=settings.engine, moved_aside=moved, imported=summary
        )


def _restore_use_counts(settings: Settings, records: list[MemoryRecord]) -> None:
    """Use counts live beside the engine (``clarity.memory.usage``), not in its files: the archive's
    export carries them, and they replace the sidecar's for the memories restored."""
    usage = UsageCounts(sidecar_path(settings.storage.root))
    try:
        usage.set({record.id: recorded_use(record) for record in records})
    finally:
        usage.close()


def copy_app_data(staging: Path, settings: Settings) -> None:
    """Files of app-data that the current install lacks (a restore never overwrites settings)."""
    source = staging / "app-data"
    if not source.is_dir():
        return
    for path in source.rglob("*"):
        dest = settings.storage.app_data_dir / path.relative_to(source)
        if path.is_file() and not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copy2(path, dest)
