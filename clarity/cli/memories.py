"""One memory at a time, through the daemon's REST API: ``clarity store``, ``search``, ``list``,
``delete`` and ``stats``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from clarity.cli.common import AsJson, call, cli_settings, daemon_client, err, from_flags, out

memory_app = typer.Typer()


@memory_app.command()
def store(
    content: Annotated[str, typer.Argument(help="What to remember.")],
    memory_type: Annotated[
        str, typer.Option("--type", help="fact, preference, decision, command, ...")
    ] = "fact",
    tags: Annotated[list[str] | None, typer.Option("--tag", help="A tag; repeat for several.")] = None,
    importance: Annotated[float, typer.Option(help="0..1")] = 0.5,
    scope: Annotated[str, typer.Option(help="project or global")] = "project",
    as_json: AsJson = False,
) -> None:
    """Store a memory for the project in the current directory (or globally)."""
    from clarity.models import MemoryCreate

    request = from_flags(
        MemoryCreate,
        content=content,
        memory_type=memory_type,
        tags=tags or [],
        importance=importance,
        scope=scope,
    )
    result = call(daemon_client(cli_settings()).store, request)
    if as_json:
        out.print_json(result.model_dump_json())
    else:
        out.print(f"{result.status}: {result.id}")


def _note_unreadable(count: int) -> None:
    if count:
        err.print(
            f"[yellow]{count} stored memories could not be read and were left out[/] "
            "(the daemon log names each one and its bad field)",
            soft_wrap=True,
            highlight=False,
        )


def _memory_table(rows: list[tuple[Any, float | None]]) -> Table:
    table = Table(show_lines=False)
    for column in ("id", "type", "scope", "score", "content"):
        table.add_column(column, overflow="fold")
    for memory, score in rows:
        table.add_row(
            memory.id[:8],
            memory.memory_type.value,
            memory.scope,
            "" if score is None else f"{score:.3f}",
            memory.content[:200],
        )
    return table


@memory_app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    limit: Annotated[int, typer.Option(help="How many results.")] = 5,
    scope: Annotated[
        str, typer.Option(help="default (project + global), project, global or all")
    ] = "default",
    mode: Annotated[str, typer.Option(help="hybrid, dense or lexical")] = "hybrid",
    as_json: AsJson = False,
) -> None:
    """Search memories by meaning and exact words."""
    from clarity.requests import RetrieveRequest

    request = from_flags(RetrieveRequest, query=query, limit=limit, scope=scope, mode=mode)
    result = call(daemon_client(cli_settings()).retrieve, request)
    if as_json:
        out.print_json(result.model_dump_json())
    else:
        out.print(_memory_table([(r.memory, r.score) for r in result.results]))
        _note_unreadable(result.unreadable)


@memory_app.command("list")
def list_(
    limit: Annotated[int, typer.Option(help="Page size.")] = 20,
    offset: Annotated[int, typer.Option(help="Skip this many.")] = 0,
    scope: Annotated[str, typer.Option(help="default, project, global or all")] = "default",
    as_json: AsJson = False,
) -> None:
    """List memories, newest first."""
    from clarity.requests import ListRequest

    request = from_flags(ListRequest, limit=limit, offset=offset, scope=scope)
    result = call(daemon_client(cli_settings()).list, request)
    if as_json:
        out.print_json(result.model_dump_json())
    else:
        out.print(_memory_table([(m, None) for m in result.memories]))
        out.print(f"{len(result.memories)} of {result.total}")
        _note_unreadable(result.unreadable)


@memory_app.command()
def delete(memory_id: Annotated[str, typer.Argument(help="The memory's id.")]) -> None:
    """Delete one memory by id."""
    result = call(daemon_client(cli_settings()).delete, memory_id)
    out.print(f"deleted: {result.id}")


@memory_app.command()
def stats(as_json: AsJson = False) -> None:
    """Counts by type and project, engine and model state."""
    result = call(daemon_client(cli_settings()).stats)
    if as_json:
        out.print_json(result.model_dump_json())
        return
    out.print(
        f"{result.total} memories; engine {result.engine} at {result.location}; model ready: {result.model_ready}"
    )
    _note_unreadable(result.unreadable)
    for title, counts in (("type", result.by_type), ("scope", result.by_scope)):
        table = Table(title=f"by {title}")
        table.add_column(title)
        table.add_column("count", justify="right")
        for key, value in counts.items():
            table.add_row(key, str(value))
        out.print(table)
