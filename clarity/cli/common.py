"""What every ``clarity`` command shares: the two consoles, the one-line failure, settings with
the command's flags folded in, request models built from flags (their errors in the command's
own flag names), the ``--url`` option, ``--scope`` words checked, and the daemon client.

The command modules import this and nothing else from the package, so none of them imports
another and the app assembled in ``clarity/cli/__init__.py`` has no cycle.
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console

if TYPE_CHECKING:  # clarity.config is imported by the commands that read settings, not by `clarity version`
    from clarity.config import Settings, SettingsModel

DEBUG_ENV = "CLARITY_DEBUG"

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


class PlainConsole(Console):
    """A console that writes styles and colours only to a terminal: a log file or a pipe gets
    plain text even when FORCE_COLOR or TTY_COMPATIBLE, inherited from a parent process (a
    Node-based tool, a CI runner), tells rich otherwise."""

    @property
    def is_terminal(self) -> bool:
        isatty = getattr(self.file, "isatty", None)
        try:
            return bool(isatty and isatty()) and super().is_terminal
        except ValueError:  # a closed stream
            return False


out = PlainConsole()
err = PlainConsole(stderr=True)


def _use_url(value: str | None) -> str | None:
    """``--url`` is ``CLARITY_URL`` for this run: every way to the daemon (the client, starting a
    daemon, ``status``) reads it from there (``clarity.daemon_lookup.client_url``)."""
    if value is not None:
        from clarity.config import ConfigError
        from clarity.daemon_lookup import URL_ENV, explicit_url

        os.environ[URL_ENV] = value
        try:
            explicit_url()
        except ConfigError as exc:
            raise typer.BadParameter(str(exc).split(": ", 1)[-1]) from None
    return value


DaemonUrl = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="The daemon's URL (default: $CLARITY_URL, else the running daemon's from the storage "
        "lock file, else the configured host and port).",
        callback=_use_url,
        show_default=False,
    ),
]


def explain(exc: Exception) -> tuple[int, str]:
    """A failure that escaped a command, as (exit code, one line): 2 for what the user can fix
    in a flag, a setting or a file, 1 for the rest."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from clarity.config import ConfigError, describe_validation_error
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
            PlainConsole(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
            sys.exit(code)


def fail(message: str, code: int = 1) -> NoReturn:
    """End the command with one line on stderr and ``code`` (2: a flag, setting or file to fix)."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _overrides(flags: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``section__field`` flags that were given, as sections, and CLARITY_TOKEN as the token."""
    nested: dict[str, dict[str, Any]] = {}
    for key, value in flags.items():
        if value is not None:
            section, _, field = key.partition("__")
            nested.setdefault(section, {})[field] = value
    if os.environ.get("CLARITY_TOKEN") and "token" not in nested.get("server", {}):
        nested.setdefault("server", {})["token"] = os.environ["CLARITY_TOKEN"]
    return nested


def cli_settings(**overrides: Any) -> Settings:
    """Load settings, folding CLI flags in last; a bad value ends the command with one line.
    For what runs or opens the storage (serve, restore, migrate, starting a daemon)."""
    from clarity.config import ConfigError, load_settings

    try:
        return load_settings(**_overrides(overrides))
    except ConfigError as exc:
        fail(str(exc), 2)


def client_settings(**overrides: Any) -> SettingsModel:
    """``cli_settings`` for a client command: the same values and the same refusals, read without
    pydantic-settings (``clarity.client_settings``), 70 ms sooner."""
    from clarity.client_settings import load_client_settings
    from clarity.config import ConfigError

    try:
        return load_client_settings(**_overrides(overrides))
    except ConfigError as exc:
        fail(str(exc), 2)


# The flags of request fields whose flag is not simply ``--field-name`` (one table for every command).
FLAG_NAMES = {
    "content": "TEXT",
    "query": "QUERY",
    "memory_type": "--type",
    "memory_types": "--type",
    "tags": "--tag",
    "sources": "--source",
    "older_than_days": "--older-than",
    "with_vectors": "--vectors",
    "anchors": "--anchor",
}


def flag_name(field: str) -> str:
    return FLAG_NAMES.get(field) or "--" + field.replace("_", "-")


def in_flag_words(line: str, fields: Any) -> str:
    """One line of ``describe_validation_error`` in the command's words: the field it starts with
    becomes its flag, and a line about the whole request ("give at least one of scope, tags")
    names the flags instead of the fields."""
    names = sorted(fields, key=len, reverse=True)
    if line.startswith("(body)"):
        message = line.partition(": ")[2] or line
        return re.sub(r"\b(" + "|".join(names) + r")\b", lambda m: flag_name(m[1]), message)
    for field in names:  # "tags.0=''" and "scope.literal[...]='x'" name the flag alone
        if found := re.match(re.escape(field) + r"(\.[^=:]*)?(?=[=:]|$)", line):
            return flag_name(field) + line[found.end() :]
    return line


def from_flags(model: type[Any], **fields: Any) -> Any:
    """Build a request model from command-line values, or end with one line naming the bad flag."""
    from pydantic import ValidationError

    from clarity.config import describe_validation_error

    try:
        return model(**fields)
    except ValidationError as exc:
        lines = describe_validation_error(exc)
        fail("; ".join(in_flag_words(line, model.model_fields) for line in lines), 2)


SCOPES_SHOWN = 8
READ_SCOPES = ("default", "project", "global", "all")  # the keywords of a command that reads
STORE_SCOPES = ("project", "global")  # the keywords of a command that stores


def check_scope(client: Any, scope: str | None, keywords: tuple[str, ...]) -> None:
    """A ``--scope`` word must be one of ``keywords`` or a scope that already holds memories, so a
    typo ("projet") never makes a scope of its own; anything else ends the command with one line
    listing the valid words and the existing scopes (the most used first, at most eight)."""
    from clarity.models import SCOPE_PATTERN
    from clarity.requests import ListRequest

    if scope is None or scope in keywords:
        return
    if re.match(SCOPE_PATTERN, scope) and call(client.list, ListRequest(scope=scope, limit=1)).total:
        return
    existing = list(call(client.stats).by_scope)
    shown = ", ".join(existing[:SCOPES_SHOWN])
    if len(existing) > SCOPES_SHOWN:
        shown += f" and {len(existing) - SCOPES_SHOWN} more (`clarity stats`)"
    fail(
        f"--scope: {scope!r} is not a scope; use {', '.join(keywords)}, or an existing scope: "
        + (shown or "none yet"),
        2,
    )


def daemon_client(settings: SettingsModel | None = None) -> Any:
    """The REST client for the daemon, speaking for the project in the current directory (with the
    client settings unless given)."""
    from clarity.cli.client import DaemonClient

    return DaemonClient(settings or client_settings(), project=os.getcwd())


def call(func: Any, *args: Any) -> Any:
    """Call the daemon; what it refuses ends the command with its own sentence."""
    from clarity.mcp.backend import BackendError

    try:
        return func(*args)
    except BackendError as exc:
        fail(str(exc))
