"""The embedded engine under a damaged manifest, a killed daemon and a delete (issue 20).

- Defect 3: a manifest that parses but is wrong (``{}``, no ``segments``, wrong types, an unknown
  version) or names a shard directory that is gone must stop the start with an error naming the
  file and the fix, and must never delete a shard; directories no manifest names are moved
  aside, not removed.
- Defect 9: ``kill -9`` of the daemon must take its index builder with it at once, whenever it
  lands, and interrupted builds must not let the brute-force active shard grow past its limit.
- Purge (defect 7): the text of a deleted memory must be gone from every file under the storage
  root, whichever tier held it (the active shard, an indexed segment, a shard frozen by a build).
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from clarity.config import IndexParams
from clarity.store.base import PointData
from clarity.store.edge import EdgeStore, StoreDamaged

from .daemon_util import Daemon, free_port

DIM = 384
LIMIT = 100  # storage.active_shard_max_points: the smallest the settings allow


def engine_env(root: Path) -> dict[str, str]:
    """The smallest active shard, so that a few hundred writes go through seals and builds."""
    return {"CLARITY_STORAGE__ACTIVE_SHARD_MAX_POINTS": str(LIMIT)}


def points(n: int, start: int = 0, text: str = "note") -> list[PointData]:
    rng = np.random.default_rng(start)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    return [
        PointData(
            str(uuid.uuid5(uuid.NAMESPACE_OID, f"{text}-{i}")),
            (vectors[i - start] / np.linalg.norm(vectors[i - start])).tolist(),
            ([i % 5000, 7], [1.0, 0.5]),
            {"content": f"{text} {i};", "scope": "p", "memory_type": "fact", "created_at": float(i)},
        )
        for i in range(start, start + n)
    ]


def open_store(path: Path, active_max: int = LIMIT, background: bool = True) -> EdgeStore:
    return EdgeStore(path, DIM, IndexParams(), active_max_points=active_max, build_in_background=background)


def tree(path: Path) -> dict[str, int]:
    """Every file under ``path`` with its size: what a start must leave as it found it."""
    return {str(p.relative_to(path)): p.stat().st_size for p in sorted(path.rglob("*")) if p.is_file()}


def files_holding(root: Path, marker: str) -> list[str]:
    """Files under ``root`` whose bytes hold ``marker`` as UTF-8 or UTF-16."""
    needles = [marker.encode(), marker.encode("utf-16-le"), marker.encode("utf-16-be")]
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if any(needle in data for needle in needles):
                found.append(str(path.relative_to(root)))
    return found


# -- defect 3: the manifest -------------------------------------------------------------------

Damage = Callable[[dict[str, Any]], str]
DAMAGES: dict[str, Damage] = {
    "an empty object": lambda m: "{}",
    "no segments": lambda m: json.dumps({k: v for k, v in m.items() if k != "segments"}),
    "segments as a string": lambda m: json.dumps({**m, "segments": ",".join(m["segments"])}),
    "next as a string": lambda m: json.dumps({**m, "next": str(m["next"])}),
    "a shard listed twice": lambda m: json.dumps({**m, "segments": [m["active"], *m["segments"]]}),
    "an unknown version": lambda m: json.dumps({**m, "version": 99}),
    "not JSON": lambda m: json.dumps(m)[:-7],
}


@pytest.fixture(scope="module")
def store_with_segments(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed store: an indexed segment and a non-empty active shard."""
    path = tmp_path_factory.mktemp("manifest") / "q"
    store = open_store(path, background=False)
    written = points(250)
    for start in range(0, 250, 50):
        store.upsert(written[start : start + 50])
    assert len(store.segments) >= 1 and store.info()["shards"]["active"] == 50
    store.close()
    return path


@pytest.mark.parametrize("damage", list(DAMAGES), ids=list(DAMAGES))
def test_a_damaged_manifest_stops_the_start_and_deletes_nothing(
    store_with_segments: Path, damage: str
) -> None:
    path = store_with_segments
    manifest = path / "manifest.json"
    good = manifest.read_text()
    before = tree(path)
    manifest.write_text(DAMAGES[damage](json.loads(good)))
    try:
        with pytest.raises(StoreDamaged) as raised:
            open_store(path)
        message = str(raised.value)
        assert str(manifest) in message and "restore" in message, message
        after = tree(path)
        del before["manifest.json"], after["manifest.json"]
        assert after == before  # not one shard file removed, moved or created
    finally:
        manifest.write_text(good)
    store = open_store(path)
    assert store.count() == 250
    store.close()


def test_a_missing_segment_is_an_error_not_an_empty_segment(
    store_with_segments: Path, tmp_path: Path
) -> None:
    path = store_with_segments
    segment = json.loads((path / "manifest.json").read_text())["segments"][0]
    shutil.move(path / segment, tmp_path / segment)
    try:
        with pytest.raises(StoreDamaged) as raised:
            open_store(path)
        assert str(path / segment) in str(raised.value) and "restore" in str(raised.value)
        assert not (path / segment).exists()  # not recreated empty
    finally:
        shutil.move(tmp_path / segment, path / segment)
    store = open_store(path)
    assert store.count() == 250
    store.close()


def test_directories_the_manifest_does_not_name_are_moved_aside(store_with_segments: Path) -> None:
    path = store_with_segments
    segment = json.loads((path / "manifest.json").read_text())["segments"][0]
    shutil.copytree(path / segment, path / "shard-99999")  # a stranger, holding points
    (path / "notes").mkdir()
    (path / "notes" / "mine.txt").write_text("keep me")
    shutil.copytree(path / segment, path / "build-shard-00042")  # a crashed build's copy: the engine's own
    store = open_store(path)
    try:
        assert store.count() == 250  # the stranger's points were not taken in
        assert not (path / "shard-99999").exists() and not (path / "notes").exists()
        assert not (path / "build-shard-00042").exists()
        (aside,) = (path / "quarantine").iterdir()
        assert (aside / "notes" / "mine.txt").read_text() == "keep me"
        assert tree(aside / "shard-99999") == tree(path / segment)
    finally:
        store.close()
        shutil.rmtree(path / "quarantine")


def test_leftovers_the_manifest_records_as_the_engines_own_are_removed(store_with_segments: Path) -> None:
    """A crash in a swap's grace period leaves retired shards; one before a new shard joined the
    layout leaves a reserved one. The manifest names both, so they go, and nothing else does."""
    path = store_with_segments
    manifest = path / "manifest.json"
    good = manifest.read_text()
    layout = json.loads(good)
    used = {int(name.removeprefix("shard-")) for name in [layout["active"], *layout["segments"]]}
    retired, reserved = [f"shard-{n:05d}" for n in range(1, layout["next"]) if n not in used][:2]
    for name in (retired, reserved):
        shutil.copytree(path / layout["segments"][0], path / name)
    manifest.write_text(json.dumps({**layout, "version": 2, "retired": [retired], "reserved": [reserved]}))
    try:
        store = open_store(path)
        assert store.count() == 250 and store.info()["quarantine"] is None
        store.close()
        assert not (path / retired).exists() and not (path / reserved).exists()
        assert not (path / "quarantine").exists()
        assert json.loads(manifest.read_text())["retired"] == []
    finally:
        for name in (retired, reserved):
            shutil.rmtree(path / name, ignore_errors=True)
        manifest.write_text(good)


@pytest.fixture(scope="module")
def daemon_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[str]]]:
    """A storage root a real daemon wrote 150 memories into (one indexed segment), then stopped."""
    root = tmp_path_factory.mktemp("daemon")
    daemon = Daemon(root, free_port(), env=engine_env(root))
    try:
        daemon.start().wait_healthy()
        ids = store_batch(daemon, [f"manifest test memory {i}: queue {i} drains hourly" for i in range(150)])
        wait_for_engine(
            daemon, lambda index: index["index_state"] == "idle" and not index["shards"]["sealing"]
        )
    finally:
        assert daemon.stop() == 0
    yield root, ids


def store_batch(daemon: Daemon, contents: list[str], tags: list[str] | None = None) -> list[str]:
    memories = [{"content": c, "scope": "global", "tags": tags or []} for c in contents]
    response = daemon.api("POST", "/memories/batch", json={"memories": memories})
    assert response.status_code == 200, response.text
    return [result["id"] for result in response.json()["results"]]


def wait_for_engine(daemon: Daemon, condition: Callable[[dict[str, Any]], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = daemon.api("GET", "/stats?scope=all")
        assert response.status_code == 200, response.text
        index = response.json()["index"]
        if condition(index):
            return
        time.sleep(0.1)
    raise AssertionError(f"engine state not reached in {timeout}s: {index}")


@pytest.mark.slow
def test_the_daemon_refuses_a_damaged_manifest_and_keeps_every_memory(
    daemon_root: tuple[Path, list[str]],
) -> None:
    root, ids = daemon_root
    qdrant = root / "qdrant"
    manifest = qdrant / "manifest.json"
    good = manifest.read_text()
    shards = sorted(p.name for p in qdrant.glob("shard-*"))
    segment = json.loads(good)["segments"][0]
    port = free_port()
    damages: dict[str, Callable[[], None]] = {
        "{}": lambda: manifest.write_text("{}"),
        "no segments": lambda: manifest.write_text(DAMAGES["no segments"](json.loads(good))),
        "missing segment": lambda: (qdrant / segment).rename(root / "elsewhere"),
    }
    for name, damage in damages.items():
        damage()
        daemon = Daemon(root, port, env=engine_env(root))
        try:
            daemon.start()
            assert daemon.process is not None
            code = daemon.process.wait(60)
        finally:
            daemon.stop()
        log = daemon.log()
        daemon.log_path.unlink()
        assert code != 0, f"{name}: the daemon started:\n{log}"
        assert "Traceback" not in log, log
        assert "manifest.json" in log and "restore" in log, f"{name}:\n{log}"
        if name == "missing segment":
            assert str(qdrant / segment) in log, log
            assert not (qdrant / segment).exists()
            (root / "elsewhere").rename(qdrant / segment)
        manifest.write_text(good)
        assert sorted(p.name for p in qdrant.glob("shard-*")) == shards, name
    daemon = Daemon(root, port, env=engine_env(root))
    try:
        daemon.start().wait_healthy()
        with httpx.Client(base_url=f"{daemon.url}/api", timeout=30) as http:
            assert all(http.get(f"/memories/{i}").status_code == 200 for i in ids)
    finally:
        daemon.stop()


# -- defect 9: index builders never outlive the daemon; the active shard stays bounded ---------


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.update(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def builder_of(pid: int) -> int | None:
    for child in children(pid):
        try:
            if b"edge_build" in Path(f"/proc/{child}/cmdline").read_bytes():
                return child
        except OSError:
            continue
    return None


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie has finished; nobody may be reaping orphans here


def kill_during_a_build(
    daemon: Daemon, ready: Callable[[], bool] = lambda: True, timeout: float = 60
) -> float:
    """``kill -9`` the daemon at the first moment its index builder runs and ``ready()`` holds;
    return how long the builder outlived it."""
    assert daemon.process is not None
    deadline = time.monotonic() + timeout
    while (child := builder_of(daemon.process.pid)) is None or not ready():
        assert time.monotonic() < deadline, f"no index build started:\n{daemon.log()}"
        time.sleep(0.002)
    daemon.process.kill()
    killed = time.monotonic()
    daemon.process.wait()
    while alive(child) and time.monotonic() - killed < 10:
        time.sleep(0.005)
    return time.monotonic() - killed


class Writer:
    """Writes batches to a daemon from a thread, keeping the ids it acknowledged."""

    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.acked: list[str] = []

    def run(self, daemon: Daemon, stop: threading.Event) -> None:
        with httpx.Client(base_url=f"{daemon.url}/api", timeout=30) as http:
            while not stop.is_set():
                contents = [f"kill test {uuid.uuid4().hex}: build {i}" for i in range(self.batch)]
                memories = [{"content": c, "scope": "global"} for c in contents]
                try:
                    response = http.post("/memories/batch", json={"memories": memories})
                except httpx.HTTPError:
                    return  # the daemon is gone: nothing acknowledged
                if response.status_code == 200:
                    self.acked.extend(result["id"] for result in response.json()["results"])


@pytest.mark.slow
def test_kill_9_takes_the_index_builder_along_and_the_active_shard_stays_bounded(tmp_path: Path) -> None:
    root = tmp_path / "root"
    port = free_port()
    writer = Writer(batch=40)
    outlived: list[float] = []
    daemon = Daemon(root, port, env=engine_env(root)).start()
    stop = threading.Event()
    thread = threading.Thread(target=writer.run, args=(daemon, stop))
    try:
        daemon.wait_healthy()
        thread.start()
        # Killed while a build runs and writes keep arriving: they must not pile up unindexed.
        outlived.append(kill_during_a_build(daemon, lambda: len(writer.acked) >= 3 * LIMIT))
        stop.set()
        thread.join(30)
        for _ in range(3):
            # Each start resumes the interrupted build at once: killed right as it starts.
            daemon = Daemon(root, port, env=engine_env(root)).start()
            outlived.append(kill_during_a_build(daemon))
        daemon = Daemon(root, port, env=engine_env(root)).start()
        daemon.wait_healthy()
        shards = daemon.api("GET", "/stats?scope=all").json()["index"]["shards"]
        with httpx.Client(base_url=f"{daemon.url}/api", timeout=30) as http:
            lost = [i for i in writer.acked if http.get(f"/memories/{i}").status_code != 200]
    finally:
        stop.set()
        daemon.stop()
    print(f"builders outlived the daemon by {[round(s, 3) for s in outlived]} s; shards {shards}")
    assert max(outlived) < 1.0, f"an index builder outlived its daemon: {outlived}"
    assert shards["active"] < LIMIT + writer.batch, shards  # the limit plus the batch that crossed it
    assert len(writer.acked) >= 3 * LIMIT and lost == []


def test_the_active_shard_stays_bounded_while_a_build_runs(tmp_path: Path) -> None:
    store = open_store(tmp_path / "q")
    written = points(600)
    try:
        for start in range(0, 600, 50):
            store.upsert(written[start : start + 50])
            assert store.info()["shards"]["active"] < LIMIT + 50, store.info()
        assert store.info()["index_state"] == "building", "the build ended before the writes: tested nothing"
        assert store.count() == 600
        assert store.wait_for_index(120)
        assert store.count() == 600
        assert store.facet("memory_type") == {"fact": 600}  # built segments carry the payload indexes
        assert len(store.get([p.id for p in written])) == 600
    finally:
        store.close()
    again = open_store(tmp_path / "q")
    assert again.count() == 600
    again.close()


# -- purge: deleted text is gone from the files -------------------------------------------------


@pytest.mark.slow
def test_deleted_text_is_gone_from_every_file_under_the_storage_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    daemon = Daemon(root, free_port(), env=engine_env(root))
    in_segment, in_active = f"SEGMARK{uuid.uuid4().hex[:12]}", f"ACTMARK{uuid.uuid4().hex[:12]}"
    try:
        daemon.start().wait_healthy()
        (segment_id,) = store_batch(daemon, [f"the staging vault code is {in_segment}"], tags=["purge-me"])
        kept = store_batch(daemon, [f"purge test memory {i}: the cache expires at {i}" for i in range(120)])
        wait_for_engine(
            daemon, lambda index: index["index_state"] == "idle" and len(index["shards"]["segments"]) >= 1
        )
        store_batch(daemon, [f"the staging vault code is {in_active}"], tags=["purge-me"])
        assert files_holding(root, in_segment) and files_holding(root, in_active)  # both were on disk
        # One forget for both: each delete starts a purge build, and a build takes seconds here.
        forgot = daemon.api("POST", "/forget", json={"scope": "all", "tags": ["purge-me"]})
        assert forgot.status_code == 200 and forgot.json()["deleted"] == 2, forgot.text
        # Documented in EdgeStore.info: purge_pending is 0 once no file holds a deleted memory's text.
        wait_for_engine(daemon, lambda index: index["purge_pending"] == 0 and index["index_state"] == "idle")
        assert files_holding(root, in_segment) == []
        assert files_holding(root, in_active) == []
        with httpx.Client(base_url=f"{daemon.url}/api", timeout=30) as http:
            assert all(http.get(f"/memories/{i}").status_code == 200 for i in kept)
            assert http.get(f"/memories/{segment_id}").status_code == 404
    finally:
        daemon.stop()


def test_text_deleted_from_a_shard_a_build_is_reading_is_purged_too(tmp_path: Path) -> None:
    """A delete that reaches a frozen shard is a tombstone until the build swaps in; the result
    and everything the build copied must not keep the text either."""
    path = tmp_path / "q"
    store = open_store(path)
    marker = f"FROZENMARK{uuid.uuid4().hex[:12]}"
    first = points(LIMIT, text=marker)
    try:
        store.upsert(first)  # reaches the limit: sealed, and its build starts
        assert store.sealing is not None
        store.delete([first[3].id, first[4].id])
        assert store.info()["purge_pending"] > 0
        assert store.wait_for_index(120)
        assert store.info()["purge_pending"] == 0
        leftovers = files_holding(path, f"{marker} 3;") + files_holding(path, f"{marker} 4;")
        assert leftovers == []
        assert files_holding(path, f"{marker} 5;")  # the others are still there
        assert store.count() == LIMIT - 2
    finally:
        store.close()
    again = open_store(path)
    assert again.count() == LIMIT - 2 and again.get([first[3].id]) == []
    again.close()
