"""The ``clarity`` command. Each subcommand is a thin shell over the daemon or its REST API.

One Typer app assembled here from a module per subject: ``server`` (serve, mcp, status, stop),
``memories`` (store, search, list, delete, stats), ``doctor`` (doctor, version), ``pause``
(pause, resume), ``data`` (export, import, forget, backup, restore, migrate), ``hooks``,
``service`` and ``team`` (a team server's users). What they share (the consoles, the one-line
failure, settings, the daemon client) is in ``common``; they import that and nothing else from
this package, so there is no cycle.
The order below is the order ``clarity --help`` lists the commands in.
"""

from __future__ import annotations

from clarity.cli.common import Cli
from clarity.cli.data import data_app
from clarity.cli.doctor import doctor_app
from clarity.cli.hooks import hooks_app
from clarity.cli.memories import memory_app
from clarity.cli.pause import pause_app
from clarity.cli.server import server_app
from clarity.cli.service import service_app
from clarity.cli.team import team_app

__all__ = ["app", "main"]

app = Cli(
    name="clarity",
    help="Persistent, shared memory for Claude Code: one daemon, MCP tools and hooks.",
    no_args_is_help=True,
    add_completion=False,
)
for commands in (server_app, memory_app, doctor_app, pause_app, data_app):
    app.add_typer(commands)  # no name: their commands join the top level
app.add_typer(
    hooks_app, name="hooks", help="Install, remove or inspect Clarity's Claude Code hooks and MCP entry."
)
app.add_typer(service_app, name="service")
app.add_typer(team_app, name="team", help="A team server's users, managed on its host (docs/team.md).")


def main() -> None:
    app()
