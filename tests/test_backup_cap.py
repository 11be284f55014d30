"""Backups never make the size cap evict memories (issue 20, defect 2).

Before the fix a backup staged its copy of the engine under the storage root, where the cap
counted it, and copied the engine's preallocated (sparse) files as dense ones: ~190 MB a shard
for a store of a few MB. With the cap checking during the backup, 600 memories at 53% of
``storage.max_bytes`` became 18. Here: a real daemon whose store sits near half its cap, the cap
checked every 0.2 s, and backups one after another and at once.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from .daemon_util import Daemon, free_port

MEMORIES = 100


def allocated(path: Path) -> int:
    """``du`` of the engine's directory: the blocks its files really take."""
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(directory, name)).st_blocks * 512
    return total


def start(root: Path, max_bytes: int) -> Daemon:
    env = {
        "CLARITY_STORAGE__MAX_BYTES": str(max_bytes),
        "CLARITY_STORAGE__SIZE_CHECK_SECONDS": "0.2",
        # No model: memories are stored with their lexical vector only, in ms rather than 100 ms
        # each on a busy machine; the defect is about files, not vectors.
        "CLARITY_EMBEDDING__MODEL": str(root.parent / "no-model"),
    }
    daemon = Daemon(root, free_port(), env=env)
    daemon.start().wait_healthy()
    return daemon


def remember(daemon: Daemon, i: int) -> int:
    content = f"fact {i}: service {i} listens on port {9000 + i}"
    return daemon.api("POST", "/memories", json={"content": content, "scope": "global"}).status_code


def stored_ids(daemon: Daemon) -> set[str]:
    response = daemon.api("GET", "/memories", params={"scope": "all", "limit": 500})
    assert response.status_code == 200, response.text
    return {m["id"] for m in response.json()["memories"]}


def storage_report(daemon: Daemon, after: float) -> dict:
    """The cap's report from a check that began after ``after`` (time.time())."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        report = httpx.get(f"{daemon.url}/readyz", timeout=10).json()["storage"]
        if report and report.get("checked_at", after) >= after:
            return dict(report)
        time.sleep(0.1)
    raise AssertionError("no storage report")


def backup(daemon: Daemon) -> int:
    response = daemon.api("POST", "/backup")
    assert response.status_code == 200, response.text
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as tar:
        member = tar.extractfile("clarity-backup.json")
        assert member is not None
        return int(json.loads(member.read())["memories"])


def test_repeated_and_concurrent_backups_evict_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    daemon = start(root, 0)  # no cap while the store is filled: its size decides the cap below
    try:
        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(lambda i: remember(daemon, i), range(MEMORIES)))
        assert statuses == [201] * MEMORIES
        kept = stored_ids(daemon)
        assert len(kept) == MEMORIES
    finally:
        assert daemon.stop() == 0
    engine = root / "qdrant"
    cap = 2 * allocated(engine)  # the store at about half its cap, as when the defect was found

    daemon = start(root, cap)
    try:
        assert storage_report(daemon, 0)["state"] == "ok"
        counts = [backup(daemon), backup(daemon)]
        with ThreadPoolExecutor(3) as pool:  # and at once: each stages its own copy
            counts += list(pool.map(lambda _: backup(daemon), range(3)))
        assert counts == [MEMORIES] * 5
        time.sleep(0.5)  # a few more checks of the cap after the last backup
        assert stored_ids(daemon) == kept
        assert "forgot the" not in daemon.log()
        report = storage_report(daemon, time.time())
        assert report["state"] == "ok" and report["evicted"] == 0
        # What the cap counts is what the engine's files really take (du), nothing else.
        assert abs(report["used_bytes"] - allocated(engine)) <= 64 * 1024, (report, allocated(engine))
        assert report["used_bytes"] < cap * 0.7
        leftovers = [p.name for p in (root / "app-data" / "cache").iterdir()]
        assert leftovers == [], leftovers  # staging directories and archives are gone
    finally:
        daemon.stop()
