"""``clarity hooks install / uninstall / status``: Clarity's wiring into Claude Code, per scope.

Claude Code's settings files belong to the user and to other tools as much as to Clarity, so
every command here plans its edits on all the files it touches first (``claude_edits``, which
only ever adds, replaces or removes Clarity's own entries) and writes only when every file
could be read (``claude_files``). Which entries are Clarity's, and what they hold, is
``claude_entries``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from clarity.hooks.command_client import EVENTS  # the stdlib list: no pydantic models on the CLI path
from clarity.integrations.claude_edits import (
    Edit,
    installed_hooks,
    mcp_holder,
    mcp_servers,
    merge_hooks,
    merge_mcp,
    remove_hooks,
    remove_mcp,
)
from clarity.integrations.claude_entries import (
    HOOK_TYPES,
    MCP_NAME,
    HookType,
    is_stdio_shim,
    mcp_entry,
    resolve_base_url,
)
from clarity.integrations.claude_files import (
    SCOPES,
    JsonObject,
    Scope,
    SettingsError,
    mcp_path,
    project_dir,
    read_json,
    settings_path,
    state_file,
    write_json_atomic,
)

# ---------------------------------------------------------------------------------------------
# Results


@dataclass
class FileChange:
    """What one command did to one file. ``items`` are hook event names, or ``clarity`` for
    the MCP server."""

    path: Path
    kind: Literal["hooks", "mcp"]
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    created: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def to_dict(self) -> JsonObject:
        return {**asdict(self), "path": str(self.path), "changed": self.changed}


@dataclass
class InstallResult:
    """Outcome of :func:`install` or :func:`uninstall`."""

    action: Literal["install", "uninstall"]
    scope: Scope
    files: list[FileChange]
    hook_type: HookType | None = None
    base_url: str | None = None

    @property
    def changed(self) -> bool:
        return any(f.changed for f in self.files)

    def to_dict(self) -> JsonObject:
        return {
            "action": self.action,
            "scope": self.scope,
            "hook_type": self.hook_type,
            "base_url": self.base_url,
            "changed": self.changed,
            "files": [f.to_dict() for f in self.files],
        }


@dataclass
class ScopeStatus:
    """Clarity's footprint in one scope. ``error`` is set when a file could not be read."""

    scope: Scope
    settings_path: Path
    hooks: dict[str, str]
    mcp_path: Path
    mcp: JsonObject | None
    error: str | None = None

    @property
    def mcp_registered(self) -> bool:
        return self.mcp is not None

    @property
    def mcp_outdated(self) -> bool:
        """The stdio shim in user scope, as installs before issue 25 left it: Claude Code waits
        for its process at every session start; ``install`` replaces it with the HTTP entry."""
        return self.scope == "user" and is_stdio_shim(self.mcp)

    @property
    def hooks_complete(self) -> bool:
        return all(event in self.hooks for event in EVENTS)

    def to_dict(self) -> JsonObject:
        return {
            "scope": self.scope,
            "settings_path": str(self.settings_path),
            "hooks": self.hooks,
            "hooks_complete": self.hooks_complete,
            "mcp_path": str(self.mcp_path),
            "mcp_registered": self.mcp_registered,
            "mcp_type": (self.mcp or {}).get("type"),
            "mcp_outdated": self.mcp_outdated,
            "error": self.error,
        }


@dataclass
class IntegrationStatus:
    project: Path
    scopes: list[ScopeStatus]

    def scope(self, name: Scope) -> ScopeStatus:
        return next(s for s in self.scopes if s.scope == name)

    @property
    def installed(self) -> bool:
        return any(s.hooks or s.mcp_registered for s in self.scopes)

    def to_dict(self) -> JsonObject:
        return {"project": str(self.project), "scopes": [s.to_dict() for s in self.scopes]}


# ---------------------------------------------------------------------------------------------
# Public API


def _check_scope(scope: str) -> Scope:
    for known in SCOPES:
        if scope == known:
            return known
    raise SettingsError(f"unknown scope {scope!r} (use one of: {', '.join(SCOPES)})")


Transform = Callable[[JsonObject], tuple[JsonObject, Edit]]


def _apply(plans: list[tuple[Path, Literal["hooks", "mcp"], Transform, bool]]) -> list[FileChange]:
    """Read every file and compute every edit first, then write: a file that cannot be read
    stops the whole command before anything is written. Plans on the same file chain."""
    loaded: dict[Path, JsonObject | None] = {}
    current: dict[Path, JsonObject] = {}
    changes: list[FileChange] = []
    private: dict[Path, bool] = {}
    for path, kind, transform, is_private in plans:
        if path not in loaded:
            loaded[path] = read_json(path)
            current[path] = loaded[path] or {}
        new, edit = transform(current[path])
        current[path] = new
        private[path] = private.get(path, False) or is_private
        changes.append(
            FileChange(
                path,
                kind,
                edit.added,
                edit.updated,
                edit.removed,
                created=loaded[path] is None and bool(edit.added),
            )
        )
    for path, data in current.items():
        before = loaded[path]
        if (data != before) if before is not None else bool(data):
            write_json_atomic(path, data, private=private[path])
    return changes


def install(
    scope: Scope = "user",
    hook_type: HookType = "command",
    project: Path | None = None,
    no_mcp: bool = False,
    base_url: str | None = None,
) -> InstallResult:
    """Add (or bring up to date) Clarity's hooks and MCP server in one scope.

    Command hooks by default: Claude Code 2.1.330 shows the user every ``http`` hook that cannot
    reach the daemon (a "hook failed" line per event in the terminal, SessionEnd's on stderr in
    ``-p`` mode), while a command hook that exits 0 stays silent (tests/e2e/test_fail_silent.py);
    they cost Claude Code a process per event (scripts/bench/session_start.py, a session with one
    tool call: +0.23 s of wall time against +0.10 s for http; the first model request +0.10 s
    against +0.07 s; load 1.3).
    Running it twice with the same arguments leaves every file byte-identical."""
    scope = _check_scope(scope)
    if hook_type not in HOOK_TYPES:
        raise SettingsError(f"unknown hook type {hook_type!r} (use http or command)")
    project = project_dir(project or Path.cwd())
    base = resolve_base_url(base_url)
    spath = settings_path(scope, project)
    plans: list[tuple[Path, Literal["hooks", "mcp"], Transform, bool]] = [
        (spath, "hooks", lambda data: merge_hooks(data, hook_type, base, spath), False)
    ]
    if not no_mcp:
        mpath = mcp_path(scope, project)
        entry = mcp_entry(scope, project, base)
        plans.append(
            (mpath, "mcp", lambda data: merge_mcp(data, scope, project, entry, mpath), mpath == state_file())
        )
    return InstallResult("install", scope, _apply(plans), hook_type, base)


def uninstall(
    scope: Scope = "user",
    project: Path | None = None,
    no_mcp: bool = False,
    base_url: str | None = None,
) -> InstallResult:
    """Remove Clarity's hooks (of either type) and MCP server from one scope, and nothing else.

    Files that do not exist are not created."""
    scope = _check_scope(scope)
    project = project_dir(project or Path.cwd())
    base = resolve_base_url(base_url)
    spath = settings_path(scope, project)
    plans: list[tuple[Path, Literal["hooks", "mcp"], Transform, bool]] = [
        (spath, "hooks", lambda data: remove_hooks(data, base, spath), False)
    ]
    if not no_mcp:
        mpath = mcp_path(scope, project)
        plans.append((mpath, "mcp", lambda data: remove_mcp(data, scope, project, mpath), False))
    return InstallResult("uninstall", scope, _apply(plans), None, base)


def scope_status(scope: Scope, project: Path | None = None, base_url: str | None = None) -> ScopeStatus:
    project = project_dir(project or Path.cwd())
    spath, mpath = settings_path(scope, project), mcp_path(scope, project)
    status = ScopeStatus(scope, spath, {}, mpath, None)
    try:
        base = resolve_base_url(base_url)
        status.hooks = installed_hooks(read_json(spath) or {}, base)
        holder = mcp_holder(read_json(mpath) or {}, scope, project, mpath, create=False)
        entry = mcp_servers(holder, mpath).get(MCP_NAME) if holder is not None else None
        status.mcp = entry if isinstance(entry, dict) else None
    except SettingsError as exc:
        status.error = str(exc)
    return status


def status(project: Path | None = None, base_url: str | None = None) -> IntegrationStatus:
    """Where Clarity is wired into Claude Code, per scope; never raises for a bad file (the
    error is reported in that scope instead), so a doctor command can show everything."""
    project = project_dir(project or Path.cwd())
    return IntegrationStatus(project, [scope_status(s, project, base_url) for s in SCOPES])


__all__ = [
    "EVENTS",
    "FileChange",
    "HookType",
    "InstallResult",
    "IntegrationStatus",
    "Scope",
    "ScopeStatus",
    "SettingsError",
    "install",
    "scope_status",
    "status",
    "uninstall",
]
