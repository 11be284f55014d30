"""What Clarity learns from tool use, done on a worker thread after the hook has replied.

Per session it remembers the failures it has seen, so that a later successful command of the
same program can be recorded as their fix (and the same command passing again after files were
edited, as a fix by those edits); it recognizes the commands that build and test the project;
and it keeps the files edited for the session summary. Repeats collapse: the same failure or the
same test command stored again only raises the memory's occurrence count.

What it learns about files is anchored there (``clarity.hooks.places``): an error on the files
its output names, a fix on the lines edited since the failure and on the failure's files, so
recall can tell when the code it is about has changed. A build command and a session summary
are not claims about a file's text and get no anchors.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from cachetools import TTLCache

# What a command runs lives in commands.py; imported here by the names callers have used.
from clarity.hooks.commands import MAX_PROGRAMS as MAX_PROGRAMS
from clarity.hooks.commands import build_or_test_steps, command_tags, programs_of
from clarity.hooks.commands import program_tag as program_tag
from clarity.hooks.events import HookEvent
from clarity.hooks.learning_queue import Gate, LearningQueue, QueuedEvent, queued_size
from clarity.hooks.places import EDIT_TOOLS, EditHint, EditLog, Place, anchors_at, edit_hint, output_places
from clarity.memory import MemoryService
from clarity.models import MemoryCreate, MemoryPatch, MemoryType, Source
from clarity.project import project_root, project_scope
from clarity.redact import redact
from clarity.store.space import InsufficientStorage
from clarity.text import one_line

log = logging.getLogger(__name__)

FAILURE_TTL = 30 * 60  # a fix must follow its failure within half an hour to count as its fix

# What one session's state may hold, whatever a session sends: the summary shows a few of each.
_MAX_FAILURES = 256
_MAX_LISTED = 50
_MAX_EDITED = 200
_DROP_LOG_SECONDS = 60.0
SUMMARY_CHARS = 4000


def error_summary(error: str) -> str:
    """The lines of an error worth remembering: not the exit-code banner, not blank lines."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    exit_line = next((line for line in lines if line.startswith("Exit code")), None)
    body = [line for line in lines if not line.startswith("Exit code")]
    interesting = [
        line for line in body if re.search(r"error|fail|not found|denied|missing|cannot|no such", line, re.I)
    ]
    chosen = (interesting or body)[:3]
    text = " / ".join(chosen) if chosen else (exit_line or "failed")
    return one_line(text, 300)


def provenance(event: HookEvent) -> dict[str, str]:
    """Where a learned memory came from, kept in its metadata: the hook event and the tool call.
    Each value is redacted whole before it is cut."""
    extra = event.model_extra or {}
    found = {
        "hook_event": event.hook_event_name,
        "tool_name": event.tool_name,
        "tool_use_id": extra.get("tool_use_id"),
        "prompt_id": extra.get("prompt_id"),
    }
    return {key: one_line(redact(str(value)), 200) for key, value in found.items() if value}


def sentence(text: str) -> str:
    """``text`` ending in exactly one full stop, or in its ellipsis if it was cut: never ".." or "…."."""
    text = text.rstrip()
    if text.endswith("…"):
        return text
    return text.rstrip(".") + "."


def cut_at_word(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, cut at the last word boundary before the limit (not
    inside a word or a command), without the separator before the cut, then one "…"."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = head.rfind(" ")
    if space > limit // 2:
        head = head[:space]
    return head.rstrip(" ,;:.…") + "…"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class Failure:
    """A failed command, as the learner keeps it: redacted, cut for display, and hashed whole."""

    command: str  # redacted, cut to 1000 characters
    digest: str  # of the whole redacted command: "the same command passed again"
    programs: list[str]
    error: str
    at: float
    places: tuple[Place, ...] = ()  # the project files its output named


def _append(items: list[str], item: str, limit: int = _MAX_LISTED) -> None:
    if len(items) < limit:
        items.append(item)


@dataclass
class SessionState:
    scope: str
    failures: dict[str, Failure] = field(default_factory=dict)  # program -> last failure
    fixes: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    build_commands: list[str] = field(default_factory=list)  # redacted, cut
    edited: list[str] = field(default_factory=list)  # redacted, cut
    edited_more: int = 0  # distinct files edited beyond those kept
    edits: EditLog = field(default_factory=EditLog)  # where in the project, for a fix's anchors
    summary_id: str | None = None

    def remember_failure(self, failure: Failure) -> None:
        for program in failure.programs:
            self.failures.pop(program, None)
            self.failures[program] = failure
        while len(self.failures) > _MAX_FAILURES:
            self.failures.pop(next(iter(self.failures)))


class Learner:
    """Turns tool events into memories on one background thread, in arrival order.

    Events wait in a :class:`LearningQueue`; each is checked (``gate``: pauses, exclusions) and
    learned on the learner thread, so queueing costs the caller no more than a lock. Every text
    taken from an event is redacted whole before anything cuts it.
    """

    def __init__(
        self,
        memory: MemoryService,
        max_events: int = 1000,
        max_bytes: int = 64 * 1_048_576,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.memory = memory
        self.sessions: TTLCache[str, SessionState] = TTLCache(maxsize=2048, ttl=24 * 3600)
        self._queue = LearningQueue(max_events, max_bytes)
        self._on_error = on_error
        self._drop_logged = 0.0
        self._thread = threading.Thread(target=self._run, name="clarity-learner", daemon=True)
        self._thread.start()

    # -- the queue ----------------------------------------------------------------------------

    def submit(self, event: HookEvent, gate: Gate | None = None) -> None:
        """Queue a tool event; ``gate`` decides on the learner thread whether it is learned."""
        handler = {
            "PostToolUse": self._tool_succeeded,
            "PostToolUseFailure": self._tool_failed,
            "Stop": self._summarize,
            "SessionEnd": self._end_session,
        }.get(event.hook_event_name)
        if handler is None:
            return
        slim = event.for_learning()
        size = queued_size(slim)
        hint = edit_hint(event) if event.hook_event_name == "PostToolUse" else None
        if hint is not None:  # the lines an edit wrote: the queue keeps no tool text
            handler, size = partial(self._tool_succeeded, hint=hint), size + hint.size
        if self._queue.put(QueuedEvent(handler, slim, gate, size)):
            self._log_drops()

    def _log_drops(self) -> None:
        """Once a minute at most: a flood would otherwise fill the log too."""
        now = time.monotonic()
        if now - self._drop_logged >= _DROP_LOG_SECONDS:
            self._drop_logged = now
            log.warning(
                "learning queue full (hooks.learning_queue=%d events, hooks.learning_queue_bytes=%d): "
                "%d oldest events dropped so far",
                self._queue.max_events,
                self._queue.max_bytes,
                self._queue.dropped,
            )

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                if item.gate is None or item.gate(item.event):
                    item.handler(item.event)
            except InsufficientStorage:
                pass  # the store logged it once when space ran short; learning resumes with space
            except Exception:
                log.exception("learning from a %s event failed", item.event.hook_event_name)
                if self._on_error is not None:
                    self._on_error(item.event.hook_event_name)
            finally:
                self._queue.done()

    @property
    def backlog(self) -> int:
        """Events waiting or being learned."""
        return self._queue.unfinished

    @property
    def dropped(self) -> int:
        """Events dropped, oldest first, because the queue was full (since the daemon started)."""
        return self._queue.dropped

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every queued event is learned (tests and shutdown)."""
        return self._queue.wait_empty(timeout)

    def close(self) -> None:
        self.drain(10)
        self._queue.close()
        self._thread.join(timeout=5)

    # -- learning ----------------------------------------------------------------------------

    def _session(self, event: HookEvent) -> SessionState:
        state = self.sessions.get(event.session_id)
        if state is None:
            state = SessionState(scope=project_scope(event.cwd))
            self.sessions[event.session_id] = state
        return state

    def _store(
        self,
        state: SessionState,
        event: HookEvent,
        content: str,
        kind: MemoryType,
        tags: list[str],
        importance: float,
        metadata: Mapping[str, object],
        anchors: list[dict[str, Any]] | None = None,
    ) -> None:
        """Store a learned memory with the anchors the learner chose (none: ``[]``, so the
        service does not anchor it on the paths its text mentions, such as a build script)."""
        self.memory.store(
            MemoryCreate(
                content=content,
                memory_type=kind,
                tags=tags,
                importance=importance,
                metadata={**provenance(event), **metadata},
                scope=state.scope,
                source=Source.hook,
                session_id=event.session_id,
            ),
            anchors=anchors or [],
        )

    @staticmethod
    def _root(event: HookEvent) -> Path | None:
        return project_root(event.cwd) if event.cwd else None

    def _anchors(self, event: HookEvent, places: list[Place]) -> list[dict[str, Any]]:
        root = self._root(event)
        return anchors_at(root, places) if root is not None and places else []

    def _tool_failed(self, event: HookEvent) -> None:
        if event.command is None:
            return
        command = redact(event.command)  # whole, before any cut
        state = self._session(event)
        programs = programs_of(command, MAX_PROGRAMS)
        output = redact(event.error or "")
        root = self._root(event)
        places = tuple(output_places(root, output)) if root is not None else ()
        error = error_summary(output)
        failure = Failure(one_line(command, 1000), _digest(command), programs, error, time.time(), places)
        state.remember_failure(failure)
        _append(state.failed, one_line(command, 120))
        content = f"`{one_line(command, 300)}` failed: {error}"
        metadata = {"command": failure.command}
        anchors = self._anchors(event, list(places))
        self._store(state, event, content, MemoryType.error, command_tags(programs), 0.6, metadata, anchors)

    def _tool_succeeded(self, event: HookEvent, hint: EditHint | None = None) -> None:
        state = self._session(event)
        if event.tool_name in EDIT_TOOLS and event.file_path:
            path = one_line(redact(event.file_path), 1000)
            if path not in state.edited:
                if len(state.edited) < _MAX_EDITED:
                    state.edited.append(path)
                else:
                    state.edited_more += 1
            state.edits.record(self._root(event), event.file_path, event.cwd, hint)
            return
        if event.command is None:
            return
        command = redact(event.command)  # whole, before any cut
        programs = programs_of(command, MAX_PROGRAMS)
        failure = next((state.failures[p] for p in programs if p in state.failures), None)
        involved = programs
        if failure is not None:
            involved = list(dict.fromkeys([*failure.programs, *programs]))
            for program in failure.programs:
                state.failures.pop(program, None)
        tags = command_tags(involved)
        fixed = (
            failure is not None
            and failure.digest != _digest(command)
            and time.time() - failure.at < FAILURE_TTL
        )
        edits = state.edits.since(failure.at) if failure is not None else []
        if failure is not None and fixed:
            content = (
                f"`{one_line(failure.command, 300)}` failed with: {sentence(failure.error)} "
                f"Fixed by running `{one_line(command, 300)}`."
            )
            _append(state.fixes, content)
            metadata = {"failed_command": failure.command, "fix_command": one_line(command, 1000)}
            anchors = self._anchors(event, [*edits, *failure.places])
            self._store(state, event, content, MemoryType.fix, tags, 0.7, metadata, anchors)
        elif failure is not None and edits:
            # The same command passes after files were edited: those edits fixed it.
            self._fixed_by_edits(state, event, failure, command, edits, tags)
        elif failure is not None:
            # The same command now passes: whatever happened in between fixed it.
            _append(
                state.fixes,
                sentence(f"`{one_line(command, 300)}` passed again after failing with: {failure.error}"),
            )
        steps = build_or_test_steps(command)
        if steps:
            # A command that fixed a failure ran once to repair something (`cp a b && ./run-tests.sh`):
            # the project is built or tested by its build/test steps, not by the repair.
            shown = one_line(" && ".join(steps) if fixed else command, 1000)
            if shown not in state.build_commands:
                _append(state.build_commands, shown)
            content = f"This project is built or tested with `{one_line(shown, 300)}`"
            self._store(
                state,
                event,
                content,
                MemoryType.command,
                command_tags(involved, "build-test"),
                0.6,
                {"command": shown},
            )  # no anchors: how the project is built is not a claim about a file's text

    def _fixed_by_edits(
        self,
        state: SessionState,
        event: HookEvent,
        failure: Failure,
        command: str,
        edits: list[Place],
        tags: list[str],
    ) -> None:
        """A fix learned from edits: "`pytest` failed with: ... Fixed by editing src/cart.py;
        it passed after that.", anchored on the lines edited and the files the failure named."""
        names = [one_line(redact(path), 120) for path, _ in edits[:3]]
        more = f" and {len(edits) - 3} more" if len(edits) > 3 else ""
        content = (
            f"`{one_line(failure.command, 300)}` failed with: {sentence(failure.error)} "
            f"Fixed by editing {', '.join(names)}{more}; `{one_line(command, 300)}` passed after that."
        )
        _append(state.fixes, content)
        metadata = {"failed_command": failure.command, "fixed_files": one_line(", ".join(names), 1000)}
        anchors = self._anchors(event, [*edits, *failure.places])
        self._store(state, event, content, MemoryType.fix, tags, 0.7, metadata, anchors)

    def summary_text(self, state: SessionState) -> str | None:
        """Built from texts the learner redacted whole before cutting them, then cut again."""
        parts = []
        if state.edited:
            names = ", ".join(one_line(path, 120) for path in state.edited[:15])
            extra = len(state.edited) - 15 + state.edited_more
            more = f" and {extra} more" if extra > 0 else ""
            parts.append(f"edited {names}{more}")
        if state.build_commands:
            parts.append(
                "built/tested with " + ", ".join(f"`{one_line(c, 100)}`" for c in state.build_commands[:5])
            )
        if state.failed:
            parts.append("failed: " + ", ".join(f"`{c}`" for c in dict.fromkeys(state.failed[:5])))
        if state.fixes:
            parts.append("fixes: " + " ".join(state.fixes[:3]))
        if not parts:
            return None
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        # Each fix is a sentence of its own (it ends in "."): the summary ends in one full stop,
        # or in one "…" at a word boundary when it is cut.
        return cut_at_word(sentence(" ".join(f"Session {day}: {'; '.join(parts)}".split())), SUMMARY_CHARS)

    def _summarize(self, event: HookEvent) -> None:
        state = self.sessions.get(event.session_id)
        if state is None:
            return
        text = self.summary_text(state)
        if text is None:
            return
        if state.summary_id is not None:
            try:
                self.memory.update(state.summary_id, MemoryPatch(content=text))
                return
            except LookupError:
                state.summary_id = None  # deleted by the user meanwhile: write a new one
        result = self.memory.store(
            MemoryCreate(
                content=text,
                memory_type=MemoryType.summary,
                tags=["session"],
                importance=0.4,
                metadata=provenance(event),
                scope=state.scope,
                source=Source.hook,
                session_id=event.session_id,
            ),
            anchors=[],  # a session's history, not a claim about a file's text
        )
        state.summary_id = result.id

    def _end_session(self, event: HookEvent) -> None:
        self._summarize(event)
        self.sessions.pop(event.session_id, None)
