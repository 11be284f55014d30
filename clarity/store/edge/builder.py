"""Index builds: the one object that owns the build thread, the child process and the swap.

A build reads the frozen shards (``Layout.frozen``): it copies them, runs ``child.py`` on the
copies, and swaps the indexed result in for them under the layout's lock, all from one thread.
Why a child: ``optimize()`` holds the GIL for a minute at 100k points, which would freeze the
daemon. What starts a build, and when, is ``schedule.py``'s business; a build that fails leaves
the frozen shards searchable and is tried again after ``BUILD_RETRY_SECONDS``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from qdrant_edge import CountRequest, EdgeShard, UpdateOperation

from clarity.store.edge.layout import Layout, build_copies
from clarity.store.edge.shard import Shard, point_ids
from clarity.store.space import SpaceGuard, build_room, copy_sparse

log = logging.getLogger(__name__)

RETIRE_GRACE_SECONDS = 2.0
BUILD_RETRY_SECONDS = 60.0  # a failed build or seal is tried again after this, not at every write
BuildState = Literal["idle", "building", "failed"]

# Run by ``python -c`` before anything else, with the daemon's pid as the first argument. It arms
# PR_SET_PDEATHSIG (1) = SIGKILL, so the builder dies with the daemon, and only then compares its
# parent with that pid: if the daemon died before the signal was armed, the builder is already
# an orphan and exits. Started with ``python -m`` (as ``clarity.store.edge_build`` was), the
# builder armed the signal only after importing the package (pydantic, the settings: a second or
# more on a busy machine), and read its "parent" after that: 32 of 100 ``kill -9``s of the daemon
# left it running for seconds. One line, so ``ps`` shows the builder on one line too.
LAUNCHER = (
    "import ctypes, os, signal, sys; "
    "sys.platform.startswith('linux') and ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL); "
    "os.getppid() == int(sys.argv.pop(1)) or os._exit(1); "
    "import runpy; runpy.run_module('clarity.store.edge.child', run_name='__main__', alter_sys=True)"
)


def builder_command(args: Sequence[str]) -> list[str]:
    """The argv that runs ``child.py`` with ``args``, bound to the calling process's life.

    Linux sends the death signal when the *thread* that started the child ends, not the
    process: the caller must start it from a thread that outlives it (the build thread waits
    for it)."""
    return [sys.executable, "-c", LAUNCHER, str(os.getpid()), *args]


class Builder:
    def __init__(
        self,
        layout: Layout,
        space: SpaceGuard,
        in_background: bool,
        after: Callable[[], None],
        on_late_deletes: Callable[[], None],
    ) -> None:
        self.layout = layout
        self.space = space
        self.in_background = in_background
        self._after = after  # called when a build has swapped in: the next seal or purge may be due
        self._on_late_deletes = on_late_deletes  # the result holds deleted text: schedule its purge
        self.thread: threading.Thread | None = None
        # The running child, for close() to kill: the build thread keeps its own reference.
        self.proc: subprocess.Popen[str] | None = None
        self.state: BuildState = "idle"
        self.error: str | None = None
        self.last_seconds: float | None = None
        self.started = 0
        self.failed_at = 0.0

    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def claim_retry(self) -> bool:
        """Under the layout's lock (two writers must not start two builds): whether the failed
        build is due to be tried again; if so it counts as building from now on."""
        retry = (
            self.state == "failed"
            and not self.running()
            and time.monotonic() - self.failed_at > BUILD_RETRY_SECONDS
        )
        if retry:
            self.state = "building"
        return retry

    def seal_failed(self, error: str, at: float) -> None:
        """A seal that could not start its build shows as a failed build; a build already running
        is left to report its own end."""
        self.error = error
        if not self.running():
            self.state = "failed"  # retried after BUILD_RETRY_SECONDS, frozen shards or not
            self.failed_at = at

    def start(self) -> None:
        if not self.in_background:
            self.run()
            return
        self.thread = threading.Thread(target=self.run, name="clarity-index-build", daemon=True)
        self.thread.start()

    def run(self) -> None:
        """Build the frozen shards into one indexed segment and swap it in; then let the
        scheduler look again (the active shard may have filled up meanwhile, or a purge come due)."""
        layout = self.layout
        frozen = layout.frozen()
        if not frozen:
            return
        self.state = "building"
        self.started += 1
        started = time.perf_counter()
        target: Path | None = None
        with layout.lock:
            deleted = sorted(layout.tombstones)  # never copied into the result
        try:
            # Inside the try: a name that cannot be recorded (the manifest write fails on a full
            # disk) fails this build, which is retried, rather than ending the thread with the
            # state stuck at "building" and nothing to retry it.
            target = layout.directory / layout.reserve_name()
            self._run_child(target, frozen, deleted)
            if layout.closed:
                return
            os.replace(layout.directory / build_copies(target.name)[0], target)
            built = Shard(target.name, target, EdgeShard.load(str(target)))
            retired = self._swap(built, frozen, started)
            if retired is None:
                return
            # Readers that took the previous view may still be querying the retired shards for a
            # few milliseconds; give them time before their handles go away.
            time.sleep(RETIRE_GRACE_SECONDS)
            self._remove_retired(retired)
            log.info(
                "index built for %s (%d shards merged) in %.1fs", target.name, len(frozen), self.last_seconds
            )
        except Exception as exc:
            self._failed(target, exc)
            return
        self._after()

    def _run_child(self, target: Path, frozen: list[Shard], deleted: list[str]) -> None:
        """Copy the frozen shards and run the child on the copies; an error unless it exits 0."""
        layout = self.layout
        staging, sources = (layout.directory / name for name in build_copies(target.name))
        for leftover in (staging, sources):
            shutil.rmtree(leftover, ignore_errors=True)
        sources.mkdir(mode=0o700)
        skip = sources / "skip.json"
        skip.write_text(json.dumps(deleted), encoding="utf-8")
        # Frozen shards are immutable, so copying their files without a lock is safe. The
        # child upserts their points into a new shard rather than building on a copy of one:
        # a shard's WAL and payload pages keep the text of points deleted from it.
        # Room for the copies and the index built from them, above the floor.
        self.space.check("index build", needed=build_room([shard.path for shard in frozen]))
        for shard in frozen:
            shutil.copytree(shard.path, sources / shard.name, copy_function=copy_sparse)
        index = layout.index
        command = builder_command(
            [
                str(staging),
                str(layout.dimension),
                str(index.m),
                str(index.ef_construct),
                str(index.full_scan_threshold),
                layout.quantization,
                *(str(sources / shard.name) for shard in frozen),
                *(["--skip", str(skip)] if deleted else []),
            ]
        )
        # The child is this build's own (a local): ``self.proc`` is only what close() kills.
        # Started from this thread, which waits for it: its death signal (LAUNCHER) follows this
        # thread's end, so no other thread may start it.
        proc = self.proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        _, stderr = proc.communicate()
        shutil.rmtree(sources, ignore_errors=True)
        if proc.returncode != 0:
            raise RuntimeError(f"index build exited {proc.returncode}: {stderr.strip()[-500:]}")

    def _swap(self, built: Shard, frozen: list[Shard], started: float) -> list[Shard] | None:
        """Under the lock: the result replaces the frozen shards, which are retired (their
        directories removed after a grace period). None when the result is not to be used."""
        layout = self.layout
        with layout.lock:
            if layout.closed:  # closed while loading: the next start rebuilds from the manifest
                built.handle.close()
                return None
            if [shard.name for shard in layout.frozen()] != [shard.name for shard in frozen]:
                # Another build already swapped this set in: a second copy would duplicate
                # every point and bring back what its tombstones had deleted.
                built.handle.close()
                shutil.rmtree(built.path, ignore_errors=True)
                layout.reserved.discard(built.name)
                layout.save()
                return None
            self._delete_late_tombstones(built)
            # A build of nothing but deleted points (a purge of an emptied shard) leaves
            # nothing worth a shard: it is retired along with what it replaced.
            retired = [*frozen, *([] if built.handle.count(CountRequest(exact=True)) else [built])]
            layout.segments = [shard for shard in layout.segments if shard not in layout.merging]
            layout.segments += [built] if built not in retired else []
            layout.sealing = None
            layout.merging = []
            layout.tombstones.clear()
            layout.retired |= {shard.name for shard in retired}
            layout.dirty -= {shard.name for shard in retired}
            layout.reserved.discard(built.name)
            layout.save()
            layout.publish()
            self.last_seconds = time.perf_counter() - started
            self.state = "idle"
            self.error = None
        return retired

    def _failed(self, target: Path | None, exc: Exception) -> None:
        """The frozen shards stay searchable and frozen; the scheduler retries the build after
        ``BUILD_RETRY_SECONDS``. What the build made is removed, by its recorded name."""
        layout = self.layout
        if layout.closed:
            return  # the store was closed mid-build; the next start builds again
        self.state = "failed"
        self.failed_at = time.monotonic()
        self.error = str(exc)
        log.error("index build failed, the frozen shards stay searchable without it: %s", exc)
        if target is None:
            return  # no name was reserved, so nothing was made
        for copy in build_copies(target.name):
            shutil.rmtree(layout.directory / copy, ignore_errors=True)
        try:
            with layout.lock:
                if target.name in {shard.name for shard in layout.view.shards}:
                    return  # swapped in: the failure came after, in the clean-up
                shutil.rmtree(target, ignore_errors=True)  # loaded after the rename, then failed
                made = (target.name, *build_copies(target.name))
                if not any((layout.directory / name).exists() for name in made):
                    layout.reserved.discard(target.name)  # else the next start removes what is left
                layout.save()
        except OSError as cleanup:
            log.warning("clearing up after the failed index build: %s", cleanup)

    def _delete_late_tombstones(self, built: Shard) -> None:
        """Deletes that reached the frozen shards after the child took its list of them: applied
        to the result, which then holds their text in its WAL and pages, so it is purged next."""
        layout = self.layout
        if not layout.tombstones:
            return
        found = built.handle.retrieve(point_ids(layout.tombstones), with_payload=False, with_vector=False)
        if found:
            built.handle.update(UpdateOperation.delete_points([record.id for record in found]))
            built.handle.flush()
            self._on_late_deletes()
            layout.dirty.add(built.name)

    def _remove_retired(self, retired: list[Shard]) -> None:
        """Close and remove shards a swap retired, once the grace period is over; the manifest
        lists them until then, so a crash before this leaves the next start to remove them."""
        for shard in retired:
            shard.handle.close()
            shutil.rmtree(shard.path, ignore_errors=True)
        layout = self.layout
        if layout.closed:
            return  # the manifest is no longer ours to write: a new store may have opened it
        with layout.lock:
            layout.retired -= {shard.name for shard in retired if not shard.path.exists()}
            layout.save()

    def wait(self, timeout: float = 300.0) -> bool:
        """Wait for the running build and any build it chains (a seal or merge that became due
        meanwhile)."""
        deadline = time.monotonic() + timeout
        while (thread := self.thread) is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                return False
            if self.thread is thread:
                return True
        return True

    def kill(self) -> None:
        """Never leave a builder behind; the frozen shards are rebuilt at the next start."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
