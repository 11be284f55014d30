"""When the embedded engine seals, merges and purges: a look after every write and from the purge
timer, and the freeze that hands shards to the build (``builder.py``).

Seal: the active shard takes every write and stays small, so brute-force search over it is fast;
full (``active_max_points``), it is sealed: frozen for a build, and a new active shard takes over.

Why merge: every shard costs a search a fixed ~0.3-0.5 ms per ranking whatever its size, while
an HNSW search grows with the log of the points. Twenty-thousand-point segments made a 100k store
six shards and a 1M store fifty; merged, 100k is one segment plus the active shard. So a build
takes in the smallest segments that fit with it in one segment of ``segment_max_points``.

Why 500,000 by default: at 1M memories, five segments of 200k answered ``MemoryService.retrieve``
in 8.5-13.1 ms p50, two of 500k in 6.5-8.8 ms (``scripts/bench/retrieval.py``, two alternating
runs each, docs/benchmarks.md). The price is paid by stores past 200k: each seal's build
rebuilds the growing segment whole, up to 11 minutes of a background core at 500k (650 s for
497,500 points; 4 minutes at 200k) with 2.7 GB of RAM in the child, and so does a purge.
Growing a segment in place instead (a copy of the indexed segment takes the new points and
Qdrant re-indexes it, reusing its graph) was tried: 74 s against 126 s for a fresh build at
205k, since the payload and sparse indexes are rebuilt anyway; not worth a second build path.

Purge: a deleted point's text stays in its shard's WAL and payload pages. A delete therefore
marks the shards that held it ``dirty``, and a build rewrites them into a new shard that never
held it; the old directories are removed after the swap (``retired`` until then). The build
waits until deletes pause for ``purge_delay_seconds`` (at most ``PURGE_DEADLINE_FACTOR`` times
that after the first one waiting), and then takes every dirty shard that fits in one segment: a
rebuild costs about two minutes of a core per 100k points (1.2-1.3 s per 1,000 at 200k-500k),
and a run of deletes (one by one from the dashboard, retention's batches) used to chain one each.
``info()["purge_pending"]`` counts the shards still holding deleted text,
``info()["purge_starts_in"]`` when their rebuild starts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from qdrant_edge import CountRequest

from clarity.store.edge.builder import BUILD_RETRY_SECONDS, Builder
from clarity.store.edge.layout import Layout
from clarity.store.edge.shard import Shard
from clarity.store.space import SpaceGuard

log = logging.getLogger(__name__)

# A purge starts at the latest this many purge delays after the first delete waiting for it, so a
# steady trickle of deletes (one every 20 s against a 30 s delay) cannot put it off for ever.
PURGE_DEADLINE_FACTOR = 10
PURGE_RECHECK_SECONDS = 1.0  # a due purge that a running build holds up is looked at again after this


class Schedule:
    def __init__(
        self,
        layout: Layout,
        space: SpaceGuard,
        active_max: int,
        segment_max: int,
        purge_delay: float,
        build_in_background: bool,
    ) -> None:
        self.layout = layout
        self.space = space
        self.active_max = active_max
        self.segment_max = segment_max
        self.builder = Builder(
            layout, space, build_in_background, after=self.housekeep, on_late_deletes=self.note_delete
        )
        self._seal_failed_at: float | None = None  # a seal that could not make its new shard
        # The debounced purge (module docstring): when the oldest and the newest delete waiting
        # for it came, and the thread that starts it once they are far enough behind.
        self.purge_delay = purge_delay
        self._purge_first: float | None = None
        self._purge_last = 0.0
        self._purge_wake = threading.Event()
        self._purge_thread: threading.Thread | None = None

    def resume(self) -> None:
        """At a start, once the layout is open: finish what the last run left."""
        layout = self.layout
        if layout.dirty:  # deletes from before this start have waited long enough: purge now
            self._purge_first = self._purge_last = time.monotonic() - PURGE_DEADLINE_FACTOR * self.purge_delay
        if layout.frozen():
            self.builder.start()  # a build that a stop or crash interrupted
        else:
            self.housekeep()  # the threshold may have been lowered since the last run
        if layout.dirty:
            self.wake_purge()  # if a build held the purge up, its end starts it; this is the backstop

    def close(self) -> None:
        """The purge timer ends (the caller has set ``layout.closed``); dirty shards stay in the
        manifest for the next start."""
        self._purge_wake.set()

    # -- purge --------------------------------------------------------------------------------

    def note_delete(self) -> None:
        """Under the lock, before a delete marks shards dirty (or a build's result takes in the
        deletes that came during the build): it puts the purge build off until deletes pause.
        The first delete with no shard waiting starts the deadline."""
        now = time.monotonic()
        if self._purge_first is None or not self.layout.dirty - {
            shard.name for shard in self.layout.frozen()
        }:
            self._purge_first = now
        self._purge_last = now
        self.wake_purge()

    def purge_due_in(self) -> float | None:
        """Seconds until the shards holding deleted text are to be rebuilt (0: due now), or None
        when no shard is waiting for that (those a running build reads are purged by it)."""
        waiting = self.layout.dirty - {shard.name for shard in self.layout.frozen()}
        if not waiting:
            return None
        first = self._purge_first
        if first is None:  # dirty without a recorded delete: never leave deleted text waiting
            return 0.0
        due = min(self._purge_last + self.purge_delay, first + PURGE_DEADLINE_FACTOR * self.purge_delay)
        return max(0.0, due - time.monotonic())

    def purge_starts_in(self) -> float | None:
        """Seconds until the shards waiting for a purge are rebuilt (storage.purge_delay_seconds
        after the last delete; 0 once due, while a running build holds it up), None when none
        waits: what a running build reads, it purges itself."""
        due_in = self.purge_due_in()
        return None if due_in is None else round(due_in, 1)

    def wake_purge(self) -> None:
        """Have the purge timer look at the schedule again, starting it on first use."""
        with self.layout.lock:
            if self._purge_thread is None:
                self._purge_thread = threading.Thread(
                    target=self._purge_timer, name="clarity-purge", daemon=True
                )
                self._purge_thread.start()
        self._purge_wake.set()

    def _purge_timer(self) -> None:
        """Starts the purge build once it is due. While a build runs, that build's end starts
        it (the builder ends with ``housekeep``); the timer only looks again now and then."""
        while not self.layout.closed:
            self._purge_wake.clear()
            with self.layout.lock:
                due_in = self.purge_due_in()
            if due_in is None:
                self._purge_wake.wait()  # nothing waits for a purge: a delete wakes the timer
            elif due_in > 0:
                self._purge_wake.wait(due_in)
            else:
                self.housekeep()
                if self.purge_due_in() == 0:  # held up by a build, the disk floor or a failed seal
                    self._purge_wake.wait(PURGE_RECHECK_SECONDS)

    # -- seals and merges -----------------------------------------------------------------------

    def housekeep(self) -> None:
        """``_maybe_seal`` after a write, or from the purge timer. The write is done and in the
        WAL by then, so a seal that fails here (its new shard or the manifest cannot be written:
        a full disk, an I/O error) must not answer the write with an error: the layout is left
        as it was (``_freeze``), the failure is logged and shown in ``info()``, and the seal is
        tried again after ``BUILD_RETRY_SECONDS``."""
        try:
            self._maybe_seal()
        except Exception as exc:
            self._seal_failed(exc)

    def _seal_failed(self, exc: Exception) -> None:
        self._seal_failed_at = time.monotonic()
        self.builder.seal_failed(f"seal: {exc}", self._seal_failed_at)
        log.error(
            "could not seal the active shard or start an index build (%s); the layout is unchanged and "
            "writes go on into the current active shard; tried again in %.0fs",
            exc,
            BUILD_RETRY_SECONDS,
        )

    def _seal_backing_off(self) -> bool:
        failed = self._seal_failed_at
        return failed is not None and time.monotonic() - failed < BUILD_RETRY_SECONDS

    def _maybe_seal(self) -> None:
        """Seal a full active shard, merging small segments into its build; with no seal due,
        still merge segments that fit together (a store written by an older version, or one
        whose cap was raised). Shards holding deleted text (``dirty``) are rebuilt once their
        purge is due (``purge_due_in``): then a dirty active shard is sealed whatever its size,
        and dirty segments join the merge, as many as fit in one segment."""
        layout = self.layout
        if layout.closed or not self.space.has_room():
            return  # a seal creates a shard and starts a build: both need room (space.py)
        if layout.frozen():
            with layout.lock:  # decided under the lock: two writers must not start two builds
                retry = self.builder.claim_retry()
            if retry:
                self.builder.start()  # retry a failed build now and then rather than never
            else:
                self._set_aside_if_full()
            return
        if self._seal_backing_off():
            return
        purge = self.purge_due_in() == 0
        active_points = layout.active.handle.count(CountRequest(exact=False))
        seal = active_points >= self.active_max or (purge and layout.active.name in layout.dirty)
        if not seal and not purge and len(self._merge_candidates(0)) < 2:
            return
        with layout.lock:
            if layout.frozen():
                return
            purge = self.purge_due_in() == 0
            active_points = layout.active.handle.count(CountRequest(exact=True))
            seal = active_points >= self.active_max or (purge and layout.active.name in layout.dirty)
            dirty = [shard for shard in layout.segments if shard.name in layout.dirty] if purge else []
            merging = self._merge_candidates(active_points if seal else 0, dirty)
            if not seal and len(merging) < 2 and not dirty:
                return
            self._freeze(merging, seal)
        self.builder.start()

    def _freeze(self, merging: list[Shard], seal: bool) -> None:
        """Freeze ``merging`` (and, with ``seal``, the active shard) for a build. The new active
        shard is made first and the roles change only after, all at once, and are undone if the
        manifest cannot be written: a failure at any step leaves the layout as it was, never
        one shard both active and sealing (which the next start would refuse)."""
        layout = self.layout
        fresh = layout.fresh_shard() if seal else None  # may fail: nothing has changed yet
        for shard in merging:
            shard.handle.flush()  # its files are copied while frozen
        before = (layout.active, layout.sealing, layout.merging, self.builder.state)
        try:
            if fresh is not None:
                layout.active.handle.flush()
                layout.sealing, layout.active = layout.active, layout.adopt(fresh)
            layout.merging = merging
            self.builder.state = "building"
            layout.save()
        except BaseException:
            layout.active, layout.sealing, layout.merging, self.builder.state = before
            if fresh is not None:
                layout.abandon(fresh)
            raise
        self._seal_failed_at = None
        if not layout.dirty - {shard.name for shard in layout.frozen()}:
            self._purge_first = None  # this build purges every shard waiting for it
        layout.publish()

    def _set_aside_if_full(self) -> None:
        """While a build runs, a full active shard joins the segments as it is (brute force,
        taking deletes and updates in place) and a new active shard takes the writes.

        Without this, a build that never finished (starved of CPU by a busy daemon, or started
        from scratch by each restart after a kill) let every write pile into one brute-force
        shard: 6,959 points against a limit of 100 after repeated ``kill -9``. A set-aside shard
        costs a search what the active shard costs; the next build merges it into an indexed
        segment (``_merge_candidates`` takes the smallest segments first). As in ``_freeze``,
        the new shard is made before any role changes."""
        layout = self.layout
        if (
            self._seal_backing_off()
            or layout.active.handle.count(CountRequest(exact=False)) < self.active_max
        ):
            return
        with layout.lock:
            if not layout.frozen() or layout.active.handle.count(CountRequest(exact=True)) < self.active_max:
                return  # a build that just finished seals it (its last step is housekeep)
            fresh = layout.fresh_shard()  # may fail: nothing has changed yet
            full = layout.active
            full.handle.flush()
            try:
                layout.segments.append(full)
                layout.active = layout.adopt(fresh)
                layout.save()
            except BaseException:
                layout.segments.remove(full)
                layout.active = full
                layout.abandon(fresh)
                raise
            self._seal_failed_at = None
            layout.publish()
        log.info("%s set aside unindexed while an index build runs; the next build merges it", full.name)

    def _merge_candidates(self, incoming: int, must: Sequence[Shard] = ()) -> list[Shard]:
        """The smallest segments whose points, with ``incoming``, fit in one segment of
        ``segment_max_points``; oldest first, as the build reads them. Segments to purge
        (``must``) go first, as many as fit and at least one: a purge does not wait for room."""
        segments = self.layout.segments
        sizes = {shard.name: shard.handle.count(CountRequest(exact=False)) for shard in segments}
        chosen: list[Shard] = []
        total = incoming
        for shard in must:
            if not chosen or total + sizes[shard.name] <= self.segment_max:
                chosen.append(shard)
                total += sizes[shard.name]
        for shard in sorted(segments, key=lambda s: sizes[s.name]):
            if shard in chosen:
                continue
            if total + sizes[shard.name] > self.segment_max:
                break
            chosen.append(shard)
            total += sizes[shard.name]
        return [shard for shard in segments if shard in chosen]
