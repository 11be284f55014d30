"""The daemon's lifecycle: ``clarity serve``, ``mcp`` (the stdio shim), ``status`` and ``stop``.

``status`` looks where every client looks (``--url``, ``CLARITY_URL``, the lock file, the
settings), and says where the daemon and its dashboard are and whether learning is paused."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from clarity.cli.common import AsJson, DaemonUrl, cli_settings, client_settings, err, fail, out

LOG_LEVELS = ("debug", "info", "warning", "error")

Host = Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")]
Port = Annotated[int | None, typer.Option(help="Port (default 8000).")]

server_app = typer.Typer()


@server_app.command()
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
    team: Annotated[
        bool,
        typer.Option(
            "--team",
            help="Run a team server instead (docs/team.md): /team/v1 over TLS from team.tls_cert and "
            "team.tls_key, on port 8443 unless --port; give it its own --storage-root.",
        ),
    ] = False,
) -> None:
    """Run the daemon: MCP at /mcp, hooks, REST at /api, /healthz and /readyz (--team: a team server)."""
    from clarity.config import ConfigError
    from clarity.daemon import DaemonError, run_daemon
    from clarity.team.serve import TEAM_PORT, run_team_server

    if log_level.lower() not in LOG_LEVELS:
        fail(f"--log-level: {log_level!r} is not one of {', '.join(LOG_LEVELS)}", 2)
    if storage_root and storage_root.strip():
        # Typed in a shell, a relative path means this directory; settings refuse one elsewhere.
        storage_root = str(Path(storage_root).expanduser().absolute())
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if team and port is None:
        port = TEAM_PORT
    settings = cli_settings(
        server__host=host, server__port=port, storage__root=storage_root, qdrant__url=qdrant_url
    )
    if problem := settings.storage.root_problem():
        fail(f"config storage.root={str(settings.storage.root)!r}: {problem}", 2)
    try:  # it says "serving" once the storage and the port are its own, and later "ready"
        run = run_team_server if team else run_daemon
        run(settings, lambda line: err.print(line, markup=False, highlight=False, soft_wrap=True))
    except ConfigError as exc:
        fail(str(exc), 2)
    except DaemonError as exc:
        fail(str(exc))


@server_app.command()
def mcp(url: DaemonUrl = None) -> None:
    """Serve the MCP tools over stdio, forwarding to the daemon (started in the background if needed)."""
    import anyio

    from clarity.cli.client import RemoteBackend
    from clarity.daemon import DaemonError, ensure_daemon
    from clarity.mcp.server import build_mcp_server

    logging.basicConfig(level="WARNING", stream=sys.stderr)  # stdout belongs to the protocol
    settings = cli_settings()
    try:
        ensure_daemon(settings)
    except DaemonError as exc:
        # Keep serving: each tool call will report that the daemon is unreachable.
        err.print(f"clarity mcp: {exc}")
    server = build_mcp_server(RemoteBackend(settings, project=os.getcwd()))
    anyio.run(server.run_stdio_async)


def _pause_report(settings: Any) -> dict[str, Any]:
    """Which scopes ``clarity pause`` has switched off (the file the daemon watches)."""
    from clarity.hooks.controls import GLOBAL, Pauses
    from clarity.project import project_scope

    paused = Pauses(settings.storage.app_data_dir / "controls.json").current()
    here = project_scope(os.getcwd())
    return {
        "everywhere": GLOBAL in paused,
        "this_project": GLOBAL in paused or here in paused,
        "scopes": {scope: label for scope, label in paused.items() if scope != GLOBAL},
    }


def _print_pauses(pauses: dict[str, Any]) -> None:
    if pauses["everywhere"]:
        out.print("learning: [yellow]paused everywhere[/] (`clarity resume --global` lifts it)")
    elif pauses["this_project"]:
        out.print("learning: [yellow]paused for this project[/] (`clarity resume` lifts it)")
    else:
        out.print("learning: on for this project")
    others = pauses["scopes"]
    if others:
        listed = ", ".join(f"{label} ({scope})" for scope, label in list(others.items())[:5])
        more = f" and {len(others) - 5} more" if len(others) > 5 else ""
        out.print(f"paused projects: {listed}{more}", soft_wrap=True, highlight=False)


def _team_report(address: str, headers: dict[str, str]) -> dict[str, Any] | None:
    """The daemon's team tier status (``GET /api/team``), None without one (or an older daemon)."""
    from clarity.daemon_lookup import fetch

    code, body = fetch("GET", f"{address}/api/team", headers=headers, timeout=2)
    found = json.loads(body).get("team") if code == 200 else None
    return found if isinstance(found, dict) else None


@server_app.command()
def status(as_json: AsJson = False, url: DaemonUrl = None) -> None:
    """Is a daemon running, is it ready, where are it and its dashboard, is learning paused?"""
    from clarity.daemon_lookup import HTTP_ERRORS, client_url, diagnose, fetch, headers_for, read_lock_info

    settings = client_settings()
    address = client_url(settings)
    report: dict[str, Any] = {
        "url": address,
        "dashboard": f"{address}/",
        "running": False,
        "ready": False,
        "lock": read_lock_info(settings),
        "paused": _pause_report(settings),
    }
    try:
        report["running"] = fetch("GET", f"{address}/healthz", timeout=2)[0] == 200
        ready, body = fetch("GET", f"{address}/readyz", headers=headers_for(settings), timeout=2)
        report["ready"] = ready == 200
        report["readiness"] = json.loads(body)
        report["team"] = _team_report(address, headers_for(settings))
    except (*HTTP_ERRORS, ValueError) as exc:
        report["error"] = str(exc)
    report["problems"] = [] if report["running"] else diagnose(settings)
    if as_json:
        out.print_json(json.dumps(report))
    elif not report["running"]:
        err.print(f"clarity daemon: [red]not running[/] at {address}", highlight=False)
        for problem in report["problems"]:
            err.print(f"  - {problem}", highlight=False, soft_wrap=True)
        err.print("start it with `clarity serve` (or `clarity service install` to keep it running)")
        _print_pauses(report["paused"])
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
        out.print(f"clarity daemon at {address}: {state}", soft_wrap=True, highlight=False)
        out.print(f"dashboard: {address}/", soft_wrap=True, highlight=False)
        if "engine" in detail:
            out.print(f"engine {detail.get('engine')} at {detail.get('location')}", soft_wrap=True)
        storage = detail.get("storage") or {}
        if storage.get("state") in ("warning", "over"):
            share = 100 * storage["used_bytes"] / max(storage["max_bytes"], 1)
            out.print(f"[yellow]storage at {share:.0f}% of its cap[/] (storage.max_bytes)")
        if (report.get("team") or {}).get("line"):  # "team: alice on https://..., 3 writes waiting"
            out.print(report["team"]["line"], soft_wrap=True, highlight=False, markup=False)
        _print_pauses(report["paused"])
    if not report["running"]:
        raise typer.Exit(1)


@server_app.command()
def stop(timeout: Annotated[float, typer.Option(help="Seconds to wait for a clean exit.")] = 20.0) -> None:
    """Stop the daemon that owns this storage root (works from any directory)."""
    import signal
    import time

    from clarity.daemon_lookup import is_healthy, lock_is_held, read_lock_info

    settings = client_settings()
    pid = read_lock_info(settings).get("pid")
    if not isinstance(pid, int) or not lock_is_held(settings):
        if is_healthy(settings):
            fail(
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
    if is_healthy(settings):  # still answering: finishing its work, not hung
        fail(
            f"daemon pid {pid} is still shutting down after {timeout:.0f}s; `clarity stop` again waits longer"
        )
    fail(
        f"daemon pid {pid} did not exit within {timeout:.0f}s; `kill -9 {pid}` ends it (the WAL keeps its data)"
    )
