"""Merge Clarity's hooks and MCP registration into Claude Code's settings, and take them out again.

Claude Code's settings files belong to the user and to other tools as much as to Clarity, so
this module only ever adds, replaces or removes Clarity's own entries: every other key, hook
and server stays as it was, in the same order. Clarity's entries carry no marker (Claude Code
would keep it but nothing guarantees that), so they are recognised by what they do: an ``http``
hook posting to ``/hooks/<Event>`` on a loopback host or on the configured Clarity base URL,
or a ``command`` hook running ``hook_analyzer.py``; the MCP server is the one named
``clarity``.

The shapes match what Claude Code 2.1.330 itself writes (``claude mcp add``) and accepts
(``claude doctor`` reports no invalid settings); see tests/test_claude_settings.py.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from clarity.hooks.events import EVENTS

Scope = Literal["user", "project", "local"]

HookType = Literal["http", "command"]
SCOPES: tuple[Scope, ...] = ("user", "project", "local")
HOOK_TYPES: tuple[HookType, ...] = ("http", "command")

# Only tool events match on anything useful (the tool name); the others would match on a
# source or reason, and Clarity wants every firing anyway.
TOOL_EVENTS = frozenset({"PreToolUse", "PostToolUse", "PostToolUseFailure"})
# Seconds Claude Code waits for the daemon per event: tool hooks sit on every tool call, the
# prompt hook on every prompt; the session hooks can afford more.
TIMEOUTS = {
    "SessionStart": 5,
    "UserPromptSubmit": 3,
    "PreToolUse": 2,
    "PostToolUse": 2,
    "PostToolUseFailure": 2,
    "Stop": 5,
    "SessionEnd": 5,
}
# Claude Code 2.1.330 skips http hooks on SessionStart ("HTTP hooks are not supported for
# SessionStart"), so that one is always a command hook.
COMMAND_ONLY_EVENTS = frozenset({"SessionStart"})
# A command hook gets this much longer than its analyzer's own deadline, so the analyzer
# gives up quietly before Claude Code has to kill it.
COMMAND_GRACE_SECONDS = 1

MCP_NAME = "clarity"
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
ANALYZER = Path(__file__).resolve().parent.parent / "mcp" / "hook_analyzer.py"
ANALYZER_MARK = "hook_analyzer.py"
TOKEN_ENV = "CLARITY_TOKEN"
DISABLED_ENV = "CLARITY_DISABLED"
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0"})

JsonObject = dict[str, Any]


class SettingsError(Exception):
    """A settings file Clarity must not touch (not JSON, or not shaped as Claude Code expects).

    The message names the file and is meant to be shown as is."""


# ---------------------------------------------------------------------------------------------
# Where things live


def config_dir() -> Path:
    """Claude Code's user directory: ``$CLAUDE_CONFIG_DIR`` or ``~/.claude``."""
    custom = os.environ.get("CLAUDE_CONFIG_DIR")
    return Path(custom).expanduser() if custom else Path.home() / ".claude"


def state_file() -> Path:
    """Claude Code's state file, where user- and local-scope MCP servers are registered.

    Checked with the real CLI: with ``CLAUDE_CONFIG_DIR`` set it is ``$CLAUDE_CONFIG_DIR/.claude.json``,
    otherwise ``~/.claude.json`` (beside ``~/.claude``, not inside it)."""
    custom = os.environ.get("CLAUDE_CONFIG_DIR")
    return Path(custom).expanduser() / ".claude.json" if custom else Path.home() / ".claude.json"


def settings_path(scope: Scope, project: Path) -> Path:
    if scope == "user":
        return config_dir() / "settings.json"
    name = "settings.json" if scope == "project" else "settings.local.json"
    return _project(project) / ".claude" / name


def mcp_path(scope: Scope, project: Path) -> Path:
    return _project(project) / ".mcp.json" if scope == "project" else state_file()


def local_project_key(project: Path) -> str:
    """The key Claude Code files a project under in ``projects`` of its state file.

    ``claude mcp add -s local`` run in a sub-directory (or a symlink) of a git repository
    registers the server under the repository's top level, resolved; outside git, under the
    directory itself. Clarity must use the same key or Claude Code will not see the entry."""
    path = _project(project)
    for candidate in (path, *path.parents):
        if (candidate / ".git").exists():
            return str(candidate)
    return str(path)


def _project(project: Path) -> Path:
    return Path(project).expanduser().resolve()


def resolve_base_url(base_url: str | None = None) -> str:
    """The daemon's base URL, by the same rules as hook_analyzer.py: explicit, ``CLARITY_URL``,
    else loopback on ``CLARITY_SERVER__PORT`` (8000)."""
    url = base_url or os.environ.get("CLARITY_URL")
    if not url:
        url = f"http://127.0.0.1:{os.environ.get('CLARITY_SERVER__PORT') or 8000}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"not an http(s) URL for the Clarity daemon: {url!r}")
    return url.rstrip("/")


def clarity_executable() -> str:
    """The ``clarity`` command of the installing environment, for the stdio MCP shim.

    Beside ``sys.executable`` first (a venv's bin/ without resolving its python symlink), so
    the shim runs in the environment that installed it even when that is not on PATH."""
    bin_dir = Path(sys.executable).absolute().parent
    for name in ("clarity", "clarity.exe"):
        candidate = bin_dir / name
        if candidate.exists():
            return str(candidate)
    return shutil.which("clarity") or str(bin_dir / "clarity")


# ---------------------------------------------------------------------------------------------
# The entries Clarity writes


def _token_configured() -> bool:
    return bool(os.environ.get(TOKEN_ENV))


def _shell_quote(value: str) -> str:
    """Double-quote a path for the shell Claude Code runs command hooks with."""
    escaped = "".join("\\" + ch if ch in '"\\$`' else ch for ch in value)
    return f'"{escaped}"'


def analyzer_command(event: str, base_url: str) -> str:
    """``"<python>" -S "<hook_analyzer.py>" --timeout=N [--url=BASE]``.

    ``-S`` skips ``site``: the analyzer is stdlib-only, and a venv's .pth hooks (editable
    installs, setuptools' distutils shim) cost ~20 ms of interpreter start-up here. ``--timeout`` gives the
    daemon the same budget as an http hook for this event; ``--url`` is only baked in when the
    base differs from the default, so ``CLARITY_URL`` at run time still applies otherwise."""
    parts = [_shell_quote(sys.executable), "-S", _shell_quote(str(ANALYZER)), f"--timeout={TIMEOUTS[event]}"]
    if base_url != DEFAULT_BASE_URL:
        parts.append(_shell_quote(f"--url={base_url}"))
    return " ".join(parts)


def hook_handler(event: str, hook_type: HookType, base_url: str) -> JsonObject:
    if hook_type == "command" or event in COMMAND_ONLY_EVENTS:
        return {
            "type": "command",
            "command": analyzer_command(event, base_url),
            "timeout": TIMEOUTS[event] + COMMAND_GRACE_SECONDS,
        }
    handler: JsonObject = {"type": "http", "url": f"{base_url}/hooks/{event}", "timeout": TIMEOUTS[event]}
    # Claude Code fills $VAR in http hook headers only for variables listed in allowedEnvVars:
    # CLARITY_DISABLED=1 in a session's environment reaches the daemon this way, and the token
    # itself never lands in the settings file.
    headers = {"X-Clarity-Disabled": f"${DISABLED_ENV}"}
    allowed = [DISABLED_ENV]
    if _token_configured():
        headers["Authorization"] = f"Bearer ${TOKEN_ENV}"
        allowed.append(TOKEN_ENV)
    handler["headers"] = headers
    handler["allowedEnvVars"] = allowed
    return handler


def hook_group(event: str, hook_type: HookType, base_url: str) -> JsonObject:
    group: JsonObject = {}
    if event in TOOL_EVENTS:
        group["matcher"] = "*"
    group["hooks"] = [hook_handler(event, hook_type, base_url)]
    return group


def mcp_entry(scope: Scope, project: Path, base_url: str) -> JsonObject:
    """User scope: the stdio shim (it knows its cwd, hence the project). Project and local:
    the daemon's streamable HTTP endpoint, told the project by a header."""
    if scope == "user":
        return {"type": "stdio", "command": clarity_executable(), "args": ["mcp"], "env": {}}
    headers = {"X-Clarity-Project": str(_project(project))}
    if _token_configured():
        headers["Authorization"] = f"Bearer ${{{TOKEN_ENV}}}"  # expanded by Claude Code at run time
    return {"type": "http", "url": f"{base_url}/mcp", "headers": headers}


# ---------------------------------------------------------------------------------------------
# Recognising Clarity's entries


def clarity_hook_type(handler: Any, base_url: str | None = None) -> str | None:
    """``"http"`` or ``"command"`` when ``handler`` is one of Clarity's hooks, else None."""
    if not isinstance(handler, dict):
        return None
    if handler.get("type") == "command":
        command = handler.get("command")
        return "command" if isinstance(command, str) and ANALYZER_MARK in command else None
    if handler.get("type") == "http":
        url = handler.get("url")
        return "http" if isinstance(url, str) and _is_clarity_hook_url(url, base_url) else None
    return None


def _is_clarity_hook_url(url: str, base_url: str | None) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    head, _, event = parts.path.rpartition("/")
    if event not in EVENTS or not head.endswith("/hooks"):
        return False
    if parts.hostname in _LOOPBACK_HOSTS:
        return True
    bases = {b for b in (base_url, os.environ.get("CLARITY_URL")) if b}
    return any(url.startswith(b.rstrip("/") + "/hooks/") for b in bases)


# ---------------------------------------------------------------------------------------------
# Editing the JSON (pure functions on parsed data)


@dataclass
class _Edit:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def _hooks_table(settings: JsonObject, path: Path) -> JsonObject | None:
    hooks = settings.get("hooks")
    if hooks is None:
        return None
    if not isinstance(hooks, dict):
        raise SettingsError(f'{path}: "hooks" is not an object; fix it by hand (Clarity changed nothing)')
    for event, groups in hooks.items():
        if not isinstance(groups, list):
            raise SettingsError(
                f'{path}: "hooks.{event}" is not a list; fix it by hand (Clarity changed nothing)'
            )
    return hooks


def _strip_clarity(groups: list[Any], base_url: str | None) -> tuple[list[Any], int | None, int]:
    """``groups`` without Clarity's handlers: (new groups, index of the first group that held
    one, number removed). A group left empty by the removal goes too; other groups, and
    groups that were already empty, are kept exactly."""
    kept: list[Any] = []
    first: int | None = None
    removed = 0
    for group in groups:
        handlers = group.get("hooks") if isinstance(group, dict) else None
        if not isinstance(handlers, list):
            kept.append(group)
            continue
        others = [h for h in handlers if clarity_hook_type(h, base_url) is None]
        if len(others) == len(handlers):
            kept.append(group)
            continue
        removed += len(handlers) - len(others)
        if first is None:
            first = len(kept)
        if others:
            kept.append({**group, "hooks": others})
    return kept, first, removed


def merge_hooks(
    settings: JsonObject, hook_type: HookType, base_url: str, path: Path
) -> tuple[JsonObject, _Edit]:
    """``settings`` with exactly one Clarity hook group per event.

    An existing Clarity entry is replaced where it stood, so a second install with the same
    arguments yields the same data, and an upgrade does not reorder anyone's hooks."""
    edit = _Edit()
    hooks = dict(_hooks_table(settings, path) or {})
    for event in EVENTS:
        old = hooks.get(event, [])
        kept, first, removed = _strip_clarity(old, base_url)
        desired = hook_group(event, hook_type, base_url)
        position = len(kept) if first is None else first
        new = [*kept[:position], desired, *kept[position:]]
        if new == old:
            continue
        hooks[event] = new
        (edit.updated if removed else edit.added).append(event)
    if not edit.added and not edit.updated:
        return settings, edit
    return {**settings, "hooks": hooks}, edit  # an existing "hooks" key keeps its place


def remove_hooks(settings: JsonObject, base_url: str | None, path: Path) -> tuple[JsonObject, _Edit]:
    """``settings`` without Clarity's hooks; event lists (and ``hooks`` itself) that only
    Clarity filled are dropped, everything else is left as it was."""
    edit = _Edit()
    table = _hooks_table(settings, path)
    if not table:
        return settings, edit
    hooks: JsonObject = {}
    for event, groups in table.items():
        kept, first, removed = _strip_clarity(groups, base_url)
        if first is not None:
            edit.removed.append(event)
        if kept or first is None:
            hooks[event] = kept if removed else groups
    if not edit.removed:
        return settings, edit
    if hooks:
        return {**settings, "hooks": hooks}, edit
    return {k: v for k, v in settings.items() if k != "hooks"}, edit


def installed_hooks(settings: JsonObject, base_url: str | None = None) -> dict[str, str]:
    """Event -> Clarity hook type found in ``settings`` (``"http+command"`` if both)."""
    found: dict[str, str] = {}
    hooks = settings.get("hooks")
    if not isinstance(hooks, dict):
        return found
    for event, groups in hooks.items():
        types: list[str] = []
        for group in groups if isinstance(groups, list) else []:
            handlers = group.get("hooks") if isinstance(group, dict) else None
            for handler in handlers if isinstance(handlers, list) else []:
                kind = clarity_hook_type(handler, base_url)
                if kind and kind not in types:
                    types.append(kind)
        if types:
            found[event] = "+".join(types)
    return found


def _servers_holder(
    data: JsonObject, scope: Scope, project: Path, path: Path, create: bool
) -> JsonObject | None:
    """The object whose ``mcpServers`` Clarity edits: the file itself, or (local scope) the
    project's entry in ``projects``. Copies on the way down, so ``data`` is never mutated."""
    if scope != "local":
        return data
    projects = data.get("projects")
    if projects is None and not create:
        return None
    if projects is not None and not isinstance(projects, dict):
        raise SettingsError(f'{path}: "projects" is not an object; fix it by hand (Clarity changed nothing)')
    key = local_project_key(project)
    entry = (projects or {}).get(key)
    if entry is None and not create:
        return None
    if entry is not None and not isinstance(entry, dict):
        raise SettingsError(
            f'{path}: "projects.{key}" is not an object; fix it by hand (Clarity changed nothing)'
        )
    return dict(entry or {})


def _put_holder(data: JsonObject, scope: Scope, project: Path, holder: JsonObject) -> JsonObject:
    if scope != "local":
        return holder
    projects = dict(data.get("projects") or {})
    projects[local_project_key(project)] = holder
    return {**data, "projects": projects}


def _servers(holder: JsonObject, path: Path) -> JsonObject:
    servers = holder.get("mcpServers", {})
    if not isinstance(servers, dict):
        raise SettingsError(
            f'{path}: "mcpServers" is not an object; fix it by hand (Clarity changed nothing)'
        )
    return servers


def merge_mcp(
    data: JsonObject, scope: Scope, project: Path, entry: JsonObject, path: Path
) -> tuple[JsonObject, _Edit]:
    edit = _Edit()
    holder = _servers_holder(data, scope, project, path, create=True)
    assert holder is not None
    servers = _servers(holder, path)
    if servers.get(MCP_NAME) == entry:
        return data, edit
    (edit.updated if MCP_NAME in servers else edit.added).append(MCP_NAME)
    holder = {**holder, "mcpServers": {**servers, MCP_NAME: entry}}
    return _put_holder(data, scope, project, holder), edit


def remove_mcp(data: JsonObject, scope: Scope, project: Path, path: Path) -> tuple[JsonObject, _Edit]:
    edit = _Edit()
    holder = _servers_holder(data, scope, project, path, create=False)
    if holder is None or MCP_NAME not in _servers(holder, path):
        return data, edit
    edit.removed.append(MCP_NAME)
    servers = {k: v for k, v in _servers(holder, path).items() if k != MCP_NAME}
    if servers:
        holder = {**holder, "mcpServers": servers}
    else:
        holder = {k: v for k, v in holder.items() if k != "mcpServers"}
    if scope == "local" and not holder:
        # a project entry that only Clarity's server filled (Claude Code's own carry more keys)
        projects = {k: v for k, v in data["projects"].items() if k != local_project_key(project)}
        if projects:
            return {**data, "projects": projects}, edit
        return {k: v for k, v in data.items() if k != "projects"}, edit
    return _put_holder(data, scope, project, holder), edit


# ---------------------------------------------------------------------------------------------
# Files


def read_json(path: Path) -> JsonObject | None:
    """The parsed object in ``path``, None if it does not exist; SettingsError if it is not a
    JSON object (Clarity never overwrites a file it cannot read)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read {path}: {exc}") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            "fix or remove it (Clarity changed nothing)"
        ) from None
    if not isinstance(data, dict):
        raise SettingsError(f"{path} does not hold a JSON object; fix or remove it (Clarity changed nothing)")
    return data


def dump_json(data: JsonObject) -> str:
    """Claude Code's own layout (2-space indent, non-ASCII kept), plus a final newline."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def write_json_atomic(path: Path, data: JsonObject, *, private: bool = False) -> None:
    """Replace ``path`` in one step, so Claude Code never reads a half-written file.

    A symlinked settings file (dotfile managers) is written through, not replaced by a plain
    file; an existing file keeps its permission bits; ``private`` files (the state file, which
    can hold credentials) are created 0600 like Claude Code does."""
    target = Path(os.path.realpath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode: int | None = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o600 if private else None
    tmp = target.with_name(f".{target.name}.{os.getpid()}.clarity.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666 if mode is None else 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(dump_json(data))
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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


Transform = Callable[[JsonObject], tuple[JsonObject, _Edit]]


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
    hook_type: HookType = "http",
    project: Path | None = None,
    no_mcp: bool = False,
    base_url: str | None = None,
) -> InstallResult:
    """Add (or bring up to date) Clarity's hooks and MCP server in one scope.

    Running it twice with the same arguments leaves every file byte-identical."""
    scope = _check_scope(scope)
    if hook_type not in HOOK_TYPES:
        raise SettingsError(f"unknown hook type {hook_type!r} (use http or command)")
    project = _project(project or Path.cwd())
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
    project = _project(project or Path.cwd())
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
    project = _project(project or Path.cwd())
    spath, mpath = settings_path(scope, project), mcp_path(scope, project)
    status = ScopeStatus(scope, spath, {}, mpath, None)
    try:
        base = resolve_base_url(base_url)
        status.hooks = installed_hooks(read_json(spath) or {}, base)
        holder = _servers_holder(read_json(mpath) or {}, scope, project, mpath, create=False)
        entry = _servers(holder, mpath).get(MCP_NAME) if holder is not None else None
        status.mcp = entry if isinstance(entry, dict) else None
    except SettingsError as exc:
        status.error = str(exc)
    return status


def status(project: Path | None = None, base_url: str | None = None) -> IntegrationStatus:
    """Where Clarity is wired into Claude Code, per scope; never raises for a bad file (the
    error is reported in that scope instead), so a doctor command can show everything."""
    project = _project(project or Path.cwd())
    return IntegrationStatus(project, [scope_status(s, project, base_url) for s in SCOPES])


__all__ = [
    "ANALYZER",
    "EVENTS",
    "HOOK_TYPES",
    "SCOPES",
    "TIMEOUTS",
    "FileChange",
    "HookType",
    "InstallResult",
    "IntegrationStatus",
    "Scope",
    "ScopeStatus",
    "SettingsError",
    "config_dir",
    "install",
    "local_project_key",
    "mcp_path",
    "settings_path",
    "state_file",
    "status",
    "uninstall",
]
