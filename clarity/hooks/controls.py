"""What the user has switched off: paused projects, excluded tools and paths, the disable flag.

- ``clarity pause`` / ``clarity resume`` write ``<app-data>/controls.json``; the daemon re-reads
  it when its modification time changes, so a pause takes effect on the next hook without a
  restart and works whether or not the daemon is running.
- A project may add rules in ``.clarity.json`` at its root (next to ``.git``):
  ``{"exclude_tools": ["WebFetch"], "exclude_paths": ["fixtures/private/"], "learn": false}``.
- ``CLARITY_DISABLED=1`` in Claude Code's environment reaches command hooks directly and http
  hooks through the ``X-Clarity-Disabled`` header (see ``integrations.claude_entries``).
"""

from __future__ import annotations

import fcntl
import fnmatch
import json
import logging
import shlex
import threading
from pathlib import Path, PurePosixPath
from typing import Any

from cachetools import TTLCache
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clarity.atomic_file import write_atomically
from clarity.config import describe_validation_error

log = logging.getLogger(__name__)

DISABLED_ENV = "CLARITY_DISABLED"
DISABLED_HEADER = "x-clarity-disabled"
PROJECT_RULES_FILE = ".clarity.json"
GLOBAL = "*"


def is_disabled(value: str | None) -> bool:
    """Claude Code leaves an unset variable's ``$NAME`` in a header as is; only a real yes counts."""
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


class PauseState(BaseModel):
    paused: dict[str, str] = Field(
        default_factory=dict, description="scope id (or * for all) -> where it was paused"
    )


class Pauses:
    """The pause switches shared by the CLI (writer) and the daemon (reader)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seen: float | None = None
        self._state = PauseState()

    def _load(self) -> PauseState:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._seen, self._state = None, PauseState()
            return self._state
        with self._lock:
            if mtime != self._seen:
                try:
                    self._state = PauseState.model_validate_json(self.path.read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:
                    log.warning("ignoring unreadable %s: %s", self.path, exc)
                    self._state = PauseState()
                self._seen = mtime
            return self._state

    def is_paused(self, scope: str | None) -> bool:
        paused = self._load().paused
        return GLOBAL in paused or (scope is not None and scope in paused)

    def current(self) -> dict[str, str]:
        return dict(self._load().paused)

    def set(self, scope: str | None, paused: bool, label: str = "") -> None:
        """Atomic read-modify-write under a file lock, so two terminals cannot undo each other."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.path.with_suffix(".lock"), "a+", encoding="utf-8") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self._read_fresh()
            key = scope or GLOBAL
            if paused:
                state.paused[key] = label or key
            else:
                state.paused.pop(key, None)
            write_atomically(self.path, state.model_dump_json(indent=2), mode=0o600)

    def _read_fresh(self) -> PauseState:
        try:
            return PauseState.model_validate_json(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return PauseState()


class ProjectRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    learn: bool = True
    inject: bool = True
    exclude_tools: list[str] = Field(default_factory=list)
    exclude_paths: list[str] = Field(default_factory=list)


_rules_cache: TTLCache[str, tuple[Path | None, ProjectRules]] = TTLCache(maxsize=256, ttl=10)
_rules_lock = threading.Lock()


def project_rules(cwd: str | None) -> tuple[Path | None, ProjectRules]:
    """The ``.clarity.json`` of the project holding ``cwd`` (searched up to its git root), cached 10 s."""
    if not cwd:
        return None, ProjectRules()
    with _rules_lock:
        if cwd in _rules_cache:
            return _rules_cache[cwd]
    found: tuple[Path | None, ProjectRules] = (None, ProjectRules())
    directory = Path(cwd)
    for candidate in (directory, *directory.parents):
        rules_file = candidate / PROJECT_RULES_FILE
        if rules_file.is_file():
            try:
                found = (
                    candidate,
                    ProjectRules.model_validate(json.loads(rules_file.read_text(encoding="utf-8"))),
                )
            except (OSError, ValueError) as exc:
                detail = (
                    "; ".join(describe_validation_error(exc))
                    if isinstance(exc, ValidationError)
                    else str(exc)
                )
                log.warning("ignoring %s: %s", rules_file, detail)
            break
        if (candidate / ".git").exists():
            found = (candidate, ProjectRules())
            break
    with _rules_lock:
        _rules_cache[cwd] = found
    return found


def _paths_of(tool_input: dict[str, Any]) -> list[str]:
    paths = [
        str(tool_input[k])
        for k in ("file_path", "path", "notebook_path")
        if isinstance(tool_input.get(k), str)
    ]
    command = tool_input.get("command")
    if isinstance(command, str):
        try:
            words = shlex.split(command)
        except ValueError:
            words = command.split()
        paths += [w for w in words if "/" in w or "." in w]
    return paths


def path_matches(path: str, patterns: list[str], root: Path | None) -> bool:
    """``secrets/`` matches anything under a directory of that name; other globs match the file
    name or the path relative to the project root."""
    pure = PurePosixPath(path)
    relative = pure
    if root is not None and pure.is_absolute():
        try:
            relative = pure.relative_to(root.as_posix())
        except ValueError:
            relative = pure
    for pattern in patterns:
        if pattern.endswith("/"):
            directory = pattern.rstrip("/")
            if directory in pure.parts[:-1] or fnmatch.fnmatch(str(relative.parent), f"{directory}*"):
                return True
        elif fnmatch.fnmatch(pure.name, pattern) or fnmatch.fnmatch(str(relative), pattern):
            return True
    return False


def excluded_from_learning(
    tool_name: str | None,
    tool_input: dict[str, Any] | None,
    cwd: str | None,
    exclude_tools: list[str],
    exclude_paths: list[str],
) -> bool:
    root, rules = project_rules(cwd)
    if not rules.learn:
        return True
    if tool_name and tool_name in {*exclude_tools, *rules.exclude_tools}:
        return True
    if not tool_input:
        return False
    return any(path_matches(p, [*exclude_paths, *rules.exclude_paths], root) for p in _paths_of(tool_input))
