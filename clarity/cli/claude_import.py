"""`clarity import --from claude-code` as the user sees it, and the `doctor` line that suggests it.

The files and how they are read are ``clarity.integrations.claude_memory``; this module prints
what was found (file, scope, how many memories), stores through the callable the import command
hands it (the daemon's bulk store), and records the import so `doctor` stops suggesting it.
Kept apart from ``data.py`` so `doctor` can use it without loading the other data commands.

Importing a file again replaces what an earlier import of it left: a memory that import made
(source ``import``, made from Claude Code, ``metadata.path`` naming the file, in the file's
scope) whose text is no longer in the file is removed, and the output says how many (a dry run
says how many would be). Nothing else is ever removed: not a memory stored by hand, by a hook or
by another import, nor one from a file that could not be read this time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clarity.cli.common import call, daemon_client, err, out
from clarity.config import SettingsModel
from clarity.models import MemoryCreate

if TYPE_CHECKING:
    from clarity.cli.checks import Check
    from clarity.integrations.claude_memory import MemoryFile
    from clarity.lifecycle.importers import Parsed
    from clarity.models import Memory

FIX = "clarity import --from claude-code   (add --dry-run to see what it would store)"
GONE = "no longer in the file"


def run_import(
    settings: SettingsModel,
    project: Path,
    dry_run: bool,
    store: Callable[[list[MemoryCreate]], Sequence[Any]],
    connect: Callable[[], Any],
) -> None:
    """Find, read, list, and (unless a dry run) store and record Claude Code's memory files,
    removing what earlier imports of them left that the files no longer hold. ``connect``: the
    daemon's client, starting the daemon if none runs."""
    from clarity.daemon_lookup import is_healthy
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
        client = daemon_client(settings) if is_healthy(settings) else None
        stale = _stale(client, plan) if client is not None else {}
        for file, parsed in plan:
            gone = len(stale.get(file.path, []))
            tail = f"{gone} earlier {GONE} would be removed" if gone else ""
            _line(len(parsed.requests), file.scope, file.kind, file.path, tail)
        removed = sum(len(memories) for memories in stale.values())
        also = f", {removed} earlier {_memories(removed)} {GONE} removed" if removed else ""
        out.print(
            f"dry run: {total} memories from {len(files)} files would be imported{also}; nothing stored"
        )
        if client is None:
            out.print(
                "(no daemon answers: what earlier imports left that the files no longer hold was not checked)"
            )
        return
    results = list(store([request for _, parsed in plan for request in parsed.requests])) if total else []
    client = connect()
    stale = _stale(client, plan)
    for memories in stale.values():
        for memory in memories:
            call(client.delete, memory.id)
    new = 0
    at = 0
    for file, parsed in plan:
        mine = results[at : at + len(parsed.requests)]
        at += len(parsed.requests)
        created = sum(getattr(r, "status", "") == "created" for r in mine)
        new += created
        gone = len(stale.get(file.path, []))
        _line(
            len(mine),
            file.scope,
            file.kind,
            file.path,
            f"{created} new" + (f", {gone} removed" if gone else ""),
        )
    record_import(settings, [file for file, parsed in plan if _read_whole(parsed)])
    removed = sum(len(memories) for memories in stale.values())
    also = f"; {removed} earlier {_memories(removed)} {GONE} removed" if removed else ""
    out.print(
        f"imported {total} memories from {len(files)} files: {new} new, {total - new} already known{also}"
    )


def _memories(count: int) -> str:
    return "memory" if count == 1 else "memories"


def _read_whole(parsed: Parsed) -> bool:
    """The file was read (not skipped whole): what it holds now is known."""
    return bool(parsed.requests or not parsed.skipped)


def _stale(client: Any, plan: list[tuple[MemoryFile, Parsed]]) -> dict[Path, list[Memory]]:
    """By file: what earlier imports of it made whose text it no longer holds (compared as the
    daemon dedups: the hash of the redacted text)."""
    from clarity.models import content_hash
    from clarity.redact import redact

    read = [(file, parsed) for file, parsed in plan if _read_whole(parsed)]
    earlier = _earlier(client, {file.scope for file, _ in read})
    stale: dict[Path, list[Memory]] = {}
    for file, parsed in read:
        now = {content_hash(redact(request.content)) for request in parsed.requests}
        gone = [m for m in earlier.get((file.scope, str(file.path)), []) if m.content_hash not in now]
        if gone:
            stale[file.path] = gone
    return stale


def _earlier(client: Any, scopes: set[str]) -> dict[tuple[str, str], list[Memory]]:
    """What imports from Claude Code left in ``scopes``, by (scope, file)."""
    from clarity.models import MAX_PAGE
    from clarity.requests import ListRequest

    found: dict[tuple[str, str], list[Memory]] = {}
    for scope in sorted(scopes):
        offset = 0
        while True:
            request = ListRequest(
                scope=scope, sources=["import"], limit=MAX_PAGE, offset=offset, sort="oldest"
            )
            page = call(client.list, request)
            for memory in page.memories:
                path = memory.metadata.get("path")
                if memory.metadata.get("imported_from") == "claude-code" and isinstance(path, str):
                    found.setdefault((memory.scope, path), []).append(memory)
            offset += len(page.memories)
            if not page.memories or offset >= page.total:
                break
    return found


def _line(count: int, scope: str, kind: str, path: Path, extra: str = "") -> None:
    tail = f"  ({extra})" if extra else ""
    out.print(f"  {count:>4}  {scope:<26} {kind:<20} {path}{tail}", soft_wrap=True, highlight=False)


def check_claude_memory(settings: SettingsModel, project: Path) -> list[Check]:
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
