"""Data lifecycle commands: export, import, forget, backup, restore, migrate.

export, import, forget and backup talk to the daemon (starting one if none answers), so they
work while Claude Code sessions keep using the memory. restore and migrate replace or read the
storage wholesale, so they need the daemon stopped and take the storage lock themselves.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from clarity.cli.common import (
    READ_SCOPES,
    STORE_SCOPES,
    DaemonUrl,
    call,
    check_scope,
    cli_settings,
    client_settings,
    daemon_client,
    err,
    fail,
    from_flags,
    out,
)

if TYPE_CHECKING:  # imported where used: `clarity forget` and `import` start 40 ms sooner without them
    from rich.progress import Progress

    from clarity.config import Settings, SettingsModel
    from clarity.exchange import ExportPage, ExportPageRequest
    from clarity.models import MemoryCreate, MemoryRecord

Scope = Annotated[str, typer.Option(help="project, global, all, or a scope id.")]

data_app = typer.Typer()


def _progress() -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


def _daemon(settings: SettingsModel) -> Any:
    """The client of the daemon, started first if none answers (with the settings loaded in full,
    as `clarity serve` will read them)."""
    from clarity.daemon_lookup import is_healthy

    if not is_healthy(settings):
        from clarity.daemon import DaemonError, ensure_daemon

        try:
            ensure_daemon(cli_settings())
        except DaemonError as exc:
            fail(str(exc))
    return daemon_client(settings)


def _batches(items: list[Any], size_of: Any, max_bytes: int, max_items: int = 500) -> Iterator[list[int]]:
    """Index ranges whose JSON stays under the daemon's request limit (with room for the envelope)."""
    budget = int(max_bytes * 0.8)
    batch: list[int] = []
    used = 0
    for i, item in enumerate(items):
        size = size_of(item)
        if batch and (used + size > budget or len(batch) >= max_items):
            yield batch
            batch, used = [], 0
        batch.append(i)
        used += size
    if batch:
        yield batch


@data_app.command()
def export(
    file: Annotated[Path, typer.Argument(help="Where to write the JSON Lines export.")],
    scope: Scope = "all",
    vectors: Annotated[
        bool, typer.Option(help="Include dense vectors (reused on import by the same model).")
    ] = True,
    url: DaemonUrl = None,
) -> None:
    """Write every memory (content, payload and vectors) to a portable JSON Lines file."""
    from clarity.exchange import ExportPageRequest
    from clarity.lifecycle.transfer import iter_export, write_export

    client = _daemon(client_settings())
    check_scope(client, scope, READ_SCOPES)
    request = from_flags(ExportPageRequest, scope=scope, limit=500, with_vectors=vectors)
    unreadable: list[str] = []

    def fetch(page: ExportPageRequest) -> ExportPage:
        result: ExportPage = call(client.export_page, page)
        for line in result.unreadable:
            err.print(f"[yellow]left out[/] unreadable memory {line}", soft_wrap=True, highlight=False)
        unreadable.extend(result.unreadable)
        return result

    pages = iter_export(fetch, request)
    first: ExportPage = next(pages)  # its total sizes the progress bar
    partial = file.with_name(file.name + ".partial")
    with _progress() as progress, open(partial, "w", encoding="utf-8") as handle:
        task = progress.add_task("exporting", total=first.total)
        count = write_export(handle, itertools.chain([first], pages), lambda n: progress.advance(task, n))
    partial.replace(file)
    out.print(f"exported {count} memories to {file} (model {first.model}, {first.dimension}-d vectors)")
    if unreadable:
        err.print(
            f"[yellow]{len(unreadable)} stored memories could not be read and were left out[/] (listed "
            "above; the daemon log names them too); `clarity backup` keeps the engine's files as they are",
            soft_wrap=True,
            highlight=False,
        )


@data_app.command("import")
def import_(
    path: Annotated[
        Path | None,
        typer.Argument(help="A Clarity export, a memory server memory.json, or Markdown notes."),
    ] = None,
    file_format: Annotated[
        str, typer.Option("--format", help="auto, clarity, memory-json or markdown.")
    ] = "auto",
    scope: Annotated[str, typer.Option(help="Scope for memory.json and Markdown imports.")] = "project",
    split: Annotated[str, typer.Option(help="Markdown: one memory per 'note' or per 'heading'.")] = "note",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Read and check, store nothing.")] = False,
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="claude-code: CLAUDE.md (user and project), CLAUDE.local.md, AGENTS.md and Claude "
            "Code's auto memory, each into its scope.",
        ),
    ] = None,
    project: Annotated[
        Path | None, typer.Option(help="--from claude-code: the project (default: the current directory's).")
    ] = None,
    url: DaemonUrl = None,
) -> None:
    """Import memories; re-importing the same file changes nothing (idempotent)."""
    from clarity.lifecycle.importers import check_source, detect_format, read_markdown, read_memory_json
    from clarity.lifecycle.transfer import TransferError, read_export

    if source is not None or project is not None:
        _import_from(source, path, project, dry_run)
        return
    if path is None:
        fail("PATH: missing; give a file or directory to import, or --from claude-code", 2)
    if not path.exists():
        fail(f"{path}: no such file or directory")
    if file_format not in ("auto", "clarity", "memory-json", "markdown"):
        fail(f"--format: {file_format!r} is not one of auto, clarity, memory-json, markdown", 2)
    if split not in ("note", "heading"):
        fail(f"--split: {split!r} is not one of note, heading", 2)
    settings = client_settings()
    try:
        check_source(path)
        kind = detect_format(path) if file_format == "auto" else file_format
        if kind == "clarity":
            header, records, vectors = read_export(path)
            _import_export(settings, records, vectors, header.model, dry_run)
            return
        parsed = (
            read_memory_json(path, scope) if kind == "memory-json" else read_markdown(path, scope, split)  # type: ignore[arg-type]
        )
    except TransferError as exc:
        fail(str(exc), 2)
    for reason in parsed.skipped:
        err.print(f"[yellow]skipped[/] {reason}", soft_wrap=True, highlight=False)
    if dry_run:
        out.print(
            f"dry run: {len(parsed.requests)} memories would be imported from {path} ({kind}); "
            f"{len(parsed.skipped)} skipped"
        )
        return
    check_scope(_daemon(settings), scope, STORE_SCOPES)  # a typo must not make a scope of its own
    _store_requests(settings, parsed.requests, kind)


def _import_from(source: str | None, path: Path | None, project: Path | None, dry_run: bool) -> None:
    from clarity.cli.claude_import import run_import

    if source is None:
        fail("--project: goes with --from claude-code", 2)
    if source != "claude-code":
        fail(f"--from: {source!r} is not a source Clarity reads; the one there is: claude-code", 2)
    if path is not None:
        fail(f"PATH: {path} given with --from claude-code, which finds its files itself; use --project", 2)
    where = (project or Path.cwd()).expanduser()
    if not where.is_dir():
        fail(f"--project: {where} is not a directory", 2)
    settings = client_settings()
    run_import(
        settings,
        where.resolve(),
        dry_run,
        lambda requests: _store_all(settings, requests, source),
        lambda: _daemon(settings),
    )


def _store_all(settings: SettingsModel, requests: list[MemoryCreate], kind: str) -> list[Any]:
    """Every request through the daemon's bulk store; the results in the requests' order."""
    client = _daemon(settings)
    results: list[Any] = []
    size_of = lambda r: len(r.model_dump_json()) + 16  # noqa: E731
    with _progress() as progress:
        task = progress.add_task(f"importing ({kind})", total=len(requests))
        for batch in _batches(requests, size_of, settings.server.max_request_bytes, max_items=128):
            results += call(client.store_many, [requests[i] for i in batch])
            progress.advance(task, len(batch))
    return results


def _store_requests(settings: SettingsModel, requests: list[MemoryCreate], kind: str) -> None:
    counts: dict[str, int] = {}
    for result in _store_all(settings, requests, kind):
        counts[result.status] = counts.get(result.status, 0) + 1
    out.print(
        f"imported {len(requests)}: {counts.get('created', 0)} new, {counts.get('duplicate', 0)} already known"
    )


def _import_export(
    settings: SettingsModel, records: list[MemoryRecord], vectors: list[Any], model: str, dry_run: bool
) -> None:
    from clarity.exchange import ImportBatch, ImportSummary

    if dry_run:
        out.print(f"dry run: {len(records)} memories read and checked; nothing stored")
        return
    client = _daemon(settings)
    summary = ImportSummary()
    size_of = lambda i: len(records[i].model_dump_json()) + (len(json.dumps(vectors[i])) if vectors[i] else 0)  # noqa: E731
    with _progress() as progress:
        task = progress.add_task("importing", total=len(records))
        for batch in _batches(list(range(len(records))), size_of, settings.server.max_request_bytes):
            request = ImportBatch(
                memories=[records[i] for i in batch], vectors=[vectors[i] for i in batch], model=model
            )
            summary.add(call(client.import_batch, request))
            progress.advance(task, len(batch))
    out.print(
        f"imported {len(records)}: {summary.created} new, {summary.replaced} replaced, "
        f"{summary.duplicate} duplicates skipped; vectors reused {summary.vectors_reused}, "
        f"computed {summary.vectors_computed}"
    )


@data_app.command()
def forget(
    older_than: Annotated[float | None, typer.Option(help="Created more than this many days ago.")] = None,
    memory_type: Annotated[list[str] | None, typer.Option("--type", help="Memory type (repeatable).")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Tag (repeatable).")] = None,
    source: Annotated[list[str] | None, typer.Option(help="manual, hook or import (repeatable).")] = None,
    max_importance: Annotated[float | None, typer.Option(help="Importance at or below this.")] = None,
    scope: Annotated[
        str | None, typer.Option(help="project, global, all, or a scope id (default: project and global).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be forgotten.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    url: DaemonUrl = None,
) -> None:
    """Delete memories in bulk by age, type, tag, source, scope or importance."""
    from clarity.requests import ForgetRequest

    fields: dict[str, Any] = {
        "older_than_days": older_than,
        "memory_types": memory_type,
        "tags": tag,
        "sources": source,
        "max_importance": max_importance,
        "scope": scope,
    }
    request = from_flags(ForgetRequest, **{k: v for k, v in fields.items() if v is not None})
    client = _daemon(client_settings())
    check_scope(client, scope, READ_SCOPES)
    preview = call(client.forget, request, True)
    for memory in preview.sample:
        out.print(
            f"  {memory.created_at:%Y-%m-%d} [{memory.memory_type}] {memory.content[:90]}", highlight=False
        )
    if dry_run or preview.matched == 0:
        out.print(f"{'dry run: ' if dry_run else ''}{preview.matched} memories match")
        return
    if not yes:
        if not sys.stdin.isatty():
            fail(f"{preview.matched} memories match; pass --yes to forget them without a prompt", 2)
        typer.confirm(f"Forget {preview.matched} memories?", abort=True)
    result = call(client.forget, request, False)
    out.print(f"forgot {result.deleted} memories")


@data_app.command()
def backup(
    file: Annotated[
        Path | None, typer.Argument(help="Archive to write (default clarity-backup-<time>.tar.gz).")
    ] = None,
    url: DaemonUrl = None,
) -> None:
    """Archive the whole storage (consistent while the daemon runs), with a portable export inside."""
    destination = file or Path(f"clarity-backup-{time.strftime('%Y%m%d-%H%M%S')}.tar.gz")
    client = _daemon(client_settings())
    with _progress() as progress:
        task = progress.add_task("backing up (bytes)", total=None)
        summary = call(client.backup, destination, lambda n: progress.advance(task, n))
    out.print(
        f"backed up {summary.get('memories', '?')} memories ({summary.get('engine', '?')} engine) to {destination} "
        f"({destination.stat().st_size / 1e6:.1f} MB)"
    )


def _owned_storage(settings: Settings) -> Any:
    from clarity.daemon import DaemonError, StorageLock

    lock = StorageLock(settings)
    try:
        lock.acquire()
    except DaemonError as exc:
        fail(f"{exc}. This command needs the daemon stopped: run `clarity stop` first")
    return lock


@data_app.command()
def restore(
    file: Annotated[Path, typer.Argument(help="A backup archive made by `clarity backup`.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Restore a backup into the configured engine; the current storage is moved aside, not deleted."""
    from clarity.lifecycle.backup import read_manifest, restore_backup
    from clarity.lifecycle.transfer import TransferError

    settings = cli_settings()
    try:
        manifest = read_manifest(file)
    except TransferError as exc:
        fail(str(exc), 2)
    if not yes:
        if not sys.stdin.isatty():
            fail("restore replaces the current memories (kept aside); pass --yes to go ahead", 2)
        typer.confirm(
            f"Restore {manifest.get('memories')} memories from {manifest.get('created_at')} into the "
            f"{settings.engine} engine?",
            abort=True,
        )
    lock = _owned_storage(settings)
    try:
        with _progress() as progress:
            task = progress.add_task("restoring", total=int(str(manifest.get("memories") or 0)))
            summary = restore_backup(
                file, settings, lambda: _local_service(settings), lambda n: progress.advance(task, n)
            )
    except TransferError as exc:
        fail(str(exc), 2)
    finally:
        lock.release()
    out.print(f"restored {summary.memories} memories into the {summary.engine} engine")
    if summary.moved_aside:
        out.print(f"the previous storage was kept at {summary.moved_aside}", soft_wrap=True)


def _local_service(settings: Settings) -> Any:
    from clarity.embedding import create_embedding_provider
    from clarity.memory import MemoryService
    from clarity.store import open_store

    embedder = create_embedding_provider(settings.embedding, settings.storage.cache_dir)
    return MemoryService(settings, open_store(settings), embedder)


@data_app.command()
def migrate(
    to: Annotated[str, typer.Option("--to", help="A Qdrant URL (http://host:6333) or 'embedded'.")],
    api_key: Annotated[
        str | None, typer.Option(envvar="QDRANT_API_KEY", help="API key of the target server.")
    ] = None,
) -> None:
    """Copy every memory between the embedded engine and a Qdrant server; the source is left intact."""
    from clarity.embedding import LexicalEncoder
    from clarity.lifecycle.transfer import copy_store
    from clarity.store import open_store

    settings = cli_settings()
    target_settings = _target(settings, to, api_key)
    if target_settings.engine == settings.engine and target_settings.qdrant.url == settings.qdrant.url:
        fail(f"--to: the source already is the {settings.engine} engine at that location", 2)
    lock = _owned_storage(settings)
    try:
        source = open_store(settings)
        target = open_store(target_settings)
        lexical = LexicalEncoder()
        total = source.count()
        with _progress() as progress:
            task = progress.add_task(f"copying to {target.location}", total=total)
            report = copy_store(source, target, lexical.document, lambda n: progress.advance(task, n))
        source.close()
        target.close()
    except Exception as exc:
        fail(f"migration stopped: {exc}; the source is unchanged")
    finally:
        lock.release()
    if report.mismatched or report.target_count < report.source_count:
        fail(
            f"verification failed: source {report.source_count}, target {report.target_count}, "
            f"{len(report.mismatched)} content hashes differ (first: {report.mismatched[:3]})"
        )
    out.print(
        f"copied {report.copied} memories to {target_settings.engine} ({target_settings.qdrant.url or target_settings.storage.qdrant_dir}); "
        f"counts and content hashes verified; the source is unchanged"
    )
    hint = f"QDRANT_URL={to}" if target_settings.qdrant.url else "no QDRANT_URL"
    out.print(f"to use it: restart the daemon with {hint}")


def _target(settings: Settings, to: str, api_key: str | None) -> Settings:
    qdrant: dict[str, Any] = settings.qdrant.model_dump()
    if to == "embedded":
        qdrant.update(url=None, api_key=None)
    elif to.startswith(("http://", "https://")):
        qdrant.update(url=to, api_key=api_key)
    else:
        fail(f"--to: {to!r} is neither a Qdrant URL (http://...) nor 'embedded'", 2)
    return settings.model_copy(update={"qdrant": type(settings.qdrant).model_validate(qdrant)})
