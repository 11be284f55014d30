"""``clarity hooks ...``: install, remove and inspect Clarity's wiring into Claude Code.

A thin shell over :mod:`clarity.integrations.claude_code`; every failure ends in one line on
stderr and exit code 1, because a traceback here would be about a user's settings file, not
about a bug.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console

from clarity.cli.common import fail
from clarity.integrations.claude_code import (
    EVENTS,
    FileChange,
    InstallResult,
    IntegrationStatus,
    ScopeStatus,
    SettingsError,
    install,
    status,
    uninstall,
)

hooks_app = typer.Typer(
    help="Wire Clarity's hooks and MCP server into Claude Code's settings.",
    no_args_is_help=True,
    add_completion=False,
)
out = Console(highlight=False, soft_wrap=True)


class ScopeName(StrEnum):
    user = "user"
    project = "project"
    local = "local"


class HookTypeName(StrEnum):
    http = "http"
    command = "command"


ScopeOpt = Annotated[
    ScopeName,
    typer.Option(
        "--scope",
        help="user: ~/.claude (every project); project: .claude/settings.json + .mcp.json "
        "(shared with the repository); local: .claude/settings.local.json (this checkout only).",
    ),
]
ProjectOpt = Annotated[
    Path | None,
    typer.Option("--project", help="Project directory for project/local scope (default: current directory)."),
]
NoMcpOpt = Annotated[bool, typer.Option("--no-mcp", help="Leave the MCP server registration alone.")]
UrlOpt = Annotated[
    str | None,
    typer.Option("--url", help="Daemon base URL (default: $CLARITY_URL, else the configured host and port)."),
]


def _base_url(explicit: str | None) -> str:
    """The daemon URL to write into the hooks, found as every client command finds its daemon
    (``clarity.daemon_lookup.client_url``): ``--url``, else ``CLARITY_URL``, else the URL in the
    storage root's lock file while its daemon answers (one started on another port), else the
    host and port the daemon will use (config.json and ``CLARITY_SERVER__*`` included)."""
    if explicit:
        return explicit  # checked by the install itself (an http(s) URL naming a host)
    from clarity.config import ConfigError, load_settings
    from clarity.daemon_lookup import client_url

    try:
        return client_url(load_settings())
    except ConfigError as exc:
        fail(str(exc))


def _what(change: FileChange, items: list[str]) -> str:
    if change.kind == "mcp":
        return "MCP server 'clarity'"
    return f"{len(items)} hook{'s' if len(items) != 1 else ''}"


def _describe(change: FileChange, scope: str, action: str) -> str:
    label = f"{scope} {'settings' if change.kind == 'hooks' else 'MCP'} {change.path}"
    parts = [
        f"{verb} {_what(change, items)}"
        for verb, items in (("added", change.added), ("updated", change.updated), ("removed", change.removed))
        if items
    ]
    if parts:
        return f"{label}: [green]{', '.join(parts)}[/]"
    nothing = "already installed" if action == "install" else "not installed"
    return f"{label}: {nothing}, nothing changed"


def _report(result: InstallResult, project: Path | None) -> None:
    for change in result.files:
        out.print(_describe(change, result.scope, result.action))
    if result.action == "install" and result.changed:
        if result.hook_type == "http":
            out.print(
                f"hooks post to {result.base_url}/hooks/<event>; SessionStart runs command_client.py "
                "(Claude Code runs no http hooks for SessionStart). While the daemon is down, Claude "
                "Code shows every http hook as failed: `--type command` (the default) is silent"
            )
        if result.scope == "project" and any(f.kind == "mcp" and f.changed for f in result.files):
            out.print("Claude Code asks once before it starts servers from a project's .mcp.json")
        if any(f.kind == "mcp" and f.changed for f in result.files):
            out.print(
                f"MCP server 'clarity' is the daemon at {result.base_url}/mcp: Claude Code connects "
                "when a session starts, so keep it running (`clarity service install`)"
            )
    if result.action == "install":
        _print_notes(status(project=project, base_url=result.base_url))


def _change(
    action: Literal["install", "uninstall"],
    scope: ScopeName,
    no_mcp: bool,
    project: Path | None,
    url: str | None,
    hook_type: HookTypeName = HookTypeName.command,
) -> None:
    """Install or uninstall against the daemon URL to write, then report each file it touched."""
    base_url = _base_url(url)
    try:
        if action == "install":
            result = install(scope.value, hook_type.value, project=project, no_mcp=no_mcp, base_url=base_url)
        else:
            result = uninstall(scope.value, project=project, no_mcp=no_mcp, base_url=base_url)
    except SettingsError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"could not {action}: {exc}")
    _report(result, project)


@hooks_app.command("install")
def install_cmd(
    scope: ScopeOpt = ScopeName.user,
    hook_type: Annotated[
        HookTypeName,
        typer.Option(
            "--type",
            help="command: run command_client.py for every event, silent when the daemon is down; "
            "http: Claude Code posts to the daemon (no process per event, but Claude Code shows each "
            "failed post while the daemon is down).",
        ),
    ] = HookTypeName.command,
    no_mcp: NoMcpOpt = False,
    project: ProjectOpt = None,
    url: UrlOpt = None,
) -> None:
    """Add Clarity's hooks (and MCP server) to Claude Code's settings; safe to run again."""
    _change("install", scope, no_mcp, project, url, hook_type)


@hooks_app.command("uninstall")
def uninstall_cmd(
    scope: ScopeOpt = ScopeName.user,
    no_mcp: NoMcpOpt = False,
    project: ProjectOpt = None,
    url: UrlOpt = None,
) -> None:
    """Remove Clarity's hooks (and MCP server) and nothing else."""
    _change("uninstall", scope, no_mcp, project, url)


def _hooks_summary(scope: ScopeStatus) -> str:
    if not scope.hooks:
        return "-"
    kinds: dict[str, int] = {}
    for kind in scope.hooks.values():
        kinds[kind] = kinds.get(kind, 0) + 1
    text = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
    missing = [e for e in EVENTS if e not in scope.hooks]
    return (
        f"{text} (missing: {', '.join(missing)})" if missing else f"{len(scope.hooks)}/{len(EVENTS)}: {text}"
    )


def _print_notes(report: IntegrationStatus) -> None:
    """Warn about combinations across scopes that Claude Code handles badly."""
    with_hooks = [s for s in report.scopes if s.hooks]
    if len({json.dumps(s.hooks, sort_keys=True) for s in with_hooks}) > 1:
        # Claude Code runs identical hooks once (checked with 2.1.330), different ones each.
        out.print(
            f"[yellow]note:[/] the {' and '.join(s.scope for s in with_hooks)} scopes hold different "
            "Clarity hooks; Claude Code runs all of them, so some events reach the daemon twice"
        )
    with_mcp = [s for s in report.scopes if s.mcp is not None]
    if len({json.dumps(s.mcp, sort_keys=True) for s in with_mcp}) > 1:
        out.print(
            f"[yellow]note:[/] MCP server 'clarity' is registered in {' and '.join(s.scope for s in with_mcp)} "
            "scope with different settings; Claude Code uses the most specific one (local, project, user) "
            "and reports conflicting scopes, so keep one (`clarity hooks uninstall --scope ...`)"
        )


def _print_status(report: IntegrationStatus) -> None:
    out.print(f"Clarity in Claude Code, project {report.project}")
    for scope in report.scopes:
        if scope.error:
            out.print(f"  {scope.scope:<8} [red]{scope.error}[/]")
        else:
            mcp = "-" if scope.mcp is None else f"clarity ({scope.mcp.get('type', 'stdio')})"
            if scope.mcp_outdated:
                mcp += " [yellow]the stdio shim delays every session start: `clarity hooks install` replaces it[/]"
            out.print(f"  {scope.scope:<8} hooks {_hooks_summary(scope)}   MCP {mcp}")
        out.print(f"  {'':<8} [dim]{scope.settings_path}  {scope.mcp_path}[/]")
    _print_notes(report)
    if not report.installed and not any(s.error for s in report.scopes):
        out.print("not installed: run `clarity hooks install`")


@hooks_app.command("status")
def status_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    project: ProjectOpt = None,
    url: UrlOpt = None,
) -> None:
    """Which Clarity hooks and MCP registrations each scope holds, and where."""
    try:
        report = status(project=project, base_url=_base_url(url))
    except (SettingsError, OSError) as exc:
        fail(str(exc))
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
    else:
        _print_status(report)
    if any(s.error for s in report.scopes):
        raise typer.Exit(1)


__all__ = ["hooks_app"]
