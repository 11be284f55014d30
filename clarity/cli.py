"""The ``clarity`` command. Each subcommand is a thin shell over the daemon or its REST API."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from clarity import __version__
from clarity.config import ConfigError, Settings, load_settings

LOG_LEVELS = ("debug", "info", "warning", "error")
DEBUG_ENV = "CLARITY_DEBUG"


def explain(exc: Exception) -> tuple[int, str]:
    """A failure that escaped a command, as (exit code, one line): 2 for what the user can fix
    in a flag, a setting or a file, 1 for the rest."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from clarity.config import describe_validation_error
    from clarity.transfer import TransferError

    if isinstance(exc, ValidationError):
        return 2, "; ".join(describe_validation_error(exc))
    if isinstance(exc, ConfigError | SettingsError | TransferError):
        return 2, str(exc)
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return 1, f"{where}{exc.strerror or exc}"
    return 1, f"unexpected {type(exc).__name__}: {exc} ({DEBUG_ENV}=1 shows the traceback)"


class _Cli(typer.Typer):
    """Every command ends with one line naming what was wrong, never a Python traceback;
    CLARITY_DEBUG=1 lets the traceback through for a bug report."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            code, message = explain(exc)
            Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
            sys.exit(code)


app = _Cli(
    name="clarity",
    help="Persistent, shared memory for Claude Code: one daemon, MCP tools and hooks.",
    no_args_is_help=True,
    add_completion=False,
)
from clarity.integrations.hooks_cli import hooks_app  # noqa: E402
from clarity.service import service_app  # noqa: E402

app.add_typer(
    hooks_app, name="hooks", help="Install, remove or inspect Clarity's Claude Code hooks and MCP entry."
)
app.add_typer(service_app, name="service")
out = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _settings(**overrides: Any) -> Settings:
    """Load settings, folding CLI flags in last; a bad value ends the command with one line."""
    nested: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        if value is not None:
            section, _, field = key.partition("__")
            nested.setdefault(section, {})[field] = value
    if os.environ.get("CLARITY_TOKEN") and "token" not in nested.get("server", {}):
        nested.setdefault("server", {})["token"] = os.environ["CLARITY_TOKEN"]
    try:
        return load_settings(**nested)
    except ConfigError as exc:
        _fail(str(exc), 2)


def _request(model: type[Any], **fields: Any) -> Any:
    """Build a request model from command-line values, or end with one line naming the bad field."""
    from pydantic import ValidationError

    from clarity.config import describe_validation_error

    try:
        return model(**fields)
    except ValidationError as exc:
        _fail("; ".join(describe_validation_error(exc)), 2)


def _client(settings: Settings) -> Any:
    from clarity.client import DaemonClient

    return DaemonClient(settings, project=os.getcwd())


def _run(func: Any, *args: Any) -> Any:
    from clarity.mcp.server import BackendError

    try:
        return func(*args)
    except BackendError as exc:
        _fail(str(exc))


Host = Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")]
Port = Annotated[int | None, typer.Option(help="Port (default 8000).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.command()
def serve(
    host: Host = None,
    port: Port = None,
    storage_root: Annotated[
        str | None, typer.Option(help="Storage root directory (a relative path is taken from here).")
    ] = None,
    qdrant_url: Annotated[
        str | None, typer.Option(help="Use a Qdrant server instead of the embedded engine.")
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the daemon: MCP at /mcp, hooks, REST at /api, /healthz and /readyz."""
    from clarity.daemon import DaemonError, daemon_url, run_daemon

    if log_level.lower() not in LOG_LEVELS:
        _fail(f"--log-level: {log_level!r} is not one of {', '.join(LOG_LEVELS)}", 2)
    if storage_root and storage_root.strip():
        # Typed in a shell, a relative path means this directory; settings refuse one elsewhere.
        storage_root = str(Path(storage_root).expanduser().absolute())
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _settings(
        server__host=host, server__port=port, storage__root=storage_root, qdrant__url=qdrant_url
    )
    if problem := settings.storage.root_problem():
        _fail(f"config storage.root={str(settings.storage.root)!r}: {problem}", 2)
    where = settings.qdrant.url or str(settings.storage.qdrant_dir)
    err.print(f"clarity {__version__}: serving {daemon_url(settings)} ({settings.engine} engine at {where})")
    try:
        run_daemon(settings)
    except ConfigError as exc:
        _fail(str(exc), 2)
    except DaemonError as exc:
        _fail(str(exc))


@app.command()
def mcp() -> None:
    """Serve the MCP tools over stdio, forwarding to the daemon (started in the background if needed)."""
    import anyio

    from clarity.client import RemoteBackend
    from clarity.daemon import DaemonError, ensure_daemon
    from clarity.mcp.server import build_mcp_server

    logging.basicConfig(level="WARNING", stream=sys.stderr)  # stdout belongs to the protocol
    settings = _settings()
    try:
        ensure_daemon(settings)
    except DaemonError as exc:
        # Keep serving: each tool call will report that the daemon is unreachable.
        err.print(f"clarity mcp: {exc}")
    server = build_mcp_server(RemoteBackend(settings, project=os.getcwd()))
    anyio.run(server.run_stdio_async)


@app.command()
def status(as_json: AsJson = False) -> None:
    """Is a daemon running, is it ready, and what does it serve?"""
    import httpx

    from clarity.daemon import daemon_url, diagnose, headers_for, read_lock_info

    settings = _settings()
    url = daemon_url(settings)
    report: dict[str, Any] = {"url": url, "running": False, "ready": False, "lock": read_lock_info(settings)}
    try:
        health = httpx.get(f"{url}/healthz", timeout=2)
        report["running"] = health.status_code == 200
        ready = httpx.get(f"{url}/readyz", headers=headers_for(settings), timeout=2)
        report["ready"] = ready.status_code == 200
        report["readiness"] = ready.json()
    except (httpx.HTTPError, ValueError) as exc:
        report["error"] = str(exc)
    report["problems"] = [] if report["running"] else diagnose(settings)
    if as_json:
        out.print_json(json.dumps(report))
    elif not report["running"]:
        err.print(f"clarity daemon: [red]not running[/] at {url}", highlight=False)
        for problem in report["problems"]:
            err.print(f"  - {problem}", highlight=False, soft_wrap=True)
        err.print("start it with `clarity serve` (or `clarity service install` to keep it running)")
    else:
        detail = report.get("readiness", {})
        if "error" in detail and "authorization" in str(detail["error"]):
            state = "[yellow]running; its details need the token[/] (set CLARITY_TOKEN)"
        elif report["ready"]:
            state = "[green]ready[/]"
        elif detail.get("model_error"):
            state = f"[yellow]running without its model, lexical search only[/]: {detail['model_error']}"
        else:
            state = "[yellow]starting (model loading)[/]"
        out.print(f"clarity daemon at {url}: {state}", soft_wrap=True)
        if "engine" in detail:
            out.print(f"engine {detail.get('engine')} at {detail.get('location')}", soft_wrap=True)
        storage = detail.get("storage") or {}
        if storage.get("state") in ("warning", "over"):
            share = 100 * storage["used_bytes"] / max(storage["max_bytes"], 1)
            out.print(f"[yellow]storage at {share:.0f}% of its cap[/] (storage.max_bytes)")
    if not report["running"]:
        raise typer.Exit(1)


@app.command()
def stop(timeout: Annotated[float, typer.Option(help="Seconds to wait for a clean exit.")] = 20.0) -> None:
    """Stop the daemon that owns this storage root (works from any directory)."""
    import signal
    import time

    from clarity.daemon import is_healthy, lock_is_held, read_lock_info

    settings = _settings()
    pid = read_lock_info(settings).get("pid")
    if not isinstance(pid, int) or not lock_is_held(settings):
        if is_healthy(settings):
            _fail(
                "a daemon answers but holds no lock under this storage root (server engine or another root); "
                "stop it where it was started"
            )
        out.print("no Clarity daemon is running for this storage root")
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        out.print(f"no process {pid}: the daemon already stopped")
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not lock_is_held(settings):  # released by the kernel however the daemon ended
            out.print(f"stopped the Clarity daemon (pid {pid})")
            return
        time.sleep(0.1)
    _fail(
        f"daemon pid {pid} did not exit within {timeout:.0f}s; `kill -9 {pid}` ends it (the WAL keeps its data)"
    )


@app.command()
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

    request = _request(
        MemoryCreate,
        content=content,
        memory_type=memory_type,
        tags=tags or [],
        importance=importance,
        scope=scope,
    )
    result = _run(_client(_settings()).store, request)
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


@app.command()
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
    from clarity.models import RetrieveRequest

    request = _request(RetrieveRequest, query=query, limit=limit, scope=scope, mode=mode)
    result = _run(_client(_settings()).retrieve, request)
    if as_json:
        out.print_json(result.model_dump_json())
    else:
        out.print(_memory_table([(r.memory, r.score) for r in result.results]))
        _note_unreadable(result.unreadable)


@app.command("list")
def list_(
    limit: Annotated[int, typer.Option(help="Page size.")] = 20,
    offset: Annotated[int, typer.Option(help="Skip this many.")] = 0,
    scope: Annotated[str, typer.Option(help="default, project, global or all")] = "default",
    as_json: AsJson = False,
) -> None:
    """List memories, newest first."""
    from clarity.models import ListRequest

    request = _request(ListRequest, limit=limit, offset=offset, scope=scope)
    result = _run(_client(_settings()).list, request)
    if as_json:
        out.print_json(result.model_dump_json())
    else:
        out.print(_memory_table([(m, None) for m in result.memories]))
        out.print(f"{len(result.memories)} of {result.total}")
        _note_unreadable(result.unreadable)


@app.command()
def delete(memory_id: Annotated[str, typer.Argument(help="The memory's id.")]) -> None:
    """Delete one memory by id."""
    result = _run(_client(_settings()).delete, memory_id)
    out.print(f"deleted: {result.id}")


@app.command()
def stats(as_json: AsJson = False) -> None:
    """Counts by type and project, engine and model state."""
    result = _run(_client(_settings()).stats)
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


@app.command()
def doctor(as_json: AsJson = False) -> None:
    """Check this environment end to end and say how to fix each problem."""
    from clarity.doctor import run_checks

    checks = run_checks(_settings(), Path.cwd())
    if as_json:
        out.print_json(json.dumps([c.to_dict() for c in checks]))
    else:
        marks = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "fail": "[red]✗[/]"}
        table = Table(show_header=False, box=None)
        for check in checks:
            table.add_row(marks[check.status], check.name, check.detail)
            if check.fix:
                table.add_row("", "", f"[bold]fix:[/] {check.fix}")
        out.print(table)
        failed = sum(c.status == "fail" for c in checks)
        out.print(f"{failed} problem(s) found" if failed else "everything looks right")
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(1)


@app.command()
def version() -> None:
    """Print the version."""
    out.print(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()


# Imported last: these modules add their commands to ``app`` defined above.
from clarity import cli_controls, cli_data  # noqa: E402, F401
