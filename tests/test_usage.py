"""Use counts live in a sidecar beside the engine (``clarity/memory/usage.py``), not in its payloads.

What a user sees is what it was when the counts were payload fields: every retrieval counts one
use; the dashboard shows it at once, and every read (get, list, search, export) once it is
written, a few seconds later; a record's own ``access_count`` (a store from before the sidecar)
is the base the uses add to, and counts stop at MAX_COUNT. Uses are written in batches off the request path, survive a restart, travel in
exports, backups and imports, and go with a deleted memory. A damaged file or a full disk costs
a log line, never a request.
"""

from __future__ import annotations

import logging
import sqlite3
import tarfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from clarity.embedding import EmbeddingProvider
from clarity.exchange import ImportBatch
from clarity.lifecycle.backup import create_backup, export_pages, restore_backup
from clarity.lifecycle.transfer import read_export, write_export
from clarity.memory import MemoryService
from clarity.memory.usage import FILE_NAME, UsageCounts
from clarity.models import MAX_COUNT, MemoryCreate
from clarity.requests import ForgetRequest, ListRequest, RetrieveRequest
from tests.conftest import make_settings, open_engine


def _service(root: Path, embedder: EmbeddingProvider) -> MemoryService:
    return MemoryService(make_settings(root), open_engine("embedded", root), embedder)


def _store(service: MemoryService, content: str, **fields: object) -> str:
    return service.store(MemoryCreate(content=content, scope="global", **fields)).id  # type: ignore[arg-type]


def _use(service: MemoryService, memory_id: str, times: int = 1) -> None:
    """Retrieve ``memory_id`` (alone: its own content as the query, limit 1) ``times`` times."""
    query = service.get(memory_id).content
    for _ in range(times):
        found = service.retrieve(RetrieveRequest(query=query, scope="global", limit=1))
        assert [r.memory.id for r in found.results] == [memory_id]


def _used(root: Path, embedder: EmbeddingProvider, content: str, base: int = 0) -> tuple[MemoryService, str]:
    """A service on ``root`` holding one memory whose record says ``base`` uses, used twice since."""
    service = _service(root, embedder)
    memory_id = _store(service, content)
    if base:
        service.db.set_payload(memory_id, {"access_count": base})
    _use(service, memory_id, 2)
    return service, memory_id


def _rows(root: Path) -> dict[str, tuple[int, float | None]]:
    """What the sidecar file holds, read the way any SQLite client would."""
    with sqlite3.connect(root / FILE_NAME) as conn:
        return {row[0]: (row[1], row[2]) for row in conn.execute("SELECT id, count, last_used FROM usage")}


def test_uses_are_written_off_the_request_path_and_every_read_shows_them(
    service: MemoryService, tmp_path: Path
) -> None:
    used = _store(service, "The nightly job rotates the logs under /var/log/orion at 03:00")
    other = _store(service, "The release branch is cut every second Thursday")
    before = time.time()
    _use(service, used, 3)
    assert _rows(tmp_path).get(used) is None  # nothing written yet: uses wait in memory
    waiting = service.get(used)
    assert (waiting.access_count, waiting.last_accessed_at) == (0, None)  # as written
    assert service.uses([waiting, service.get(other)]) == {used: 3, other: 0}  # the dashboard's count

    service.usage.flush()
    assert _rows(tmp_path)[used][0] == 3 and other not in _rows(tmp_path)
    memory = service.get(used)
    assert memory.access_count == 3
    assert memory.last_accessed_at is not None and memory.last_accessed_at.timestamp() >= before
    listed = {m.id: m.access_count for m in service.list(ListRequest(scope="all")).memories}
    assert listed == {used: 3, other: 0}
    # The dashboard's search leaves the counts alone, and shows them.
    quiet = service.retrieve(
        RetrieveRequest(query="rotates the logs", scope="global", limit=1), track_use=False
    )
    assert quiet.results[0].memory.access_count == 3
    (page,) = export_pages(service)
    assert {m.id: m.access_count for m in page.memories} == {used: 3, other: 0}
    assert service.uses([memory]) == {used: 3}
    # Out of the engine: the stored record is not touched by a use.
    assert service.db.get([used])[0].payload["access_count"] == 0
    _use(service, used)
    assert service.get(used).access_count == 3 and service.uses([service.get(used)]) == {used: 4}
    service.usage.flush()
    assert _rows(tmp_path)[used][0] == 4 and service.get(used).access_count == 4


def test_a_records_own_count_is_the_base_and_counts_saturate(service: MemoryService) -> None:
    older = _store(service, "Staging certificates are renewed by certbot on the bastion host")
    earlier = datetime(2024, 5, 1, tzinfo=UTC)
    # A store from before the sidecar kept its counts in the record.
    service.db.set_payload(older, {"access_count": 5, "last_accessed_at": earlier.timestamp()})
    memory = service.get(older)
    assert (memory.access_count, memory.last_accessed_at) == (5, earlier)
    _use(service, older, 2)
    assert service.uses([service.get(older)]) == {older: 7}
    service.usage.flush()
    assert service.get(older).access_count == 7
    assert service.get(older).last_accessed_at > earlier  # type: ignore[operator]

    full = _store(service, "The pager rotation hands over on Mondays at 10:00 Berlin time")
    service.db.set_payload(full, {"access_count": MAX_COUNT - 1})
    _use(service, full, 3)
    assert service.uses([service.get(full)]) == {full: MAX_COUNT}
    service.usage.flush()
    assert service.get(full).access_count == MAX_COUNT
    _use(service, full)
    service.usage.flush()
    assert service.get(full).access_count == MAX_COUNT


def test_a_restart_keeps_the_counts(embedder: EmbeddingProvider, tmp_path: Path) -> None:
    root = tmp_path / "root"
    first = _service(root, embedder)
    memory_id = _store(first, "Integration tests need the docker compose stack from ops/compose.yml")
    before = time.time()
    _use(first, memory_id, 2)
    first.close()  # writes what still waits

    second = _service(root, embedder)
    memory = second.get(memory_id)
    assert memory.access_count == 2
    assert memory.last_accessed_at is not None and memory.last_accessed_at.timestamp() >= before
    _use(second, memory_id)
    second.close()
    third = _service(root, embedder)
    assert third.get(memory_id).access_count == 3
    third.close()


def test_deleting_a_memory_drops_its_row(service: MemoryService, tmp_path: Path) -> None:
    deleted = _store(service, "The old VPN endpoint was vpn1.example.internal")
    forgotten = _store(service, "Scratch: the cache spike used redis 6", tags=["spike"])
    evicted = _store(service, "A passing remark about the coffee machine", importance=0.05)
    kept = _store(service, "The database backups are kept for 35 days", importance=0.9)
    for memory_id in (deleted, forgotten, evicted, kept):
        _use(service, memory_id)
    service.usage.flush()
    assert set(_rows(tmp_path)) == {deleted, forgotten, evicted, kept}

    service.delete(deleted)
    # A use that arrives after its memory was deleted (a search that read it just before) is dropped.
    service.usage.touch(deleted, 0)
    assert service.forget(ForgetRequest(scope="all", tags=["spike"])).deleted == 1
    assert service.evict_oldest(5, max_importance=0.1) == 1
    service.usage.flush()
    assert set(_rows(tmp_path)) == {kept}


def test_a_page_of_memories_reads_the_sidecar_in_one_query(service: MemoryService) -> None:
    ids = [_store(service, f"Service {n} of the mesh listens on port {9000 + n}") for n in range(30)]
    for memory_id in ids[::3]:
        service.usage.touch(memory_id, 0)
    service.usage.flush()
    statements: list[str] = []
    reader = service.usage._reader
    assert reader is not None
    reader.set_trace_callback(statements.append)
    try:
        page = service.list(ListRequest(scope="all", limit=30))
    finally:
        reader.set_trace_callback(None)
    assert len(page.memories) == 30
    assert sum(m.access_count for m in page.memories) == 10
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1, statements


def test_a_damaged_sidecar_is_moved_aside_and_counting_goes_on(
    embedder: EmbeddingProvider, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "root"
    first, memory_id = _used(root, embedder, "Feature flags are read from flags.yaml at startup", base=4)
    first.close()
    damage = b"this is no SQLite database " * 200
    (root / FILE_NAME).write_bytes(damage)

    with caplog.at_level(logging.WARNING, logger="clarity.memory.usage"):
        second = _service(root, embedder)
    lines = [r.getMessage() for r in caplog.records if r.name == "clarity.memory.usage"]
    assert len(lines) == 1 and "moved it to" in lines[0], lines
    (aside,) = root.glob(f"{FILE_NAME}.damaged-*")
    assert aside.read_bytes() == damage  # kept, not deleted
    # The record's own count is the base again; uses go on being counted and written.
    assert second.get(memory_id).access_count == 4
    _use(second, memory_id)
    assert second.uses([second.get(memory_id)]) == {memory_id: 5}
    second.close()
    third = _service(root, embedder)
    assert third.get(memory_id).access_count == 5
    third.close()


def test_damage_found_while_running_never_fails_a_request(
    embedder: EmbeddingProvider, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "root"
    service, memory_id = _used(root, embedder, "The CDN purges its cache when a deploy tags a release")
    unread = _store(service, "The staging database is restored from backup every Sunday")
    service.usage.flush()
    assert service.get(memory_id).access_count == 2
    # Another program breaks the file under the running daemon: the table now points at a page
    # that does not exist, which SQLite reports as a damaged database on the next read.
    with sqlite3.connect(root / FILE_NAME, isolation_level=None) as other:
        (version,) = other.execute("PRAGMA schema_version").fetchone()
        other.execute("PRAGMA writable_schema = ON")
        other.execute("UPDATE sqlite_master SET rootpage = 9999 WHERE name = 'usage'")
        other.execute(f"PRAGMA schema_version = {version + 1}")
    other.close()
    with caplog.at_level(logging.WARNING, logger="clarity.memory.usage"):
        # A memory never read before is read from the file, which finds the damage: the record's
        # own count, no error. The one read before keeps the count last read (the read cache).
        assert service.get(unread).access_count == 0
        assert service.get(memory_id).access_count == 2
        _use(service, memory_id)
        assert service.uses([service.get(memory_id)]) == {memory_id: 3}
        service.usage.flush()  # moves the damaged file aside and writes to a fresh one
        assert service.get(memory_id).access_count == 3
        assert service.get(unread).access_count == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "clarity.memory.usage"]
    assert len(lines) == 2 and "moved it to" in lines[1], lines  # the read that found it, the move
    assert len(list(root.glob(f"{FILE_NAME}.damaged-*"))) == 1
    assert _rows(root) == {memory_id: (3, pytest.approx(time.time(), abs=60))}
    service.close()


def test_a_sidecar_that_cannot_be_opened_is_moved_aside(embedder: EmbeddingProvider, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / FILE_NAME).mkdir(parents=True)  # something else sits where the file goes
    (root / FILE_NAME / "keep.txt").write_text("not ours")
    service = _service(root, embedder)
    memory_id = _store(service, "The staging VPN needs the ops group")
    _use(service, memory_id)
    service.close()
    (aside,) = root.glob(f"{FILE_NAME}.damaged-*")
    assert (aside / "keep.txt").read_text() == "not ours"
    assert _rows(root)[memory_id][0] == 1
    # Owner only, like everything under the storage root (the WAL files take the file's mode).
    assert all(path.stat().st_mode & 0o077 == 0 for path in root.glob(f"{FILE_NAME}*") if path.is_file())


def test_a_full_disk_keeps_the_uses_waiting(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    usage = UsageCounts(tmp_path / FILE_NAME, interval=3600)
    ids = [str(uuid.uuid4()) for _ in range(400)]
    usage.touch(ids[0], 0)
    usage.flush()
    writer = usage._writer
    assert writer is not None
    (pages,) = writer.execute("PRAGMA page_count").fetchone()
    writer.execute(f"PRAGMA max_page_count = {pages}")  # the file cannot grow: SQLITE_FULL
    with caplog.at_level(logging.WARNING, logger="clarity.memory.usage"):
        for memory_id in ids:
            usage.touch(memory_id, 2)
        usage.flush()
        usage.flush()
    assert (
        len([r for r in caplog.records if r.name == "clarity.memory.usage"]) == 1
    )  # one line, not one a flush
    assert usage.waiting(ids) == dict.fromkeys(ids, 1)  # still counted, waiting
    writer.execute("PRAGMA max_page_count = 1073741823")  # room again
    usage.flush()
    assert usage.waiting(ids) == {}
    shown = usage.effective(dict.fromkeys(ids, (2, None)))
    assert shown[ids[0]][0] == 2 and all(shown[i][0] == 3 for i in ids[1:])  # written once each
    usage.close()
    assert _rows(tmp_path)[ids[0]][0] == 2 and _rows(tmp_path)[ids[-1]][0] == 3


def test_exports_imports_and_backups_carry_the_counts(embedder: EmbeddingProvider, tmp_path: Path) -> None:
    source = _service(tmp_path / "a", embedder)
    often = _store(source, "Release notes are drafted in docs/releases before tagging")
    once = _store(source, "The load balancer health check hits /healthz every 5 seconds")
    never = _store(source, "Translations are synced from the vendor portal on Fridays")
    _use(source, often, 3)
    _use(source, once)
    source.usage.flush()
    expected = {
        m.id: (m.access_count, m.last_accessed_at) for m in source.list(ListRequest(scope="all")).memories
    }
    assert {k: v[0] for k, v in expected.items()} == {often: 3, once: 1, never: 0}

    exported = tmp_path / "export.jsonl"
    with open(exported, "w", encoding="utf-8") as handle:
        write_export(handle, export_pages(source))
    header, records, vectors = read_export(exported)
    assert {r.id: r.access_count for r in records} == {often: 3, once: 1, never: 0}

    target = _service(tmp_path / "b", embedder)
    target.import_batch(ImportBatch(memories=records, vectors=vectors, model=header.model))
    shown = {
        m.id: (m.access_count, m.last_accessed_at) for m in target.list(ListRequest(scope="all")).memories
    }
    assert shown == expected
    _use(target, often)
    target.usage.flush()
    assert target.get(often).access_count == 4
    target.import_batch(ImportBatch(memories=records, vectors=vectors, model=header.model))
    assert target.get(often).access_count == 3  # an import sets the counts it brings
    target.close()
    reopened = _service(tmp_path / "b", embedder)
    assert {
        m.id: (m.access_count, m.last_accessed_at) for m in reopened.list(ListRequest(scope="all")).memories
    } == expected
    reopened.close()

    # A backup of the embedded engine restores its files, whose records hold no uses: the
    # archive's export brings them back into the sidecar.
    archive = tmp_path / "backup.tar.gz"
    create_backup(source, make_settings(tmp_path / "a"), archive)
    with tarfile.open(archive) as tar:
        assert "engine" in tar.getnames()
    source.close()
    restored_root = tmp_path / "restored"
    restore_backup(
        archive, make_settings(restored_root), lambda: pytest.fail("files restore needs no import")
    )
    restored = _service(restored_root, embedder)
    assert {
        m.id: (m.access_count, m.last_accessed_at) for m in restored.list(ListRequest(scope="all")).memories
    } == expected
    restored.close()


def test_counts_an_older_version_left_in_the_engine_are_adopted_once(
    embedder: EmbeddingProvider, tmp_path: Path
) -> None:
    """A store upgraded between two index builds: the older version's counts still waited in
    ``<engine>/touches.jsonl`` (its format, torn last line included). They become the sidecar's
    rows, the log is kept under another name, and a second start does not adopt it again."""
    first = _service(tmp_path, embedder)
    kept = _store(first, "The nightly job rotates the logs under /var/log/orion at 03:00")
    dropped = _store(first, "The release branch is cut every second Thursday")
    first.db.set_payload(kept, {"access_count": 2})
    first.usage.close()
    first.db.close()
    legacy = tmp_path / "qdrant" / "touches.jsonl"
    used_at = datetime(2026, 11, 30, 9, 15, tzinfo=UTC).timestamp()
    legacy.write_text(
        f'{{"id": "{kept}", "set": {{"access_count": 5, "last_accessed_at": {used_at - 60}}}}}\n'
        f'{{"id": "{dropped}", "set": {{"access_count": 9, "last_accessed_at": {used_at}}}}}\n'
        f'{{"id": "{kept}", "set": {{"access_count": 7, "last_accessed_at": {used_at}}}}}\n'
        f'{{"id": "{dropped}", "set": null}}\n'
        '{"id": "torn", "set": {"acc',
        encoding="utf-8",
    )

    second = _service(tmp_path, embedder)
    memory = second.get(kept)
    assert memory.access_count == 7
    assert memory.last_accessed_at == datetime.fromtimestamp(used_at, UTC)
    assert second.get(dropped).access_count == 0  # its entry was dropped in the log
    assert _rows(tmp_path) == {kept: (7, used_at)}
    assert not legacy.exists() and legacy.with_name("touches.jsonl.adopted").is_file()
    _use(second, kept)
    second.usage.close()
    second.db.close()

    third = _service(tmp_path, embedder)
    assert third.get(kept).access_count == 8  # the use since, not the log again
    third.usage.close()
    third.db.close()
