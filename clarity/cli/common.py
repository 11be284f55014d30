"""What every ``clarity`` command shares: the two consoles, the one-line failure, settings with
the command's flags folded in, request models built from flags, and the daemon client.

The command modules import this and nothing else from the package, so none of them imports
another and the app assembled in ``clarity/cli/__init__.py`` has no cycle.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from clarity.config import ConfigError, Settings, load_settings

DEBUG_ENV = "CLARITY_DEBUG"

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

out = Console()
err = Console(stderr=True)


def explain(exc: Exception) -> tuple[int, str]:
    """A failure that escaped a command, as (exit code, one line): 2 for what the user can fix
    in a flag, a setting or a file, 1 for the rest."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from clarity.config import describe_validation_error
    from clarity.lifecycle.transfer import TransferError

    if isinstance(exc, ValidationError):
        return 2, "; ".join(describe_validation_error(exc))
    if isinstance(exc, ConfigError | SettingsError | TransferError):
        return 2, str(exc)
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return 1, f"{where}{exc.strerror or exc}"
    return 1, f"unexpected {type(exc).__name__}: {exc} ({DEBUG_ENV}=1 shows the traceback)"


class Cli(typer.Typer):
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


def fail(message: str, code: int = 1) -> NoReturn:
    """End the command with one line on stderr and ``code`` (2: a flag, setting or file to fix)."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def cli_settings(**overrides: Any) -> Settings:
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
        fail(str(exc), 2)


def from_flags(model: type[Any], **fields: Any) -> Any:
    """Build a request model from command-line values, or end with one line naming the bad field."""
    from pydantic import ValidationError

    from clarity.config import describe_validation_error

    try:
        return model(**fields)
    except ValidationError as exc:
        fail("; ".join(describe_validation_error(exc)), 2)


def daemon_client(settings: Settings) -> Any:
    """The REST client for the daemon, speaking for the project in the current directory."""
    from clarity.cli.client import DaemonClient

    return DaemonClient(settings, project=os.getcwd())


def call(func: Any, *args: Any) -> Any:
    """Call the daemon; what it refuses ends the command with its own sentence."""
    from clarity.mcp.backend import BackendError

    try:
        return func(*args)
    except BackendError as exc:
        fail(str(exc))
