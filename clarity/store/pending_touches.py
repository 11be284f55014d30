"""Access bookkeeping that waits on disk for the next build of its memory's segment.

Qdrant applies a payload update to a point of an HNSW-indexed segment by moving the point into
the shard's appendable segment, which every search then scans by brute force. Use counts change
on every retrieve, so writing them in place moved the store's most-used memories out of the index
one by one: 570 of 97.5k after a day of benchmarks, 0.13-0.27 ms more per search (docs/benchmarks.md).
Instead they wait here, are read over the stored payload, and are written into the points by the
next build of their segment, before its index is built (``edge_build --payloads``).

The file is an append-only log of JSON lines, ``{"id": ..., "set": {...}}`` or ``"set": null`` for
a dropped entry: appending costs what a batch costs, whatever the log already holds. It is
rewritten when it has grown to twice what it holds. Callers serialise writes (the store's write
lock); readers may call :meth:`get` from any thread, because entries are replaced, never mutated.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from clarity.store.durable import write_atomically

log = logging.getLogger(__name__)

_REWRITE_SLACK = 1_000  # lines of garbage tolerated on top of twice the live entries


class PendingTouches:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, dict[str, Any]] = {}
        self._lines = 0
        self._load()

    def _load(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        torn = bool(text) and not text.endswith("\n")
        for line in text.splitlines():
            try:
                record = json.loads(line)
                point_id, payload = str(record["id"]), record["set"]
            except (ValueError, KeyError, TypeError):
                # A line torn by a crash mid-append: only its own use counts are lost.
                log.warning("%s: skipping an unreadable line", self.path)
                torn = True
                continue
            self._lines += 1
            if payload is None:
                self._entries.pop(point_id, None)
            else:
                self._entries[point_id] = {**self._entries.get(point_id, {}), **payload}
        if torn:
            self._rewrite()  # appended to, a torn last line would swallow the next record

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, point_id: str) -> dict[str, Any] | None:
        return self._entries.get(point_id)

    def ids(self) -> list[str]:
        return list(self._entries)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """What a build folds in; :meth:`release` later drops only what is still unchanged."""
        return dict(self._entries)

    def add(self, updates: Mapping[str, dict[str, Any]]) -> None:
        for point_id, payload in updates.items():
            self._entries[point_id] = {**self._entries.get(point_id, {}), **payload}
        self._append(list(updates.items()))

    def drop(self, ids: Iterable[str]) -> None:
        """Forget the entries of memories that were deleted or written anew (their new copy carries
        its own counts)."""
        gone = [point_id for point_id in ids if self._entries.pop(point_id, None) is not None]
        self._append([(point_id, None) for point_id in gone])

    def release(self, folded: Mapping[str, dict[str, Any]], written: Iterable[str]) -> None:
        """Drop the entries a build wrote into its points, unless a touch replaced them meanwhile."""
        self.drop([i for i in written if i in folded and self._entries.get(i) is folded[i]])

    def _append(self, records: list[tuple[str, dict[str, Any] | None]]) -> None:
        if not records:
            return
        if not self._entries or self._lines + len(records) > 2 * len(self._entries) + _REWRITE_SLACK:
            self._rewrite()
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(_lines(records))
        self._lines += len(records)

    def _rewrite(self) -> None:
        if not self._entries:
            self.path.unlink(missing_ok=True)
            self._lines = 0
            return
        # Atomic and fsynced: replaced by an empty file after a power loss, it would lose them all.
        write_atomically(self.path, _lines(self._entries.items()))
        self._lines = len(self._entries)


def _lines(records: Iterable[tuple[str, dict[str, Any] | None]]) -> str:
    return "".join(
        json.dumps({"id": point_id, "set": payload}, separators=(",", ":")) + "\n"
        for point_id, payload in records
    )
