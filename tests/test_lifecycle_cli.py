"""The lifecycle commands as a user runs them, against a real daemon."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import uuid
from pathlib import Path

import httpx
import pytest

from .daemon_util import Daemon, free_port, run_clarity

pytestmark = pytest.mark.slow


def clarity(daemon: Daemon, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_clarity({**daemon.env(), "COLUMNS": "200"}, *args, cwd=cwd)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Daemon:
    d = Daemon(tmp_path_factory.mktemp("cli-root"), free_port()).start()
    d.wait_ready()
    yield d  # type: ignore[misc]
    d.stop()


def _store(daemon: Daemon, content: str, **fields: object) -> str:
    response = daemon.api("POST", "/memories", json={"content": content, "scope": "global", **fields})
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


def _all(daemon: Daemon) -> dict[str, str]:
    page = daemon.api("GET", "/memories", params={"scope": "all", "limit": 500}).json()
    return {m["id"]: m["content"] for m in page["memories"]}


def test_export_then_import_into_another_daemon(daemon: Daemon, tmp_path: Path) -> None:
    for i in range(12):
        _store(daemon, f"exported fact {i}: the nightly job {i} runs at 0{i % 10}:00", tags=["cli"])
    exported = tmp_path / "all.jsonl"
    result = clarity(daemon, "export", str(exported))
    assert result.returncode == 0, result.stderr
    assert "exported" in result.stdout and "exporting" in result.stderr  # summary and progress bar
    before = _all(daemon)

    other = Daemon(tmp_path / "other", free_port()).start()
    try:
        other.wait_ready()
        dry = clarity(other, "import", str(exported), "--dry-run")
        assert dry.returncode == 0 and "dry run" in dry.stdout and _all(other) == {}
        first = clarity(other, "import", str(exported))
        assert first.returncode == 0, first.stderr
        assert f"{len(before)} new" in first.stdout
        again = clarity(other, "import", str(exported))
        assert "0 new" in again.stdout and f"{len(before)} replaced" in again.stdout
        assert _all(other) == before
    finally:
        other.stop()


def test_bad_import_file_exits_2_and_stores_nothing(daemon: Daemon, tmp_path: Path) -> None:
    before = _all(daemon)
    truncated = tmp_path / "cut.jsonl"
    truncated.write_text(
        '{"format": "clarity-export", "version": 1, "model": "m", "dimension": 384, "count": 2}\n{"id": "x',
        encoding="utf-8",
    )
    result = clarity(daemon, "import", str(truncated))
    assert result.returncode == 2
    assert "cut.jsonl:2: not valid JSON (the file looks truncated)" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    unknown = tmp_path / "data.csv"
    unknown.write_text("a,b\n1,2\n", encoding="utf-8")
    result = clarity(daemon, "import", str(unknown))
    assert result.returncode == 2 and "format not recognised" in result.stderr
    assert _all(daemon) == before


def test_import_memory_server_json_and_markdown(daemon: Daemon, tmp_path: Path) -> None:
    memory_json = tmp_path / "memory.json"
    memory_json.write_text(
        "\n".join(
            json.dumps(item)
            for item in [
                {
                    "type": "entity",
                    "name": "Ada",
                    "entityType": "person",
                    "observations": ["maintains the billing service", "prefers Rust"],
                },
                {
                    "type": "entity",
                    "name": "billing",
                    "entityType": "service",
                    "observations": ["deploys with Argo CD"],
                },
                {"type": "relation", "from": "Ada", "to": "billing", "relationType": "owns"},
            ]
        ),
        encoding="utf-8",
    )
    dry = clarity(daemon, "import", str(memory_json), "--dry-run", "--scope", "global")
    assert dry.returncode == 0 and "4 memories would be imported" in dry.stdout
    done = clarity(daemon, "import", str(memory_json), "--scope", "global")
    assert done.returncode == 0 and "4 new" in done.stdout, done.stderr
    contents = set(_all(daemon).values())
    assert {"Ada (person): prefers Rust", "Ada owns billing"} <= contents

    notes = tmp_path / "notes"
    (notes / "sub").mkdir(parents=True)
    (notes / "runbook.md").write_text(
        "---\ntags: [ops, oncall]\n---\n# Restarts\nUse systemctl restart api.\n\n# Logs\nLogs are in /var/log/api.\n",
        encoding="utf-8",
    )
    (notes / "sub" / "style.md").write_text("Prefer small pull requests.\n", encoding="utf-8")
    per_heading = clarity(daemon, "import", str(notes), "--split", "heading", "--scope", "global")
    assert per_heading.returncode == 0 and "3 new" in per_heading.stdout, per_heading.stderr
    found = daemon.api(
        "POST", "/search", json={"query": "where are the api logs", "scope": "global", "limit": 1}
    ).json()
    top = found["results"][0]["memory"]
    assert top["content"].startswith("# Logs") and top["source"] == "import"
    assert top["metadata"]["path"] == "runbook.md" and "oncall" in top["tags"]


def test_forget_dry_run_then_yes(daemon: Daemon) -> None:
    for i in range(3):
        _store(
            daemon,
            f"throwaway observation {i} about flaky test {i}",
            memory_type="observation",
            importance=0.1,
        )
    dry = clarity(
        daemon, "forget", "--type", "observation", "--max-importance", "0.2", "--scope", "all", "--dry-run"
    )
    assert dry.returncode == 0 and "dry run: 3 memories match" in dry.stdout
    refused = clarity(daemon, "forget", "--type", "observation", "--scope", "all")
    assert refused.returncode == 2 and "pass --yes" in refused.stderr
    done = clarity(
        daemon, "forget", "--type", "observation", "--max-importance", "0.2", "--scope", "all", "--yes"
    )
    assert done.returncode == 0 and "forgot 3 memories" in done.stdout
    bad = clarity(daemon, "forget", "--older-than", "-3")
    assert bad.returncode == 2 and "--older-than=-3.0" in bad.stderr and "older_than_days" not in bad.stderr


def test_backup_while_writing_then_restore(daemon: Daemon, tmp_path: Path) -> None:
    _store(daemon, "kept across a restore: the api runs on port 8443")
    stop = threading.Event()

    def keep_writing() -> None:
        n = 0
        while not stop.is_set():
            httpx.post(
                f"{daemon.url}/api/memories",
                json={"content": f"concurrent write {n}", "scope": "global"},
                timeout=30,
            )
            n += 1

    writer = threading.Thread(target=keep_writing)
    writer.start()
    archive = tmp_path / "b.tar.gz"
    try:
        result = clarity(daemon, "backup", str(archive))
    finally:
        stop.set()
        writer.join()
    assert result.returncode == 0, result.stderr
    assert archive.stat().st_mode & 0o077 == 0
    backed_up = int(result.stdout.split("backed up ")[1].split()[0])
    at_backup = _all(daemon)
    assert backed_up <= len(at_backup)

    refused = clarity(daemon, "restore", str(archive), "--yes")
    assert refused.returncode == 1 and "clarity stop" in refused.stderr  # the daemon still owns the storage

    _store(daemon, "written after the backup, gone after the restore")
    daemon.stop()
    try:
        restored = clarity(daemon, "restore", str(archive), "--yes")
        assert restored.returncode == 0, restored.stderr
        assert f"restored {backed_up} memories" in restored.stdout and "kept at" in restored.stdout
    finally:
        daemon.start()
        daemon.wait_ready()
    after = _all(daemon)
    assert len(after) == backed_up
    assert "kept across a restore: the api runs on port 8443" in after.values()
    assert "written after the backup, gone after the restore" not in after.values()


def test_migrate_refuses_bad_targets_and_a_running_daemon(daemon: Daemon) -> None:
    bad = clarity(daemon, "migrate", "--to", "ftp://example")
    assert bad.returncode == 2 and "neither a Qdrant URL" in bad.stderr
    same = clarity(daemon, "migrate", "--to", "embedded")
    assert same.returncode == 2 and "already is the embedded engine" in " ".join(same.stderr.split())
    busy = clarity(daemon, "migrate", "--to", "http://127.0.0.1:9")
    assert busy.returncode == 1 and "clarity stop" in busy.stderr


@pytest.mark.skipif(
    not os.environ.get("QDRANT_URL"), reason="QDRANT_URL not set: migrating to a server needs one"
)
def test_migrate_to_a_qdrant_server_and_back(tmp_path: Path) -> None:
    from qdrant_client import QdrantClient

    collection = f"migrate_{uuid.uuid4().hex[:8]}"
    source = Daemon(tmp_path / "src", free_port(), env={"CLARITY_QDRANT__COLLECTION": collection}).start()
    source.wait_ready()
    ids = {_store(source, f"migrated fact {i}: queue {i} holds {i * 7} jobs") for i in range(30)}
    before = _all(source)
    source.stop()
    url = os.environ["QDRANT_URL"]
    moved = clarity(source, "migrate", "--to", url)
    assert moved.returncode == 0, moved.stderr
    assert "counts and content hashes verified" in " ".join(moved.stdout.split())
    client = QdrantClient(url=url, api_key=os.environ.get("QDRANT_API_KEY"))
    try:
        assert client.count(collection, exact=True).count == len(ids)
        on_server = Daemon(tmp_path / "srv", free_port(), env={"CLARITY_QDRANT__COLLECTION": collection})
        base_env = on_server.env
        on_server.env = lambda: {**base_env(), "QDRANT_URL": url}  # type: ignore[method-assign]
        on_server.start()
        try:
            on_server.wait_ready()
            assert _all(on_server) == before
        finally:
            on_server.stop()
    finally:
        client.delete_collection(collection)
