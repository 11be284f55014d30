"""`clarity doctor` (is this environment set up, and how to fix what is not) and `clarity version`.

The checks live in ``clarity.cli.checks``, imported only when `clarity doctor` runs: they need
httpx and the daemon module, which every other command's start-up would pay for otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from clarity import __version__
from clarity.cli.common import AsJson, DaemonUrl, client_settings, out

doctor_app = typer.Typer()


@doctor_app.command()
def doctor(as_json: AsJson = False, url: DaemonUrl = None) -> None:
    """Check this environment end to end and say how to fix each problem."""
    from clarity.cli.checks import run_checks

    checks = run_checks(client_settings(), Path.cwd())
    if as_json:
        out.print_json(json.dumps([c.to_dict() for c in checks]))
    else:
        marks = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "fail": "[red]✗[/]"}
        width = max(len(c.name) for c in checks)
        for check in checks:  # one line each, never wrapped: a fix is a command to copy
            name = escape(check.name.ljust(width))
            out.print(
                f"{marks[check.status]} {name}  {escape(check.detail)}", soft_wrap=True, highlight=False
            )
            if check.fix:
                out.print(
                    f"  {' ' * width}  [bold]fix:[/] {escape(check.fix)}", soft_wrap=True, highlight=False
                )
        failed = sum(c.status == "fail" for c in checks)
        out.print(f"{failed} problem(s) found" if failed else "everything looks right")
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(1)


@doctor_app.command()
def version() -> None:
    """Print the version."""
    out.print(__version__)
