"""Anchors: what a memory says about the code, tied to the code, and re-checked at recall.

An anchor names a file of the project, optionally a line range or a symbol, and keeps the hash
of that text (never the text), the file's size and mtime, the commit and the time of capture.
``check`` compares it with the working tree and answers one of four states:

- ``unchanged``: size and mtime as captured (one ``stat``, nothing read), or the text hashes the
  same (then the anchor comes back with the new size and mtime, so the next check is cheap again);
- ``moved``: the same text elsewhere in the file, or in the file it was renamed to (the anchor
  comes back updated);
- ``changed``: the text differs; with the estimated share of lines that differ and the file's
  mtime ("changed 2 days ago"). A changed anchor keeps the hash of what the memory was about
  until it is captured again (re-anchored, or confirmed "still true");
- ``gone``: the file or the symbol is deleted.

A size and mtime pair seen within ``RACY_NS`` of the file's last write is not trusted alone (the
"racy git" problem: a same-size edit within one timestamp tick); such a check hashes. What a read
found is kept per file state (inode, size, mtime, ctime), so a changed anchor checked again costs
a ``stat`` and a lookup (7 µs; its first read about 200 µs on a 19 KB module:
scripts/bench/anchors.py).

Renames. A check never runs git. A missing file is looked for, in this order, at the path a
caller-given rename map names (``anchor_repo.rename_map``: ``git diff -M`` since the anchor's
commit, one git run per commit, for a background refresh) and among caller-given candidate paths
(files the session created or moved, say), those of the same name first, then the same extension,
at most ``MAX_RENAME_READS`` read. Through the map the anchor follows the file even if its text
changed; a candidate counts only when it holds the anchored text.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal, Self

from cachetools import LRUCache
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from clarity.describe import anchor_label
from clarity.memory.anchor_repo import MAX_PATH_CHARS, AnchorRefused, head_commit, inside, read_text
from clarity.memory.anchor_text import (
    MAX_BLOCK_LINES,
    change_share,
    digest,
    find_symbol,
    find_window,
    line_hash,
    sketch,
    split_lines,
)
from clarity.models import MAX_ANCHOR_BYTES, MAX_ANCHOR_SPEC_CHARS

MAX_LINE = 10_000_000
MAX_SPAN_LINES = MAX_BLOCK_LINES
MAX_SYMBOL_CHARS = 128
MAX_SPEC_CHARS = MAX_ANCHOR_SPEC_CHARS  # a path of MAX_PATH_CHARS and a line range
MAX_RENAME_READS = 8
RACY_NS = 2_000_000_000  # FAT and HFS+ keep mtimes to 2 s and 1 s; ext4 and APFS far finer

# What a read found, by anchor and file identity (inode, size, mtime, ctime): a changed anchor
# keeps its hash until captured again, and without this every check would read its file again.
# ctime cannot be set back by a tool the way mtime can. 4,096 states are well under 1 MB.
_seen: LRUCache[tuple[object, ...], AnchorState] = LRUCache(maxsize=4_096)
_seen_lock = threading.Lock()

State = Literal["unchanged", "moved", "changed", "gone"]
Hex32 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]


class Anchor(BaseModel):
    """A place in the code a memory is about, as captured; JSON for the memory's metadata
    (``to_payload``/``from_payload``), at most ``MAX_ANCHOR_BYTES``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: Annotated[str, StringConstraints(min_length=1, max_length=MAX_PATH_CHARS)]
    start: int | None = Field(default=None, ge=1, le=MAX_LINE)
    end: int | None = Field(default=None, ge=1, le=MAX_LINE)
    symbol: (
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z_$][\w$]*$", max_length=MAX_SYMBOL_CHARS)] | None
    ) = None
    text_hash: Hex32
    head: int | None = Field(default=None, ge=0, lt=2**32)  # first line's CRC, to find a moved range
    sketch: Annotated[str, StringConstraints(pattern=r"^(?:[0-9a-f]{8}){0,16}$")] = ""
    size: int = Field(ge=0)
    mtime_ns: int = Field(ge=0)
    seen_ns: int = Field(ge=0)  # when size and mtime were read
    commit: Annotated[str, StringConstraints(pattern=r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")] | None = None
    captured_at: datetime

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        parts = PurePosixPath(self.path).parts
        if self.path.startswith("/") or ".." in parts or "\\" in self.path:
            raise ValueError(f"path: {self.path!r} must be relative to the project, with / and no ..")
        if (self.start is None) != (self.end is None):
            raise ValueError("start and end: give both or neither")
        if self.start is not None and self.end is not None:
            _check_range(self.start, self.end)
        if len(self.model_dump_json(exclude_none=True)) > MAX_ANCHOR_BYTES:
            raise ValueError(f"anchor: over the limit of {MAX_ANCHOR_BYTES} bytes of JSON")
        return self

    def to_payload(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude_none=True)

    @classmethod
    def from_payload(cls, value: Mapping[str, object]) -> Anchor:
        return cls.model_validate(value)

    @property
    def label(self) -> str:
        """``src/cart.ts:12-30``, ``src/cart.ts (addItem)`` or ``src/cart.ts``, for a reader."""
        return anchor_label(self.to_payload())


@dataclass(frozen=True)
class AnchorState:
    """What a check found. ``anchor`` is the one to keep: ``updated`` says it differs from the
    one checked (moved, or new size and mtime after a hash) and should be written back."""

    state: State
    anchor: Anchor
    updated: bool = False
    change: float | None = None  # changed: estimated share of distinct lines that differ, 0..1
    modified_at: float | None = None  # the file's mtime, seconds since the epoch
    detail: str = ""  # "renamed from src/a.ts", "symbol addItem removed", "file deleted", ...


def _check_range(start: int, end: int) -> None:
    if start < 1 or end < 1:
        raise ValueError(f"anchor lines: {min(start, end)} is below 1; lines count from 1")
    if start > MAX_LINE or end > MAX_LINE:
        raise ValueError(f"anchor lines: {max(start, end)} is over the limit of {MAX_LINE}")
    if end < start:
        raise ValueError(f"anchor lines: {start}-{end} ends before it starts")
    if end - start + 1 > MAX_SPAN_LINES:
        raise ValueError(f"anchor lines: {end - start + 1} lines is over the limit of {MAX_SPAN_LINES}")


def parse_anchor_spec(spec: str) -> tuple[str, tuple[int, int] | None]:
    """``src/cart.ts``, ``src/cart.ts:12`` or ``src/cart.ts:12-30`` -> (path, (start, end) or
    None); ValueError naming the field and the limit for anything else."""
    spec = spec.strip()
    if not spec:
        raise ValueError("anchor: empty; give a path such as src/cart.ts or src/cart.ts:12-30")
    if len(spec) > MAX_SPEC_CHARS:
        raise ValueError(f"anchor: {len(spec)} characters is over the limit of {MAX_SPEC_CHARS}")
    path, colon, suffix = spec.rpartition(":")
    if not colon or not suffix[:1].isdigit():
        return spec.removeprefix("./"), None
    first, dash, second = suffix.partition("-")
    if not first.isdigit() or (dash and not second.isdigit()) or not path:
        raise ValueError(f"anchor lines: {suffix!r} is not a line (12) or a range of lines (12-30)")
    start, end = int(first), int(second) if dash else int(first)
    _check_range(start, end)
    return path.removeprefix("./"), (start, end)


def capture(
    repo_root: str | os.PathLike[str],
    path: str,
    lines: tuple[int, int] | None = None,
    symbol: str | None = None,
    *,
    strict: bool = False,
) -> Anchor | None:
    """An anchor on ``path`` (relative to ``repo_root`` or absolute inside it): on ``symbol``'s
    block (the definition nearest ``lines`` if both are given), on ``lines``, or on the whole
    file. None when it cannot be anchored (outside the project, a directory, binary, over 2 MB,
    a range past the end, a symbol not defined there); with ``strict`` an ``AnchorRefused`` that
    says why, naming the field and the limit."""
    try:
        return _capture(Path(repo_root).resolve(), path, lines, symbol)
    except AnchorRefused:
        if strict:
            raise
        return None


def _capture(root: Path, path: str, lines: tuple[int, int] | None, symbol: str | None) -> Anchor:
    if lines is not None:
        try:
            _check_range(*lines)
        except ValueError as error:
            raise AnchorRefused(str(error)) from None
    if symbol is not None and not (
        0 < len(symbol) <= MAX_SYMBOL_CHARS and symbol.replace("$", "_").isidentifier()
    ):
        raise AnchorRefused(
            f"anchor symbol: {symbol[:40]!r} is not a name of at most {MAX_SYMBOL_CHARS} characters"
        )
    relative, file = inside(root, path)
    info = os.stat(file)
    seen_ns = time.time_ns()
    text = split_lines(read_text(file, info))
    start = end = None
    if symbol is not None:
        block = find_symbol(text, symbol, lines[0] - 1 if lines else 0)
        if block is None:
            raise AnchorRefused(f"anchor symbol: {symbol!r} is not defined in {relative}")
        start, end = block[0] + 1, block[1]
        if end - start + 1 > MAX_SPAN_LINES:
            raise AnchorRefused(f"anchor symbol: {symbol!r} spans over the limit of {MAX_SPAN_LINES} lines")
    elif lines is not None:
        start, end = lines
        if end > len(text):
            raise AnchorRefused(
                f"anchor lines: {start}-{end} is past the end of {relative} "
                f"({len(text)} line{'' if len(text) == 1 else 's'})"
            )
    covered = text[start - 1 : end] if start is not None else text
    try:
        return _anchor(relative, start, end, symbol, covered, info, seen_ns, root)
    except ValueError as error:  # pydantic's ValidationError: a limit of the model
        raise AnchorRefused(str(error)) from None


def _anchor(
    relative: str,
    start: int | None,
    end: int | None,
    symbol: str | None,
    covered: list[str],
    info: os.stat_result,
    seen_ns: int,
    root: Path,
) -> Anchor:
    return Anchor(
        path=relative,
        start=start,
        end=end,
        symbol=symbol,
        text_hash=digest(covered),
        head=line_hash(covered[0]) if start is not None and covered else None,
        sketch=sketch(covered),
        size=info.st_size,
        mtime_ns=info.st_mtime_ns,
        seen_ns=seen_ns,
        commit=head_commit(root),
        captured_at=datetime.now(UTC),
    )


def check(
    repo_root: str | os.PathLike[str],
    anchor: Anchor,
    *,
    renames: Mapping[str, str] | None = None,
    candidates: Iterable[str] = (),
) -> AnchorState:
    """The anchor's state in the working tree under ``repo_root`` (see the module's docstring);
    never raises for what it finds on disk. ``renames`` (old -> new path) and ``candidates``
    (repository-relative paths) are where a missing file is looked for."""
    root = Path(repo_root)
    try:
        info = os.stat(root / anchor.path)
    except (FileNotFoundError, NotADirectoryError):
        return _follow(root, anchor, renames or {}, candidates)
    except (OSError, ValueError) as error:
        return AnchorState("changed", anchor, detail=f"cannot be read ({error})")
    if not stat.S_ISREG(info.st_mode):
        return AnchorState("gone", anchor, detail="no longer a file")
    if (
        info.st_size == anchor.size
        and info.st_mtime_ns == anchor.mtime_ns
        and anchor.seen_ns - anchor.mtime_ns > RACY_NS
    ):
        return AnchorState("unchanged", anchor, modified_at=info.st_mtime_ns / 1e9)
    key = (str(root), anchor, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    with _seen_lock:
        known = _seen.get(key)
    if known is not None:
        return known
    state = _examine(root, anchor, anchor.path, info)
    if time.time_ns() - max(info.st_mtime_ns, info.st_ctime_ns) > RACY_NS:
        with _seen_lock:
            _seen[key] = state
    return state


def clear_check_cache() -> None:
    """Forget the states of files read so far (for a measurement of the first read)."""
    with _seen_lock:
        _seen.clear()


def _examine(root: Path, anchor: Anchor, path: str, info: os.stat_result, detail: str = "") -> AnchorState:
    """Read ``path`` and look for the anchored text in it."""
    modified = info.st_mtime_ns / 1e9
    seen_ns = time.time_ns()
    try:
        text = split_lines(read_text(inside(_resolved(root), path)[1], info))
    except (AnchorRefused, OSError) as error:
        return AnchorState("changed", anchor, modified_at=modified, detail=str(error))

    def found(start: int | None, end: int | None) -> AnchorState:
        new = anchor.model_copy(
            update={"path": path, "start": start, "end": end, "size": info.st_size}
            | {"mtime_ns": info.st_mtime_ns, "seen_ns": seen_ns}
        )
        moved = path != anchor.path or start != anchor.start
        state: State = "moved" if moved else "unchanged"
        return AnchorState(state, new, updated=new != anchor, modified_at=modified, detail=detail)

    def changed(covered: list[str]) -> AnchorState:
        share = change_share(anchor.sketch, covered)
        new = anchor.model_copy(update={"path": path}) if path != anchor.path else anchor
        return AnchorState("changed", new, new != anchor, share, modified, detail)

    if anchor.symbol is not None:
        near = (anchor.start or 1) - 1
        block = find_symbol(text, anchor.symbol, near)
        if block is None:
            return AnchorState("gone", anchor, modified_at=modified, detail=f"symbol {anchor.symbol} removed")
        if digest(text[block[0] : block[1]]) == anchor.text_hash:
            return found(block[0] + 1, block[1])
        return changed(text[block[0] : block[1]])
    if anchor.start is None or anchor.end is None:
        return found(None, None) if digest(text) == anchor.text_hash else changed(text)
    start, span = anchor.start - 1, anchor.end - anchor.start + 1
    if digest(text[start : start + span]) == anchor.text_hash:
        return found(anchor.start, anchor.end)
    if anchor.head is not None:
        moved_to = find_window(text, anchor.head, anchor.text_hash, span, start)
        if moved_to is not None:
            return found(moved_to + 1, moved_to + span)
    return changed(text[start : start + span])


@lru_cache(maxsize=64)
def _resolved(root: Path) -> Path:
    """The project's real path, once per process: a check that reads would otherwise resolve it
    every time (an ``lstat`` per component)."""
    return root.resolve()


def _follow(root: Path, anchor: Anchor, renames: Mapping[str, str], candidates: Iterable[str]) -> AnchorState:
    """A missing file: the path the rename map names, else a candidate holding the same text."""
    target = renames.get(anchor.path)
    if target is not None:
        try:
            info = os.stat(root / target)
        except (OSError, ValueError):
            info = None
        if info is not None and stat.S_ISREG(info.st_mode):
            return _examine(root, anchor, target, info, detail=f"renamed from {anchor.path}")
    name, suffix = PurePosixPath(anchor.path).name, PurePosixPath(anchor.path).suffix
    ranked = sorted(
        {c for c in candidates if c != anchor.path and c != target},
        key=lambda c: (PurePosixPath(c).name != name, PurePosixPath(c).suffix != suffix, c),
    )
    reads = 0
    for candidate in ranked:
        if reads >= MAX_RENAME_READS:
            break
        try:
            info = os.stat(root / candidate)
        except (OSError, ValueError):
            continue
        whole = anchor.start is None and anchor.symbol is None
        if not stat.S_ISREG(info.st_mode) or (whole and info.st_size != anchor.size):
            continue  # a whole file renamed as it was keeps its size: no read needed to rule it out
        reads += 1
        state = _examine(root, anchor, candidate, info, detail=f"renamed from {anchor.path}")
        if state.state in ("unchanged", "moved"):
            return state
    return AnchorState("gone", anchor, detail="file deleted")
