"""``clarity pause`` and ``clarity resume``: stop learning and injection for one project or all,
while the MCP tools keep working. No daemon needed: the switch is a file the daemon watches."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

from clarity.cli.common import client_settings, out

if TYPE_CHECKING:
    from clarity.hooks.controls import Pauses

Everywhere = Annotated[bool, typer.Option("--global", help="Every project, not just the current one.")]

pause_app = typer.Typer()


def _pauses() -> Pauses:
    from clarity.hooks.controls import Pauses

    return Pauses(client_settings().storage.app_data_dir / "controls.json")


def _here() -> str:
    from clarity.project import project_scope

    return project_scope(os.getcwd())


@pause_app.command()
def pause(everywhere: Everywhere = False) -> None:
    """Stop hooks from learning and adding memories (this project, or --global)."""
    cwd = os.getcwd()
    scope = None if everywhere else _here()
    _pauses().set(scope, True, label="all projects" if everywhere else cwd)
    where = "every project" if everywhere else f"this project ({scope})"
    out.print(f"Clarity paused for {where}: hooks neither learn nor add memories; MCP tools still work.")
    out.print("Resume with `clarity resume" + (" --global`" if everywhere else "`"))


@pause_app.command()
def resume(everywhere: Everywhere = False) -> None:
    """Undo `clarity pause` (this project, or --global)."""
    from clarity.hooks.controls import GLOBAL

    pauses = _pauses()
    scope = None if everywhere else _here()
    pauses.set(scope, False)
    remaining = pauses.current()
    out.print(f"Clarity resumed for {'every project' if everywhere else f'this project ({scope})'}.")
    if GLOBAL in remaining and not everywhere:
        out.print("Note: a global pause is still on; `clarity resume --global` lifts it.")
