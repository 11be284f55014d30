"""Anchors on stored memories: captured on the way in, re-checked on the way out.

``clarity.memory.anchors`` knows one anchor and one file; this module knows a memory. A memory
keeps its anchors as JSON (``Memory.anchors``, at most five); ``capture_for`` makes them from a
caller's specs (``src/cart.ts:12-30``, refused by name when they cannot be anchored) and from the
project files its text mentions (kept only when they can be); ``freshness`` checks them all and
gives the memory's state, the worst of its anchors' (gone, then changed, moved, unchanged), and
the few words a reader sees: "may be out of date: src/cart.ts changed 2 days ago".

What the reader is told follows the issue's rule: an unchanged or moved anchor says nothing (a
moved one is written back by the caller, so it stays cheap to check); a changed one is flagged;
a rewrite (more than ``LARGE_CHANGE`` of the distinct anchored lines differ) or a gone file keeps the
memory out of Claude's context (``Freshness.injectable``), though it stays stored for history.

A missing file is looked for under the name git gives its rename (``git diff -M`` since the
anchor's commit). That git run costs milliseconds, so it is made only when an anchored file is
missing, and its answer is kept per (root, commit, HEAD, index mtime): a rename is followed once,
then the anchor is written back at its new path and the next check is a ``stat``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cachetools import LRUCache
from pydantic import ValidationError

from clarity.describe import age
from clarity.memory.anchor_repo import AnchorRefused, git_dirs, head_commit, paths_in_text, rename_map
from clarity.memory.anchors import Anchor, AnchorState, State, capture, check, parse_anchor_spec
from clarity.models import MAX_ANCHORS, Memory

# Words that may name a function or class: snake_case, camelCase or PascalCase, or followed by ().
_CODE_NAME = re.compile(
    r"\b([A-Za-z_$][\w$]*_[\w$]*|[a-z]+[A-Z][\w$]*|[A-Z][a-z]+[A-Z][\w$]*|[A-Za-z_$][\w$]*(?=\(\)))"
)
MAX_SYMBOL_TRIES = 3  # a read of the file each: a memory's store, not a hook's hot path
# The share of distinct lines that differ (1 - Jaccard of the line sets) past which a memory is kept
# out of context: a rewrite. One line changed in a three-line function is already 0.6, and a note
# about such a function is still worth showing, flagged.
LARGE_CHANGE = 0.8
_RANK: dict[State, int] = {"unchanged": 0, "moved": 1, "changed": 2, "gone": 3}

_renames: LRUCache[tuple[object, ...], dict[str, str]] = LRUCache(maxsize=256)
_renames_lock = threading.Lock()


@dataclass(frozen=True)
class Freshness:
    """What a check of a memory's anchors found: its state, each anchor's, and the reader's words."""

    state: State
    checks: tuple[AnchorState, ...]
    note: str  # "" when nothing is worth saying; "may be out of date: ...", "src/a.ts was deleted"

    @property
    def injectable(self) -> bool:
        """Whether the memory may reach Claude's context: not when its file is gone, nor when
        what it was about was rewritten."""
        if self.state == "gone":
            return False
        return not any(c.state == "changed" and (c.change or 0.0) > LARGE_CHANGE for c in self.checks)

    @property
    def updated(self) -> list[dict[str, Any]] | None:
        """The anchors to write back when a check moved one or read new size and mtime; else None."""
        if not any(c.updated for c in self.checks):
            return None
        return [c.anchor.to_payload() for c in self.checks]


def stored_anchors(memory: Memory) -> list[Anchor]:
    """The memory's anchors; one that fails the schema (damaged, or an older version's) is skipped."""
    found = []
    for value in memory.anchors:
        try:
            found.append(Anchor.from_payload(value))
        except (ValidationError, ValueError):
            continue
    return found


def capture_for(root: Path, specs: Sequence[str], content: str = "") -> list[dict[str, Any]]:
    """The anchors a new memory gets: each of ``specs`` (ValueError naming ``anchors[i]`` and why
    when one cannot be anchored), then the project files ``content`` mentions that can be, at
    most ``MAX_ANCHORS`` in all, the same place once."""
    anchors: list[Anchor] = []
    for i, spec in enumerate(specs):
        try:
            path, lines = parse_anchor_spec(spec)
            anchor = capture(root, path, lines, strict=True)
        except (AnchorRefused, ValueError) as error:
            raise ValueError(f"anchors[{i}]: {error}") from None
        if anchor is not None:
            anchors.append(anchor)
    if content:
        named = {anchor.path for anchor in anchors}
        for spec in paths_in_text(root, content):
            if len(anchors) >= MAX_ANCHORS:
                break
            try:
                path, lines = parse_anchor_spec(spec)
            except ValueError:
                continue
            if path in named:
                continue  # the caller said where in this file
            anchor = _mentioned(root, path, lines, content)
            if anchor is not None:
                anchors.append(anchor)
                named.add(anchor.path)
    return _distinct(anchors)


def _mentioned(root: Path, path: str, lines: tuple[int, int] | None, content: str) -> Anchor | None:
    """A file the text mentions: on the first function or class of it the text names (a note
    about ``addItem`` in src/cart.ts is about that function, and an edit elsewhere in the file
    does not make it doubtful), else on the lines given, else on the whole file."""
    if lines is None:
        for name in _CODE_NAME.findall(content)[:MAX_SYMBOL_TRIES]:
            anchor = capture(root, path, None, name)
            if anchor is not None:
                return anchor
    return capture(root, path, lines)


def capture_paths(root: Path, places: Sequence[tuple[str, tuple[int, int] | None]]) -> list[dict[str, Any]]:
    """Anchors on the places a hook event names (an edited file, the files a failing test's
    output names), each kept only when it can be anchored: a learned memory never fails for one."""
    anchors = []
    for path, lines in places:
        anchor = capture(root, path, lines)
        if anchor is not None:
            anchors.append(anchor)
    return _distinct(anchors)


def _distinct(anchors: list[Anchor]) -> list[dict[str, Any]]:
    seen: set[tuple[object, ...]] = set()
    kept: list[dict[str, Any]] = []
    for anchor in anchors:
        key = (anchor.path, anchor.start, anchor.end, anchor.symbol)
        if key not in seen and len(kept) < MAX_ANCHORS:
            seen.add(key)
            kept.append(anchor.to_payload())
    return kept


def freshness(
    root: Path, memory: Memory, now: datetime | None = None, candidates: Sequence[str] = ()
) -> Freshness | None:
    """The state of ``memory``'s anchors in the working tree at ``root``; None when it has none.
    ``candidates`` are repository-relative paths a missing file may have moved to (files the
    session wrote), looked at after git's renames."""
    anchors = stored_anchors(memory)
    if not anchors:
        return None
    renames = _LazyRenames(root, anchors)
    checks = tuple(check(root, anchor, renames=renames, candidates=candidates) for anchor in anchors)
    worst = max(checks, key=lambda c: _RANK[c.state])
    return Freshness(worst.state, checks, _note(worst, now or datetime.now(UTC)))


def _note(worst: AnchorState, now: datetime) -> str:
    label = worst.anchor.label
    if worst.state == "gone":
        detail = worst.detail or "file deleted"
        if detail.startswith("symbol "):
            return f"{detail} from {worst.anchor.path}"
        return f"{label} was deleted" if detail == "file deleted" else f"{label}: {detail}"
    if worst.state == "changed":
        when = ""
        if worst.modified_at is not None:
            when = " " + age(datetime.fromtimestamp(worst.modified_at, UTC), now)
        return f"may be out of date: {label} changed{when}"
    return ""


class _LazyRenames(Mapping[str, str]):
    """git's renames since the anchors' commits, asked of git only when a file is missing."""

    def __init__(self, root: Path, anchors: Sequence[Anchor]) -> None:
        self._root = root
        self._commits = [a.commit for a in anchors if a.commit]
        self._map: dict[str, str] | None = None

    def _load(self) -> dict[str, str]:
        if self._map is None:
            self._map = {}
            for commit in dict.fromkeys(self._commits):
                self._map.update(
                    {k: v for k, v in renames_since(self._root, commit).items() if k not in self._map}
                )
        return self._map

    def __getitem__(self, key: str) -> str:
        return self._load()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


def renames_since(root: Path, commit: str) -> dict[str, str]:
    """``anchor_repo.rename_map`` kept per (root, commit, HEAD, index mtime): one git run per
    change of the checkout, not per check."""
    dirs = git_dirs(root)  # a linked worktree's index is in its own git dir, not under .git/
    try:
        index_mtime = (dirs[0] / "index").stat().st_mtime_ns if dirs else 0
    except OSError:
        index_mtime = 0
    key = (str(root), commit, head_commit(root), index_mtime)
    with _renames_lock:
        known = _renames.get(key)
    if known is not None:
        return known
    found = rename_map(root, commit)
    with _renames_lock:
        _renames[key] = found
    return found
