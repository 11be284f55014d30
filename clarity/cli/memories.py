"""One memory at a time, through the daemon's REST API: ``clarity store``, ``search``, ``list``,
``delete`` and ``stats``.

``store`` takes its text as an argument, from stdin (``-``) or from a file (``--file``), and the
files it is about with ``--anchor`` (``src/cart.ts:12-30``, as the shell sees it from here or
relative to the project); ``search`` shows what each result's anchors say now ("may be out of
date: ..."); ``delete`` takes an id or the first 8+ characters of one, as ``list`` shows them; a
``--scope`` word that is neither a keyword nor an existing scope is refused
(``common.check_scope``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from clarity.cli.common import (
    READ_SCOPES,
    STORE_SCOPES,
    AsJson,
    DaemonUrl,
    call,
    check_scope,
    daemon_client,
    err,
    fail,
    from_flags,
    out,
)

if TYPE_CHECKING:
    from rich.table import Table

memory_app = typer.Typer()


def _decoded(data: bytes, source: str, limit: int) -> str:
    """Text read from stdin or a file: UTF-8, no NUL bytes, at most ``limit`` characters."""
    if b"\x00" in data:
        fail(f"{source}: looks binary (it holds NUL bytes); a memory is text", 2)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        fail(f"{source}: is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})", 2)
    if not text.strip():
        fail(f"{source}: holds no text", 2)
    if len(text.strip()) > limit:
        fail(f"{source}: {len(text.strip())} characters, over the limit of {limit} for one memory", 2)
    return text


def _content(text: str | None, file: Path | None) -> str:
    """The text to store: the argument, stdin for ``-``, or the file ``--file`` names."""
    from clarity.models import MAX_CONTENT_CHARS

    most_bytes = 4 * MAX_CONTENT_CHARS  # UTF-8 takes at most 4 bytes a character
    if (text is None) == (file is None):
        fail("give the TEXT to remember, `-` to read it from stdin, or --file PATH (one of them)", 2)
    if file is not None:
        try:
            if not file.is_file():
                fail(f"--file: {file} is not a regular file", 2)
            if file.stat().st_size > most_bytes:
                fail(f"--file: {file} is over the limit of {MAX_CONTENT_CHARS} characters for one memory", 2)
            data = file.read_bytes()
        except OSError as exc:
            fail(f"--file: {file}: {exc.strerror or exc}", 2)
        return _decoded(data, f"--file {file}", MAX_CONTENT_CHARS)
    if text == "-":
        data = sys.stdin.buffer.read(most_bytes + 1)
        if len(data) > most_bytes:
            fail(f"stdin: over the limit of {MAX_CONTENT_CHARS} characters for one memory", 2)
        return _decoded(data, "stdin", MAX_CONTENT_CHARS)
    return str(text)


def _checkout_root(start: Path) -> Path | None:
    """The nearest directory at or above ``start`` that holds ``.git`` (a directory, or the file
    of a worktree or submodule): the project root the daemon resolves, found without running git."""
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return directory
    return None


def _anchor_spec(spec: str) -> str:
    """``--anchor`` as typed. A path that exists from the current directory is made relative to
    the project root, so ``--anchor cart.ts`` works from ``src/``; anything else (a path from the
    root, an absolute one) goes as it is, and the daemon says if it cannot be anchored."""
    path, colon, lines = spec.rpartition(":")
    if not (colon and lines[:1].isdigit()):
        path, lines = spec, ""
    here = Path.cwd()
    if not path or os.path.isabs(path) or not (here / path).exists():
        return spec
    root = _checkout_root(here)
    if root is None:  # outside git the project is this directory itself
        return spec
    try:
        relative = Path(os.path.normpath(here / path)).relative_to(root).as_posix()
    except ValueError:  # ../ out of the checkout: the daemon refuses it by name
        return spec
    return relative + (f":{lines}" if lines else "")


@memory_app.command()
def store(
    content: Annotated[
        str | None,
        typer.Argument(metavar="TEXT", help="What to remember; `-` reads it from stdin.", show_default=False),
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="Read what to remember from this UTF-8 text file.")
    ] = None,
    memory_type: Annotated[
        str, typer.Option("--type", help="fact, preference, decision, command, ...")
    ] = "fact",
    tags: Annotated[list[str] | None, typer.Option("--tag", help="A tag; repeat for several.")] = None,
    importance: Annotated[float, typer.Option(help="0..1")] = 0.5,
    scope: Annotated[str, typer.Option(help="project, global, or an existing scope")] = "project",
    anchors: Annotated[
        list[str] | None,
        typer.Option(
            "--anchor",
            help="A file it is about, optionally with lines (src/cart.ts:12-30); repeat for several.",
        ),
    ] = None,
    as_json: AsJson = False,
    url: DaemonUrl = None,
) -> None:
    """Store a memory for the project in the current directory (or globally)."""
    from clarity.describe import anchored_to
    from clarity.models import MemoryCreate

    text = _content(content, file)
    client = daemon_client()
    check_scope(client, scope, STORE_SCOPES)
    request = from_flags(
        MemoryCreate,
        content=text,
        memory_type=memory_type,
        tags=tags or [],
        importance=importance,
        scope=scope,
        anchors=[_anchor_spec(spec) for spec in anchors or []],
    )
    result = call(client.store, request)
    if as_json:
        out.print_json(result.model_dump_json())
    else:
        anchored = f" ({anchored_to(result.memory.anchors)})" if result.memory.anchors else ""
        out.print(f"{result.status}: {result.id}{anchored}", highlight=False)


def _note_unreadable(count: int) -> None:
    if count:
        err.print(
            f"[yellow]{count} stored memories could not be read and were left out[/] "
            "(the daemon log names each one and its bad field)",
            soft_wrap=True,
            highlight=False,
        )


def _memory_table(rows: list[tuple[Any, float | None, str]]) -> Table:
    """One row a memory; under its text, in yellow, what its anchors say now and whether a newer
    memory replaced it. The text is shown as it is, never read as console markup."""
    from rich.table import Table
    from rich.text import Text

    table = Table(show_lines=False)
    for column in ("id", "type", "scope", "score", "content"):
        table.add_column(column, overflow="fold")
    for memory, score, note in rows:
        remarks = [note] if note else []
        if memory.superseded_by:
            remarks.append(f"superseded by {memory.superseded_by[:8]}")
        content = Text(memory.content[:200])
        for remark in remarks:
            content.append(f"\n{remark}", style="yellow")
        table.add_row(
            memory.id[:8],
            memory.memory_type.value,
            memory.scope,
            "" if score is None else f"{score:.3f}",
            content,
        )
    return table


IncludeSuperseded = Annotated[
    bool,
    typer.Option("--include-superseded", help="Also memories a newer one replaced (kept as history)."),
]


@memory_app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    limit: Annotated[int, typer.Option(help="How many results.")] = 5,
    scope: Annotated[
        str, typer.Option(help="default (project + global), project, global, all, or an existing scope")
    ] = "default",
    mode: Annotated[str, typer.Option(help="hybrid, dense or lexical")] = "hybrid",
    include_superseded: IncludeSuperseded = False,
    as_json: AsJson = False,
    url: DaemonUrl = None,
) -> None:
    """Search memories by meaning and exact words; says when a result's code changed or is gone."""
    from clarity.relevance import identifiers, is_relevant
    from clarity.requests import RetrieveRequest

    client = daemon_client()
    settings = client.settings
    check_scope(client, scope, READ_SCOPES)
    request = from_flags(
        RetrieveRequest,
        query=query,
        limit=limit,
        scope=scope,
        mode=mode,
        include_superseded=include_superseded,
    )
    result = call(client.retrieve, request)
    if as_json:
        out.print_json(result.model_dump_json())
        return
    out.print(
        _memory_table([(r.memory, r.score, r.anchors.note if r.anchors else "") for r in result.results])
    )
    # The rule the hooks and retrieve_memory judge by (clarity.relevance): say when nothing fits.
    names, cut = identifiers(query), settings.hooks.min_similarity
    if result.results and not any(
        is_relevant(r.similarity, r.memory.content, names, cut) for r in result.results
    ):
        closest = max(r.similarity or 0.0 for r in result.results)
        out.print(f"Nothing relevant: the closest match has similarity {closest:.2f}, below {cut:.2f}.")
    _note_unreadable(result.unreadable)


@memory_app.command("list")
def list_(
    limit: Annotated[int, typer.Option(help="Page size.")] = 20,
    offset: Annotated[int, typer.Option(help="Skip this many.")] = 0,
    scope: Annotated[
        str, typer.Option(help="default, project, global, all, or an existing scope")
    ] = "default",
    include_superseded: IncludeSuperseded = False,
    as_json: AsJson = False,
    url: DaemonUrl = None,
) -> None:
    """List memories, newest first."""
    from clarity.requests import ListRequest

    client = daemon_client()
    check_scope(client, scope, READ_SCOPES)
    request = from_flags(
        ListRequest, limit=limit, offset=offset, scope=scope, include_superseded=include_superseded
    )
    result = call(client.list, request)
    if as_json:
        out.print_json(result.model_dump_json())
    else:
        out.print(_memory_table([(m, None, "") for m in result.memories]))
        out.print(f"{len(result.memories)} of {result.total}")
        _note_unreadable(result.unreadable)


@memory_app.command()
def delete(
    memory_id: Annotated[
        str, typer.Argument(metavar="ID", help="The memory's id, or its first 8+ characters as `list` shows.")
    ],
    url: DaemonUrl = None,
) -> None:
    """Delete one memory by id (or a unique prefix of it)."""
    result = call(daemon_client().delete, memory_id)
    out.print(f"deleted: {result.id}")


@memory_app.command()
def stats(as_json: AsJson = False, url: DaemonUrl = None) -> None:
    """Counts by type and project, engine and model state."""
    result = call(daemon_client().stats)
    if as_json:
        out.print_json(result.model_dump_json())
        return
    out.print(
        f"{result.total} memories; engine {result.engine} at {result.location}; model ready: {result.model_ready}"
    )
    _note_unreadable(result.unreadable)
    from rich.table import Table

    for title, counts in (("type", result.by_type), ("scope", result.by_scope)):
        table = Table(title=f"by {title}")
        table.add_column(title)
        table.add_column("count", justify="right")
        for key, value in counts.items():
            table.add_row(key, str(value))
        out.print(table)
