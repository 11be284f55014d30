"""``clarity team user add|list|revoke``: the team server's users, managed on its host (docs/team.md).

The commands open the team server's state directly, where the same settings put it (``team.backend``):
the state file under its storage root (sqlite, WAL), or with QDRANT_URL the users collection its
replicas share; so they work whether or not ``clarity serve --team`` runs, and a revocation holds
from its next request.
A token is printed once, by ``add``, and kept only as a hash.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from clarity.cli.common import AsJson, client_settings, err, fail, out

if TYPE_CHECKING:
    from clarity.team.backend import UserBook

StorageRoot = Annotated[
    str | None,
    typer.Option(help="The team server's storage root (default: the configured storage.root)."),
]

team_app = typer.Typer(no_args_is_help=True)
user_app = typer.Typer(no_args_is_help=True)
team_app.add_typer(user_app, name="user", help="Add, list or revoke the team server's users.")


def _users(storage_root: str | None) -> UserBook:
    from clarity.team.backend import open_users

    settings = client_settings()
    if storage_root and storage_root.strip():
        root = Path(storage_root).expanduser().absolute()
        settings = settings.model_copy(update={"storage": settings.storage.model_copy(update={"root": root})})
    try:
        return open_users(settings)
    except Exception as exc:  # an unreachable Qdrant, a file that cannot be opened
        if settings.engine == "server":
            fail(f"QDRANT_URL: cannot open the team users on {settings.qdrant.url}: {exc}", 2)
        fail(f"--storage-root: cannot open the team state under {settings.storage.root}: {exc}", 2)


def _when(moment: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(moment)) if moment else ""


@user_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The user name memories are attributed to, e.g. alice.")],
    role: Annotated[
        str, typer.Option(help="read (pulls), write (also writes its own), admin (also deletes anyone's).")
    ] = "write",
    storage_root: StorageRoot = None,
    as_json: AsJson = False,
) -> None:
    """Add a user (or a new token for a revoked one) and print its token, this once only."""
    from clarity.team.users import UserError

    users = _users(storage_root)
    try:
        token = users.add(name, role)
    except UserError as exc:
        fail(str(exc), 2)
    finally:
        users.close()
    if as_json:
        out.print_json(json.dumps({"user": name, "role": role, "token": token}))
        return
    err.print(
        f"team user {name} added with the role {role}. The token, shown only this once:", highlight=False
    )
    out.print(token, markup=False, highlight=False, soft_wrap=True)
    err.print(
        "Give it to them for their config (team.token, or CLARITY_TEAM__TOKEN); "
        f"`clarity team user revoke {name}` withdraws it.",
        highlight=False,
    )


@user_app.command("list")
def list_users(storage_root: StorageRoot = None, as_json: AsJson = False) -> None:
    """The users, their roles, and when each was added or revoked (never a token)."""
    users = _users(storage_root)
    try:
        listed = users.list()
    finally:
        users.close()
    if as_json:
        rows = [
            {"user": u.name, "role": u.role, "created_at": u.created_at, "revoked_at": u.revoked_at}
            for u in listed
        ]
        out.print_json(json.dumps(rows))
        return
    if not listed:
        out.print("no team users yet: `clarity team user add NAME --role write` adds one")
        return
    for user in listed:
        state = f"revoked {_when(user.revoked_at)}" if user.revoked_at else "active"
        out.print(f"{user.name:<20} {user.role:<6} added {_when(user.created_at)}  {state}", highlight=False)


@user_app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="The user whose token to refuse from now on.")],
    storage_root: StorageRoot = None,
) -> None:
    """Refuse a user's token from its next request; their memories stay, with their name."""
    from clarity.team.users import UserError

    users = _users(storage_root)
    try:
        user = users.revoke(name)
    except UserError as exc:
        fail(str(exc), 2)
    finally:
        users.close()
    out.print(
        f"team user {user.name} revoked ({_when(user.revoked_at)}); `clarity team user add {name}` issues a new token"
    )
