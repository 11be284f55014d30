"""The edits Clarity makes inside Claude Code's settings: pure functions from parsed JSON to parsed JSON.

Each adds, replaces or removes Clarity's own entries only (``claude_entries`` says which those
are): every other key, hook and server stays as it was, in the same order, and the input is
never mutated. Each returns what it did as an ``Edit`` (event names, or ``clarity`` for the MCP
server), which ``claude_code`` reports per file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clarity.hooks.command_client import EVENTS  # the stdlib list: no pydantic models on the CLI path
from clarity.integrations.claude_entries import MCP_NAME, HookType, clarity_hook_type, hook_group
from clarity.integrations.claude_files import JsonObject, Scope, SettingsError, local_project_key


@dataclass
class Edit:
    """What one edit did: the hook events (or ``clarity``, the MCP server) it added, replaced, removed."""

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
) -> tuple[JsonObject, Edit]:
    """``settings`` with exactly one Clarity hook group per event.

    An existing Clarity entry is replaced where it stood, so a second install with the same
    arguments yields the same data, and an upgrade does not reorder anyone's hooks."""
    edit = Edit()
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


def remove_hooks(settings: JsonObject, base_url: str | None, path: Path) -> tuple[JsonObject, Edit]:
    """``settings`` without Clarity's hooks; event lists (and ``hooks`` itself) that only
    Clarity filled are dropped, everything else is left as it was."""
    edit = Edit()
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


def mcp_holder(data: JsonObject, scope: Scope, project: Path, path: Path, create: bool) -> JsonObject | None:
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


def mcp_servers(holder: JsonObject, path: Path) -> JsonObject:
    servers = holder.get("mcpServers", {})
    if not isinstance(servers, dict):
        raise SettingsError(
            f'{path}: "mcpServers" is not an object; fix it by hand (Clarity changed nothing)'
        )
    return servers


def merge_mcp(
    data: JsonObject, scope: Scope, project: Path, entry: JsonObject, path: Path
) -> tuple[JsonObject, Edit]:
    edit = Edit()
    holder = mcp_holder(data, scope, project, path, create=True)
    assert holder is not None
    servers = mcp_servers(holder, path)
    if servers.get(MCP_NAME) == entry:
        return data, edit
    (edit.updated if MCP_NAME in servers else edit.added).append(MCP_NAME)
    holder = {**holder, "mcpServers": {**servers, MCP_NAME: entry}}
    return _put_holder(data, scope, project, holder), edit


def remove_mcp(data: JsonObject, scope: Scope, project: Path, path: Path) -> tuple[JsonObject, Edit]:
    edit = Edit()
    holder = mcp_holder(data, scope, project, path, create=False)
    if holder is None or MCP_NAME not in mcp_servers(holder, path):
        return data, edit
    edit.removed.append(MCP_NAME)
    servers = {k: v for k, v in mcp_servers(holder, path).items() if k != MCP_NAME}
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
