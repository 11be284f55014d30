"""Claude Code's settings files: where each scope's files live, and reading and writing them safely.

These files belong to the user and to other tools as much as to Clarity, so a file Clarity
cannot parse is never overwritten (``SettingsError`` names it instead), and a write replaces the
file in one step in Claude Code's own layout, through a symlink and keeping its permission bits.
What Clarity changes inside them is ``claude_edits``; which entries it writes, ``claude_entries``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from clarity.atomic_file import write_atomically

Scope = Literal["user", "project", "local"]
SCOPES: tuple[Scope, ...] = ("user", "project", "local")

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
    return project_dir(project) / ".claude" / name


def mcp_path(scope: Scope, project: Path) -> Path:
    return project_dir(project) / ".mcp.json" if scope == "project" else state_file()


def local_project_key(project: Path) -> str:
    """The key Claude Code files a project under in ``projects`` of its state file.

    ``claude mcp add -s local`` run in a sub-directory (or a symlink) of a git repository
    registers the server under the repository's top level, resolved; outside git, under the
    directory itself. Clarity must use the same key or Claude Code will not see the entry."""
    path = project_dir(project)
    for candidate in (path, *path.parents):
        if (candidate / ".git").exists():
            return str(candidate)
    return str(path)


def project_dir(project: Path) -> Path:
    return Path(project).expanduser().resolve()


# ---------------------------------------------------------------------------------------------
# Reading and writing


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
    write_atomically(target, dump_json(data), mode=mode)
