"""What Clarity learns from tool use, done on a worker thread after the hook has replied.

Per session it remembers the failures it has seen, so that a later successful command of the
same program can be recorded as their fix; it recognizes the commands that build and test the
project; and it keeps the files edited for the session summary. Repeats collapse: the same
failure or the same test command stored again only raises the memory's occurrence count.
"""

from __future__ import annotations

import logging
import queue
import re
import shlex
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cachetools import TTLCache

from clarity.hooks.events import HookEvent
from clarity.memory import MemoryService
from clarity.models import MemoryCreate, MemoryPatch, MemoryType, Source
from clarity.project import project_scope

log = logging.getLogger(__name__)

_BUILD_TEST = re.compile(
    r"^(?:(?:uv|poetry|pipenv|hatch|pdm)\s+run\s+)?(?:python3?\s+-m\s+)?"
    r"(pytest|tox|nox|make|cmake|ctest|ninja|cargo\s+(?:build|test|check|clippy)|go\s+(?:build|test|vet)|"
    r"(?:npm|pnpm|yarn|bun)\s+(?:run\s+)?(?:test|build|lint|check|typecheck)|npx\s+(?:jest|vitest|tsc|eslint)|"
    r"jest|vitest|tsc|mvn|gradle|\./gradlew|dotnet\s+(?:build|test)|ruff|mypy|black|eslint|"
    r"bazel\s+(?:build|test)|\./[\w./-]*(?:test|build|check|lint)[\w.-]*)(?:\s|$)"
)
_WRAPPERS = {"sudo", "time", "env", "nice", "timeout", "command", "exec"}
FAILURE_TTL = 30 * 60  # a fix must follow its failure within half an hour to count as its fix


def program_of(command: str) -> str:
    """The program a command runs, ignoring env assignments and wrappers: `FOO=1 sudo make x` -> make."""
    try:
        words = shlex.split(command, posix=True)
    except ValueError:
        words = command.split()
    for word in words:
        if "=" in word.split("/")[0] and not word.startswith(("-", "./", "/")):
            continue
        if word in _WRAPPERS or word.isdigit():
            continue
        return word.rsplit("/", 1)[-1] if not word.startswith("./") else word
    return words[0] if words else command


def programs_of(command: str) -> list[str]:
    """Every program a compound command runs: `cp a b && ./run-tests.sh | tee log` -> cp, ./run-tests.sh, tee."""
    segments = [part for part in re.split(r"&&|\|\||;|\||\n", command) if part.strip()]
    return list(dict.fromkeys(program_of(part) for part in segments)) or [program_of(command)]


def short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
    return short(text, 300)


def provenance(event: HookEvent) -> dict[str, str]:
    """Where a learned memory came from, kept in its metadata: the hook event and the tool call."""
    extra = event.model_extra or {}
    found = {
        "hook_event": event.hook_event_name,
        "tool_name": event.tool_name,
        "tool_use_id": extra.get("tool_use_id"),
        "prompt_id": extra.get("prompt_id"),
    }
    return {key: short(str(value), 200) for key, value in found.items() if value}


def is_build_or_test(command: str) -> bool:
    stripped = re.sub(r"^(?:\w+=\S+\s+)+", "", command.strip())
    return bool(_BUILD_TEST.match(stripped))


@dataclass
class Failure:
    command: str
    error: str
    at: float


@dataclass
class SessionState:
    scope: str
    failures: dict[str, Failure] = field(default_factory=dict)  # program -> last failure
    fixes: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    build_commands: list[str] = field(default_factory=list)
    edited: list[str] = field(default_factory=list)
    summary_id: str | None = None


class Learner:
    """Turns tool events into memories on one background thread, in arrival order."""

    def __init__(self, memory: MemoryService) -> None:
        self.memory = memory
        self.sessions: TTLCache[str, SessionState] = TTLCache(maxsize=2048, ttl=24 * 3600)
        self._queue: queue.Queue[tuple[Callable[[HookEvent], None], HookEvent] | None] = queue.Queue(
            maxsize=10_000
        )
        self._thread = threading.Thread(target=self._run, name="clarity-learner", daemon=True)
        self._thread.start()

    # -- the queue ----------------------------------------------------------------------------

    def submit(self, event: HookEvent) -> None:
        handler = {
            "PostToolUse": self._tool_succeeded,
            "PostToolUseFailure": self._tool_failed,
            "Stop": self._summarize,
            "SessionEnd": self._end_session,
        }.get(event.hook_event_name)
        if handler is None:
            return
        try:
            self._queue.put_nowait((handler, event))
        except queue.Full:
            log.warning("learning queue full; dropped a %s event", event.hook_event_name)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                handler, event = item
                handler(event)
            except Exception:
                log.exception("learning from a hook event failed")
            finally:
                self._queue.task_done()

    @property
    def backlog(self) -> int:
        return int(self._queue.unfinished_tasks)

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every queued event is learned (tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def close(self) -> None:
        self.drain(10)
        self._queue.put(None)
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
    ) -> None:
        self.memory.store(
            MemoryCreate(
                content=content,
                memory_type=kind,
                tags=tags,
                importance=importance,
                metadata={**provenance(event), **metadata},
                scope=state.scope,
                source=Source.hook,
                session_id=event.session_id[:200],
            ),
        )

    def _tool_failed(self, event: HookEvent) -> None:
        command = event.command
        if command is None:
            return
        state = self._session(event)
        programs = programs_of(command)
        error = error_summary(event.error or "")
        failure = Failure(command, error, time.time())
        for program in programs:
            state.failures[program] = failure
        state.failed.append(short(command, 120))
        content = f"`{short(command, 300)}` failed: {error}"
        tags = [f"cmd:{p}" for p in programs]
        self._store(state, event, content, MemoryType.error, tags, 0.6, {"command": short(command, 1000)})

    def _tool_succeeded(self, event: HookEvent) -> None:
        state = self._session(event)
        if event.tool_name in ("Edit", "Write", "MultiEdit", "NotebookEdit") and event.file_path:
            if event.file_path not in state.edited:
                state.edited.append(event.file_path)
            return
        command = event.command
        if command is None:
            return
        programs = programs_of(command)
        failure = next((state.failures[p] for p in programs if p in state.failures), None)
        involved = programs
        if failure is not None:
            involved = list(dict.fromkeys([*programs_of(failure.command), *programs]))
            for program in programs_of(failure.command):
                state.failures.pop(program, None)
        tags = [f"cmd:{p}" for p in involved]
        if failure is not None and failure.command != command and time.time() - failure.at < FAILURE_TTL:
            content = (
                f"`{short(failure.command, 300)}` failed with: {failure.error}. "
                f"Fixed by running `{short(command, 300)}`."
            )
            state.fixes.append(content)
            metadata = {"failed_command": short(failure.command, 1000), "fix_command": short(command, 1000)}
            self._store(state, event, content, MemoryType.fix, tags, 0.7, metadata)
        elif failure is not None:
            # The same command now passes: whatever happened in between fixed it.
            state.fixes.append(f"`{short(command, 300)}` passed again after failing with: {failure.error}")
        if any(is_build_or_test(part) for part in re.split(r"&&|;", command)):
            if command not in state.build_commands:
                state.build_commands.append(command)
            content = f"This project is built or tested with `{short(command, 300)}`"
            self._store(
                state,
                event,
                content,
                MemoryType.command,
                [*tags, "build-test"],
                0.6,
                {"command": short(command, 1000)},
            )

    def summary_text(self, state: SessionState) -> str | None:
        parts = []
        if state.edited:
            names = ", ".join(short(path, 120) for path in state.edited[:15])
            more = f" and {len(state.edited) - 15} more" if len(state.edited) > 15 else ""
            parts.append(f"edited {names}{more}")
        if state.build_commands:
            parts.append(
                "built/tested with " + ", ".join(f"`{short(c, 100)}`" for c in state.build_commands[:5])
            )
        if state.failed:
            parts.append("failed: " + ", ".join(f"`{c}`" for c in dict.fromkeys(state.failed[:5])))
        if state.fixes:
            parts.append("fixes: " + " ".join(state.fixes[:3]))
        if not parts:
            return None
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        return short(f"Session {day}: " + "; ".join(parts) + ".", 4000)

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
                session_id=event.session_id[:200],
            ),
        )
        state.summary_id = result.id

    def _end_session(self, event: HookEvent) -> None:
        self._summarize(event)
        self.sessions.pop(event.session_id, None)
