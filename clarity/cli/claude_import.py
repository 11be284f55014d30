"""`clarity import --from claude-code` as the user sees it, and the `doctor` line that suggests it.

The files and how they are read are ``clarity.integrations.claude_memory``; this module prints
what was found (file, scope, how many memories), stores through the callable the import command
hands it (the daemon's bulk store), and records the import so `doctor` stops suggesting it.
Kept apart from ``data.py`` so `doctor` can use it without loading the other data commands.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clarity.cli.common import err, out
from clarity.config import Settings
from clarity.models import MemoryCreate

if TYPE_CHECKING:
    from clarity.cli.checks import Check

FIX = "clarity import --from claude-code   (add --dry-run to see what it would store)"


def run_import(
    settings: Settings,
    project: Path,
    dry_run: bool,
    store: Callable[[list[MemoryCreate]], Sequence[Any]],
) -> None:
    """Find, read, list, and (unless a dry run) store and record Claude Code's memory files."""
    from clarity.integrations.claude_memory import find_files, read_file, record_import

    files = find_files(project)
    if not files:
        out.print(
            f"no Claude Code memory found for {project}: no CLAUDE.md, CLAUDE.local.md or AGENTS.md "
            "there or in your Claude Code directory, and no auto memory",
            soft_wrap=True,
            highlight=False,
        )
        return
    plan = [(file, read_file(file)) for file in files]
    for _, parsed in plan:
        for reason in parsed.skipped:
            err.print(f"[yellow]skipped[/] {reason}", soft_wrap=True, highlight=False)
    total = sum(len(parsed.requests) for _, parsed in plan)
    if dry_run:
        for file, parsed in plan:
            _line(len(parsed.requests), file.scope, file.kind, file.path)
        out.print(f"dry run: {total} memories from {len(files)} files would be imported; nothing stored")
        return
    results = list(store([request for _, parsed in plan for request in parsed.requests])) if total else []
    new = 0
    at = 0
    for file, parsed in plan:
        mine = results[at : at + len(parsed.requests)]
        at += len(parsed.requests)
        created = sum(getattr(r, "status", "") == "created" for r in mine)
        new += created
        _line(len(mine), file.scope, file.kind, file.path, f"{created} new")
    record_import(settings, [file for file, parsed in plan if parsed.requests or not parsed.skipped])
    out.print(f"imported {total} memories from {len(files)} files: {new} new, {total - new} already known")


def _line(count: int, scope: str, kind: str, path: Path, extra: str = "") -> None:
    tail = f"  ({extra})" if extra else ""
    out.print(f"  {count:>4}  {scope:<26} {kind:<20} {path}{tail}", soft_wrap=True, highlight=False)


def check_claude_memory(settings: Settings, project: Path) -> list[Check]:
    """A `doctor` line when Claude Code memory files exist that were not imported (or changed
    since); none when there are no such files."""
    from clarity.cli.checks import Check
    from clarity.integrations.claude_memory import not_imported

    try:
        files, pending = not_imported(settings, project.expanduser().resolve())
    except OSError as exc:
        return [Check("claude code memory", "warn", f"could not look for Claude Code memory: {exc}")]
    if not files:
        return []
    if not pending:
        return [Check("claude code memory", "ok", f"{len(files)} Claude Code memory files, all imported")]
    shown = ", ".join(f"{f.path} ({f.kind})" for f in pending[:3])
    more = f" and {len(pending) - 3} more" if len(pending) > 3 else ""
    return [
        Check(
            "claude code memory",
            "warn",
            f"{len(pending)} Claude Code memory files not imported yet: {shown}{more}",
            FIX,
        )
    ]
