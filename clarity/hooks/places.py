"""The files of the project a hook event names, and where in them: for anchoring what the learner
learns from the event (``clarity.memory.anchoring``) and for per-file recall before a tool runs.

- A tool's file (Read, Edit, Write, MultiEdit ``tool_input.file_path``) as a path relative to the
  project's root, or None for a file outside it.
- The lines an edit wrote: the ranges of Claude Code's structured patch (PostToolUse of Edit
  carries ``tool_response.structuredPatch``, 2.1.330), else each ``new_string`` looked for in
  the file, once, on the learner thread; the whole file when neither says where.
- The files a failing command's output names (``anchor_repo.paths_in_text``), with the line a
  test runner gives (``tests/test_cart.py:14: AssertionError``).

``edit_hint`` runs when an event is queued (the queue keeps only a tool's path, not its text);
everything that reads a file runs on the learner thread, never on a hook's reply path.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clarity.hooks.events import HookEvent
from clarity.memory.anchor_repo import AnchorRefused, inside, paths_in_text, read_text
from clarity.memory.anchoring import capture_paths
from clarity.memory.anchors import MAX_SPAN_LINES, parse_anchor_spec
from clarity.models import MAX_ANCHORS

Lines = tuple[int, int]
Place = tuple[str, Lines | None]  # a project-relative path, and the lines (None: the whole file)

RECALL_TOOLS = frozenset({"Read", "Edit", "Write", "MultiEdit"})  # PreToolUse brings what is known
EDIT_TOOLS = frozenset({"Edit", "Write", "MultiEdit", "NotebookEdit"})
HEAD_CHARS = 2_000  # of each new text kept to look for in the file: enough to be unique
MAX_EDITS = 20  # of a MultiEdit's edits looked for
# Of a structured patch walked (when the event is queued, on the event loop: at most a few
# hundred microseconds); a larger edit spans more than an anchor may and anchors the whole file.
MAX_PATCH_LINES = MAX_SPAN_LINES
MERGE_SECONDS = 30 * 60  # the learner's window for a fix to follow its failure (learner.FAILURE_TTL)


@dataclass(frozen=True)
class EditHint:
    """What an edit wrote, kept from the event before the queue drops the tool's text: the
    patch's edited line ranges, or the start of each new text with its number of lines."""

    ranges: tuple[Lines, ...] = ()
    texts: tuple[tuple[str, int], ...] = ()

    @property
    def size(self) -> int:
        return 64 * len(self.ranges) + sum(len(text) for text, _ in self.texts)


def tool_file(event: HookEvent) -> str | None:
    """The file a Read, Edit, Write or MultiEdit call names, as Claude Code sent it."""
    return event.file_path if event.tool_name in RECALL_TOOLS else None


def project_file(root: Path, file_path: str, cwd: str) -> str | None:
    """``file_path`` (absolute, or relative to ``cwd``) relative to the project ``root``, with
    ``/``; None outside the project. Lexical first (a file about to be written need not exist),
    then with symlinks resolved (a cwd under a symlinked directory)."""
    try:
        path = Path(file_path)
        if not path.is_absolute():
            path = Path(cwd) / path
        path = Path(os.path.normpath(path))
        try:
            relative = path.relative_to(root)
        except ValueError:
            relative = path.resolve().relative_to(root.resolve())
    except (OSError, RuntimeError, ValueError):
        return None
    text = relative.as_posix()
    return None if text in ("", ".") or text.startswith("../") else text


def edit_hint(event: HookEvent) -> EditHint | None:
    """Where an Edit or MultiEdit wrote, from the whole event (before ``for_learning``)."""
    if event.tool_name not in ("Edit", "MultiEdit"):
        return None
    response = event.tool_response
    patch = response.get("structuredPatch") if isinstance(response, Mapping) else None
    ranges = _patched(patch) if isinstance(patch, list) else ()
    if ranges:
        return EditHint(ranges=ranges)
    tool_input = event.tool_input or {}
    news: list[Any] = [tool_input.get("new_string")]
    edits = tool_input.get("edits")
    if isinstance(edits, list):
        news += [e.get("new_string") for e in edits[:MAX_EDITS] if isinstance(e, Mapping)]
    texts = tuple(_head(text) for text in news if isinstance(text, str) and text.strip())
    return EditHint(texts=texts) if texts else None


def _head(text: str) -> tuple[str, int]:
    """The new text without leading blank lines, cut to HEAD_CHARS, and how many lines it spans."""
    body = text.lstrip("\n")
    return body[:HEAD_CHARS], body.count("\n") + (0 if body.endswith("\n") else 1)


def _patched(hunks: Sequence[Any]) -> tuple[Lines, ...]:
    """The new-side lines each hunk adds (or, for a pure deletion, the line where it removed)."""
    ranges: list[Lines] = []
    if len(hunks) > MAX_PATCH_LINES:
        return ()
    if not all(isinstance(h, Mapping) and isinstance(h.get("lines"), list) for h in hunks):
        return ()
    if sum(len(h["lines"]) for h in hunks) > MAX_PATCH_LINES:
        return ()
    for hunk in hunks:
        start, lines = hunk.get("newStart"), hunk["lines"]
        if not isinstance(start, int):
            return ()
        at, marked = start, []
        for line in lines:
            if not isinstance(line, str) or line.startswith("\\"):
                continue
            if line.startswith("+"):
                marked.append(at)
                at += 1
            elif line.startswith("-"):
                marked.append(at)
            else:
                at += 1
        if marked:
            ranges.append((max(1, min(marked)), max(1, max(marked))))
    return tuple(ranges)


def edited_lines(root: Path, relative: str, hint: EditHint | None) -> Lines | None:
    """The lines an edit wrote in ``relative``, as one range; None (the whole file) when they
    cannot be found, span more than an anchor may, or the new text is not found exactly once."""
    if hint is None:
        return None
    ranges = list(hint.ranges)
    if not ranges and hint.texts:
        try:
            _, file = inside(root.resolve(), relative)
            text = read_text(file, os.stat(file))
        except (AnchorRefused, OSError):
            return None
        for head, count in hint.texts:
            at = text.find(head)
            if at < 0 or text.find(head, at + 1) >= 0:
                continue  # not there any more, or not only there
            first = text.count("\n", 0, at) + 1
            ranges.append((first, first + max(1, count) - 1))
    if not ranges:
        return None
    start, end = min(r[0] for r in ranges), max(r[1] for r in ranges)
    return (start, end) if end - start + 1 <= MAX_SPAN_LINES else None


def merge(old: Lines | None, new: Lines | None) -> Lines | None:
    """Two edits of one file as one range (None, the whole file, when either is or it is too long)."""
    if old is None or new is None:
        return None
    start, end = min(old[0], new[0]), max(old[1], new[1])
    return (start, end) if end - start + 1 <= MAX_SPAN_LINES else None


def output_places(root: Path, output: str) -> list[Place]:
    """The project files a command's output names, each once, with the first line it gives for
    it (pytest names ``tests/test_x.py::test_name`` and then ``tests/test_x.py:14``: the line
    is what failed, and a whole-file anchor would flag the memory at any edit of the file)."""
    places: dict[str, Lines | None] = {}
    for spec in paths_in_text(root, output.replace("::", " ")):
        try:
            path, lines = parse_anchor_spec(spec)
        except ValueError:
            continue
        if places.get(path) is None:
            places[path] = lines
    return list(places.items())


def anchors_at(root: Path, places: Sequence[Place]) -> list[dict[str, Any]]:
    """Anchors on ``places`` (at most ``MAX_ANCHORS``, the first places first); a range that
    cannot be anchored any more (past the file's end now) falls back to the whole file, and a
    place that cannot be anchored at all is left out."""
    wanted = list(dict.fromkeys(places))[: MAX_ANCHORS * 2]
    found = capture_paths(root, wanted)
    got = {anchor.get("path") for anchor in found}
    retry = [(path, None) for path, lines in wanted if lines is not None and path not in got]
    if retry:
        found += capture_paths(root, list(dict.fromkeys(retry)))
    return found[:MAX_ANCHORS]


@dataclass
class _Edit:
    lines: Lines | None
    at: float


class EditLog:
    """The project files one session edited, each with the lines last written and when: what a
    fix that follows a failure is anchored on. At most ``limit`` files, the oldest dropped."""

    def __init__(self, limit: int = 200) -> None:
        self.limit = limit
        self._edits: dict[str, _Edit] = {}

    def record(self, root: Path | None, file_path: str, cwd: str, hint: EditHint | None) -> None:
        """An edit of ``file_path``; nothing for a file outside the project. Two edits of one
        file within ``MERGE_SECONDS`` count as one range."""
        relative = project_file(root, file_path, cwd) if root is not None else None
        if root is None or relative is None:
            return
        lines = edited_lines(root, relative, hint)
        known = self._edits.pop(relative, None)
        now = time.time()
        if known is not None and now - known.at < MERGE_SECONDS:
            lines = merge(known.lines, lines)
        self._edits[relative] = _Edit(lines, now)
        while len(self._edits) > self.limit:
            self._edits.pop(next(iter(self._edits)))

    def since(self, moment: float) -> list[Place]:
        """The files edited at or after ``moment``, most recently edited last."""
        return [(path, edit.lines) for path, edit in self._edits.items() if edit.at >= moment]
