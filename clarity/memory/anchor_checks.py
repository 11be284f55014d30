"""Anchors for ``MemoryService``: captured when a memory is stored, re-checked when one is read,
written back when a check moved them, and captured again when a user re-anchors or confirms one.

A check needs the project's working tree: the root this daemon last saw for the memory's scope
(``clarity.project.known_root``, learned from every hook's ``cwd`` and every ``X-Clarity-Project``
directory). Without one nothing is checked and nothing is claimed: the report is None.

Checks run on the caller's thread (a ``stat`` per anchor when nothing changed: 65 µs for ten
anchors, scripts/bench/anchors.py); writing back an anchor a check moved or re-hashed is left to
one background thread, so a hook never waits on the write lock for it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clarity.memory.anchoring import Freshness, capture_for, freshness
from clarity.memory.anchors import capture
from clarity.memory.records import RecordReader, store_scope
from clarity.memory.writes import MemoryWriter
from clarity.models import ANCHOR_PATHS, GLOBAL_SCOPE, Memory, MemoryCreate, anchor_paths
from clarity.project import known_root
from clarity.requests import AnchorCheck, AnchorReport, ScoredMemory
from clarity.store.base import MemoryFilter, VectorStore

log = logging.getLogger(__name__)


class CannotAnchor(ValueError):
    """Anchors asked for that cannot be captured; the message names the field and why."""


def report_of(fresh: Freshness) -> AnchorReport:
    return AnchorReport(
        state=fresh.state,
        note=fresh.note,
        injectable=fresh.injectable,
        anchors=[
            AnchorCheck(
                label=c.anchor.label,
                state=c.state,
                detail=c.detail,
                change=None if c.change is None else round(c.change, 3),
                modified_at=c.modified_at,
                commit=c.anchor.commit,
                captured_at=c.anchor.captured_at.isoformat(),
            )
            for c in fresh.checks
        ],
    )


class AnchorKeeper:
    """The anchor side of ``MemoryService`` (see the module docstring)."""

    def __init__(self, store: VectorStore, records: RecordReader, writer: MemoryWriter) -> None:
        self.db = store
        self.records = records
        self.writer = writer
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clarity-anchors")

    # -- on the way in ------------------------------------------------------------------------

    def for_store(
        self, request: MemoryCreate, project: str | None, mentions: bool = True
    ) -> list[dict[str, Any]]:
        """The anchors a new memory gets: the caller's specs (refused by name when they cannot be
        anchored) and, with ``mentions``, the project files its text names."""
        if not request.anchors and not mentions:
            return []
        scope = store_scope(request.scope, project)
        root = None if scope == GLOBAL_SCOPE else known_root(scope)
        if root is None:
            if request.anchors:
                raise CannotAnchor(_no_root(scope))
            return []
        try:
            return capture_for(root, request.anchors, request.content if mentions else "")
        except ValueError as error:
            raise CannotAnchor(str(error)) from None

    # -- on the way out -----------------------------------------------------------------------

    def report(self, memory: Memory) -> AnchorReport | None:
        """``memory``'s anchors checked now; None when it has none or its checkout is unknown."""
        if not memory.anchors:
            return None
        root = known_root(memory.scope)
        if root is None:
            return None
        fresh = freshness(root, memory)
        if fresh is None:
            return None
        if fresh.updated is not None:
            self._background.submit(self._write_back, memory.id, memory.anchors, fresh.updated)
        return report_of(fresh)

    def attach(self, results: Sequence[ScoredMemory]) -> None:
        for result in results:
            if result.memory.anchors:
                result.anchors = self.report(result.memory)

    def about_file(self, scope: str, path: str, limit: int) -> list[ScoredMemory]:
        """Current memories of ``scope`` anchored to ``path``, most important first (newest among
        equals), each with its report."""
        flt = MemoryFilter(scopes=[scope], anchor_path=path, exclude_superseded=True)
        memories, _ = self.records.read(self.db.newest(flt, limit=limit, sort="importance"))
        found = [ScoredMemory(memory=m, score=m.importance) for m in memories]
        self.attach(found)
        return found

    # -- what a user says ---------------------------------------------------------------------

    def reanchor(self, memory_id: str, specs: Sequence[str] | None = None, confirm: bool = False) -> Memory:
        """Capture ``memory_id``'s anchors again: at the places ``specs`` name, or (None) each
        where a check finds it now (a moved one at its new place, a changed one on its text as it
        is now). ``confirm`` also records that the user said it is still true."""
        memory = self.records.stored(memory_id)
        root = known_root(memory.scope) if memory.scope != GLOBAL_SCOPE else None
        if root is None:
            raise CannotAnchor(_no_root(memory.scope))
        return self.replace(memory.id, self._captured(root, memory, specs), confirm)

    def replace(self, memory_id: str, anchors: list[dict[str, Any]], confirm: bool = False) -> Memory:
        """Give a stored memory ``anchors`` (a store of a text already stored names its places)."""
        update: dict[str, Any] = {"anchors": anchors, ANCHOR_PATHS: anchor_paths(anchors)}
        if confirm:
            update["confirmed_at"] = datetime.now(UTC).timestamp()
        with self.writer.paused():
            self.records.stored(memory_id)  # deleted meanwhile: MemoryNotFound, nothing written
            self.db.set_payload(memory_id, update)
        return self.records.stored(memory_id)

    def _captured(self, root: Path, memory: Memory, specs: Sequence[str] | None) -> list[dict[str, Any]]:
        if specs is not None:
            try:
                return capture_for(root, specs)
            except ValueError as error:
                raise CannotAnchor(str(error)) from None
        fresh = freshness(root, memory)
        anchors = []
        for i, found in enumerate(fresh.checks if fresh else ()):
            now = found.anchor
            if found.state == "gone":
                raise CannotAnchor(f"anchors[{i}]: {now.label} is gone ({found.detail}); give new anchors")
            lines = (now.start, now.end) if now.start is not None and now.end is not None else None
            try:
                anchor = capture(root, now.path, None if now.symbol else lines, now.symbol, strict=True)
            except ValueError as error:
                raise CannotAnchor(f"anchors[{i}]: {error}") from None
            if anchor is not None:
                anchors.append(anchor.to_payload())
        return anchors

    def _write_back(self, memory_id: str, read: list[dict[str, Any]], anchors: list[dict[str, Any]]) -> None:
        """Keep what a check learned (a new place, a new size and mtime) unless the anchors were
        changed meanwhile (a re-anchor, an update)."""
        try:
            with self.writer.paused():
                hits = self.db.get([memory_id])
                if not hits or hits[0].payload.get("anchors") != read:
                    return
                self.db.set_payload(memory_id, {"anchors": anchors, ANCHOR_PATHS: anchor_paths(anchors)})
        except Exception:  # a closed store at shutdown, a full disk: the next check finds the same
            log.debug("anchor write-back for %s skipped", memory_id, exc_info=True)

    def close(self) -> None:
        self._background.shutdown(wait=True)


def _no_root(scope: str) -> str:
    if scope == GLOBAL_SCOPE:
        return "anchors: a global memory belongs to no project, so it cannot be anchored to its files"
    return (
        f"anchors: this daemon does not know where project {scope} is checked out "
        "(send X-Clarity-Project with its directory, or open it in Claude Code once)"
    )
