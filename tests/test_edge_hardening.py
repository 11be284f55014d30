"""The embedded engine under a damaged manifest, a killed daemon and a delete (issue 20).

- Defect 3: a manifest that parses but is wrong (``{}``, no ``segments``, wrong types, an unknown
  version) or names a shard directory that is gone must stop the start with an error naming the
  file and the fix, and must never delete a shard; directories no manifest names are moved
  aside, not removed.
- Defect 9: ``kill -9`` of the daemon must take its index builder with it at once, whenever it
  lands, and interrupted builds must not let the brute-force active shard grow past its limit.
- Purge (defect 7): the text of a deleted memory must be gone from every file under the storage
  root, whichever tier held it (the active shard, an indexed segment, a shard frozen by a build),
  and a run of deletes must cost one rebuild, not one each (storage.purge_delay_seconds).
- From review: a seal whose new shard cannot be made (a full disk) must leave a layout the next
  start opens, and a build that cannot record its name must fail (and be retried), not hang;
  a build's scratch copies are removed only under a name the engine recorded; a manifest nested
  too deeply is a damaged manifest; a version-1 manifest from before ``merging`` still opens.
"""

from __future__ import annotations

import errno
import json
import os
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
from clarity.store.edge import EdgeStore
from clarity.store.edge import layout as edge_layout
from clarity.store.edge.manifest import StoreDamaged

from .daemon_util import Daemon, free_port
from .test_edge_tiers import seal_by_hand

DIM = 384
LIMIT = 100  # storage.active_shard_max_points: the smallest the settings allow
# storage.purge_delay_seconds for these tests: short, yet well above the pause between two
# deletes sent one after another (a quarter of a second here, plus the request).
PURGE_DELAY = 1.0


def engine_env(root: Path) -> dict[str, str]:
    """The smallest active shard, so that a few hundred writes go through seals and builds, and
    a purge that starts a second after the last delete."""
    return {
        "CLARITY_STORAGE__ACTIVE_SHARD_MAX_POINTS": str(LIMIT),
        "CLARITY_STORAGE__PURGE_DELAY_SECONDS": str(PURGE_DELAY),
    }


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
    return EdgeStore(
        path,
        DIM,
        IndexParams(),
        active_max_points=active_max,
        build_in_background=background,
        purge_delay_seconds=PURGE_DELAY / 2,
    )


def wait_purged(store: EdgeStore, timeout: float = 120) -> None:
    """Until no engine file holds deleted text: the purge waits for deletes to pause first."""
    deadline = time.monotonic() + timeout
    while store.info()["purge_pending"] or store.info()["index_state"] == "building":
        assert time.monotonic() < deadline, f"not purged in {timeout}s: {store.info()}"
        time.sleep(0.05)


def tree(path: Path) -> dict[str, int]:
    """Every file under ``path`` with its size: what a start must leave as it found it."""
    return {str(p.relative_to(path)): p.stat().st_size for p in sorted(path.rglob("*")) if p.is_file()}


def markers_on_disk(root: Path, prefix: str, markers: list[str]) -> set[str]:
    """Which of ``markers``, all starting with ``prefix``, some file under ``root`` holds, as
    UTF-8 or UTF-16. Each file is searched once per encoding for the prefix, not once per
    marker: the engine's files are hundreds of MB of holes."""
    assert all(marker.startswith(prefix) for marker in markers)
    found: set[str] = set()
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
            needle = prefix.encode(encoding)
            at = data.find(needle)
            while at >= 0:
                found |= {m for m in markers if data.startswith(m.encode(encoding), at)}
                at = data.find(needle, at + 1)
    return found


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
    "nested too deeply": lambda m: "[" * 200_000,  # was a RecursionError out of json.loads
    # Only version 1 had writers that left merging out (old_manifest below); version 2 writes it.
    "version 2 without merging": lambda m: json.dumps({k: v for k, v in m.items() if k != "merging"}),
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
    # Named like a build's scratch copy, but for a shard name the manifest never reserved: a name
    # is no record, so it is moved aside like any stranger (it used to be deleted by pattern).
    (path / "build-shard-99999").mkdir()
    (path / "build-shard-99999" / "mine.txt").write_text("keep me too")
    store = open_store(path)
    try:
        assert store.count() == 250  # the stranger's points were not taken in
        assert not (path / "shard-99999").exists() and not (path / "notes").exists()
        assert not (path / "build-shard-99999").exists()
        (aside,) = (path / "quarantine").iterdir()
        assert (aside / "notes" / "mine.txt").read_text() == "keep me"
        assert (aside / "build-shard-99999" / "mine.txt").read_text() == "keep me too"
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
    # A build's scratch copies are named after its result's reserved name: a crash mid-build.
    made = [retired, reserved, f"build-{reserved}", f"build-{reserved}-sources"]
    for name in made:
        shutil.copytree(path / layout["segments"][0], path / name)
    manifest.write_text(json.dumps({**layout, "version": 2, "retired": [retired], "reserved": [reserved]}))
    try:
        store = open_store(path)
        assert store.count() == 250 and store.info()["quarantine"] is None
        store.close()
        assert [name for name in made if (path / name).exists()] == []
        assert not (path / "quarantine").exists()
        assert json.loads(manifest.read_text())["retired"] == []
    finally:
        for name in made:
            shutil.rmtree(path / name, ignore_errors=True)
        manifest.write_text(good)


def old_manifest(layout: dict[str, Any]) -> str:
    """``manifest.json`` as every version before commit 578f3bd wrote it (``_save_manifest``
    from the first commit, ac3d0ac, on): version 1, these seven keys in this order, no
    ``merging`` (578f3bd added it without raising the version), through ``json.dump``."""
    keys = ("next", "active", "sealing", "segments", "tombstones", "dimension")
    return json.dumps({"version": 1, **{key: layout[key] for key in keys}})


def test_a_version_1_manifest_from_before_merging_opens(store_with_segments: Path) -> None:
    path = store_with_segments
    manifest = path / "manifest.json"
    good = manifest.read_text()
    layout = json.loads(good)
    assert not layout["merging"] and not layout["tombstones"] and layout["sealing"] is None
    manifest.write_text(old_manifest(layout))
    try:
        store = open_store(path)
        assert store.count() == 250 and store.info()["quarantine"] is None
        store.close()
        rewritten = json.loads(manifest.read_text())
        assert rewritten["version"] == 2 and rewritten["merging"] == []
        assert rewritten["segments"] == layout["segments"] and rewritten["active"] == layout["active"]
    finally:
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
        "nested too deeply": lambda: manifest.write_text("[" * 200_000),  # was "unexpected RecursionError"
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
            if b"clarity.store.edge.child" in Path(f"/proc/{child}/cmdline").read_bytes():
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


# -- a seal or build that fails on a full disk ----------------------------------------------------


class CreateFailsOnce:
    """Qdrant Edge's ``EdgeShard`` as the engine calls it, except that the next ``create`` fails
    as a full disk makes it fail. A test double for the filesystem only: Clarity's code runs as is."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.failures = 0

    def create(self, path: str, config: Any) -> Any:
        if not self.failures:
            self.failures += 1
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return self.real.create(path, config)

    def load(self, *args: Any) -> Any:
        return self.real.load(*args)


@pytest.mark.parametrize("when", ["sealing", "setting aside during a build"])
def test_a_seal_whose_new_shard_cannot_be_made_leaves_a_store_that_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """The seal used to make the full active shard the sealing one (or a segment) first and only
    then create its successor: when that failed, one shard held two roles, the write that
    triggered the seal answered an error although it was stored, and the next manifest written
    (by a delete) made the next start refuse the store ("listed more than once")."""
    path = tmp_path / "q"
    store = open_store(path, background=False)
    written = points(LIMIT + 30)
    if when == "sealing":
        store.upsert(written[: LIMIT - 1])
        rest = written[LIMIT - 1 :]
    else:  # a shard frozen for a build that has not finished: the full active shard is set aside
        seal_by_hand(store, written[:30])
        store.upsert(written[30 : 30 + LIMIT - 1])
        rest = written[30 + LIMIT - 1 :]
    double = CreateFailsOnce(edge_layout.EdgeShard)
    monkeypatch.setattr(edge_layout, "EdgeShard", double)
    refused = []
    try:
        store.upsert(rest[:1])  # reaches the limit: the new active shard cannot be created
    except OSError as exc:
        refused.append(exc)
    assert double.failures == 1
    store.upsert(rest[1:])
    store.delete([written[0].id])  # writes the manifest again
    info = store.info()
    store.close()
    monkeypatch.undo()
    again = open_store(path)
    try:
        assert again.count() == len(written) - 1
        assert again.wait_for_index(120)
        assert len(again.get([p.id for p in written[1:]])) == len(written) - 1
    finally:
        again.close()
    assert refused == [], "a stored write answered with an error"
    assert info["index_state"] == "failed" and "No space left" in info["index_error"], info


def test_a_build_that_cannot_record_its_name_fails_and_the_next_start_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The build reserved its result's name (a manifest write) before its try: a full disk
    there ended the build thread with the state stuck at "building", so nothing retried it."""
    path = tmp_path / "q"
    store = open_store(path, active_max=1000)
    written = points(50)
    seal_by_hand(store, written)
    replace = os.replace

    def manifest_write_fails(source: Any, target: Any) -> None:
        if Path(target).name == "manifest.json":
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        replace(source, target)

    monkeypatch.setattr(os, "replace", manifest_write_fails)
    try:
        store.builder.start()  # as _maybe_seal starts it, in its own thread
        assert store.wait_for_index(60)
        info = store.info()
    finally:
        monkeypatch.undo()
        store.close()
    assert info["index_state"] == "failed" and "No space left" in info["index_error"], info
    again = open_store(path, active_max=1000)
    try:
        assert again.wait_for_index(120) and again.info()["index_state"] == "idle"
        assert again.sealing is None and again.count() == 50
    finally:
        again.close()


# -- purge: deleted text is gone from the files -------------------------------------------------


@pytest.fixture(scope="module")
def purge_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("purge") / "root"
    daemon = Daemon(root, free_port(), env=engine_env(root))
    try:
        daemon.start().wait_healthy()
        yield daemon
    finally:
        daemon.stop()


def settled(index: dict[str, Any]) -> bool:
    return index["index_state"] == "idle" and not index["shards"]["sealing"] and index["purge_pending"] == 0


@pytest.mark.slow
def test_deleted_text_is_gone_from_every_file_under_the_storage_root(purge_daemon: Daemon) -> None:
    daemon, root = purge_daemon, purge_daemon.root
    in_segment, in_active = f"SEGMARK{uuid.uuid4().hex[:12]}", f"ACTMARK{uuid.uuid4().hex[:12]}"
    (segment_id,) = store_batch(daemon, [f"the staging vault code is {in_segment}"], tags=["purge-me"])
    kept = store_batch(daemon, [f"purge test memory {i}: the cache expires at {i}" for i in range(120)])
    wait_for_engine(
        daemon, lambda index: index["index_state"] == "idle" and len(index["shards"]["segments"]) >= 1
    )
    store_batch(daemon, [f"the staging vault code is {in_active}"], tags=["purge-me"])
    assert files_holding(root, in_segment) and files_holding(root, in_active)  # both were on disk
    forgot = daemon.api("POST", "/forget", json={"scope": "all", "tags": ["purge-me"]})
    assert forgot.status_code == 200 and forgot.json()["deleted"] == 2, forgot.text
    # Documented in EdgeStore.info: purge_pending is 0 once no file holds a deleted memory's text.
    wait_for_engine(daemon, lambda index: index["purge_pending"] == 0 and index["index_state"] == "idle")
    assert files_holding(root, in_segment) == []
    assert files_holding(root, in_active) == []
    with httpx.Client(base_url=f"{daemon.url}/api", timeout=30) as http:
        assert all(http.get(f"/memories/{i}").status_code == 200 for i in kept)
        assert http.get(f"/memories/{segment_id}").status_code == 404


@pytest.mark.slow
def test_deletes_one_after_another_cost_one_purge_build(purge_daemon: Daemon) -> None:
    """A delete used to start a rebuild of the shards that held it at once (the active shard
    sealed whatever its size), and a delete during that build dirtied its result: deletes sent
    one by one, as the dashboard sends them, chained a rebuild each, up to a minute of CPU per
    100k memories each. The purge now waits until deletes pause (storage.purge_delay_seconds)."""
    daemon, root = purge_daemon, purge_daemon.root
    token = uuid.uuid4().hex[:8]
    marks = [f"DEB{token}N{i:03d}" for i in range(150)]
    ids = store_batch(
        daemon, [f"debounce test memory {i}: the {marks[i]} queue drains hourly" for i in range(150)]
    )
    wait_for_engine(daemon, settled)
    time.sleep(0.5)  # a build logs its end after removing what it retired
    built_before = daemon.log().count("index built for")
    victims = [i if i % 2 == 0 else 149 - i for i in range(20)]  # in the indexed segment, in the active shard
    for i in victims:
        response = daemon.api("DELETE", f"/memories/{ids[i]}")
        assert response.status_code == 200, response.text
        time.sleep(0.25)  # one at a time, as a person clicks through the dashboard
    index = daemon.api("GET", "/stats?scope=all").json()["index"]
    assert index["purge_pending"] > 0, index  # the text is still on disk, and the stats say so
    wait_for_engine(daemon, settled)
    time.sleep(0.5)
    builds = daemon.log().count("index built for") - built_before
    assert builds <= 2, f"{builds} index builds for 20 deletes"
    # Every deleted text gone; one that was not deleted still there.
    assert markers_on_disk(root, f"DEB{token}N", [marks[i] for i in victims] + [marks[1]]) == {marks[1]}


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
        # The build drops what its copy of the tombstones names; a delete it did not see yet is
        # applied to its result, which is then purged once deletes pause.
        wait_purged(store)
        leftovers = files_holding(path, f"{marker} 3;") + files_holding(path, f"{marker} 4;")
        assert leftovers == []
        assert files_holding(path, f"{marker} 5;")  # the others are still there
        assert store.count() == LIMIT - 2
    finally:
        store.close()
    again = open_store(path)
    assert again.count() == LIMIT - 2 and again.get([first[3].id]) == []
    again.close()
