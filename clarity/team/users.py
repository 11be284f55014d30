"""The team server's users: a name, a role and a token, made with ``clarity team user add`` on the
server's host, shown once and kept only as a hash, revocable (docs/team.md).

A token is ``secrets.token_urlsafe(32)``: 256 random bits. The server keeps its SHA-256, not the
token, so a copy of the state file lets no one in. A plain hash is enough here where a password
would need a slow one (bcrypt, scrypt, argon2): those slow down guessing a low-entropy secret
from its hash, and 2**256 candidates cannot be guessed at any speed. A fast hash also lets every
request look its token up by an indexed column in microseconds.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from clarity.team.protocol import USER_PATTERN, Role
from clarity.team.state import connect, first_row, transaction

ROLES: tuple[str, ...] = get_args(
    Role
)  # read: pulls; write: also writes its own; admin: also deletes anyone's
TOKEN_BYTES = 32


class UserError(ValueError):
    """A user command that cannot be done, phrased for one line."""


class Unauthorized(Exception):
    """A request whose token is missing, unknown or revoked (HTTP 401)."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str
    created_at: float
    revoked_at: float | None = None

    @property
    def can_write(self) -> bool:
        return self.role in ("write", "admin")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_name(name: str) -> str:
    if not re.match(USER_PATTERN, name):
        raise UserError(
            f"NAME: {name!r} is not a user name (a lowercase letter, then up to 63 lowercase letters, "
            "digits, '.', '_' or '-')"
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"--role: {role!r} is not one of {', '.join(ROLES)}")
    return role


class Users:
    """The users table of the team state file (``clarity.team.state``): the sqlite backend of one
    team server; ``clarity.team.qdrant_state`` is the one several replicas share."""

    def __init__(self, directory: Path) -> None:
        self._db: sqlite3.Connection = connect(directory)
        self._lock = threading.Lock()  # one connection, requests on several threads

    def close(self) -> None:
        self._db.close()

    def _row(self, name: str) -> User | None:
        row = first_row(
            self._db, "SELECT name, role, created_at, revoked_at FROM users WHERE name = ?", (name,)
        )
        return User(*row) if row else None

    def add(self, name: str, role: str) -> str:
        """A new user, or a new token for a revoked one (a lost laptop: revoke, then add again);
        the token, which only this answer ever shows."""
        check_name(name)
        check_role(role)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        with transaction(self._db):
            existing = self._row(name)
            if existing is not None and existing.revoked_at is None:
                raise already_active(existing)
            self._db.execute(
                "INSERT OR REPLACE INTO users VALUES (?, ?, ?, ?, NULL)",
                (name, role, hash_token(token), time.time()),
            )
        return token

    def list(self) -> list[User]:
        rows = self._db.execute("SELECT name, role, created_at, revoked_at FROM users ORDER BY name")
        return [User(*row) for row in rows]

    def revoke(self, name: str) -> User:
        """Refuse the user's token from the next request on; their memories stay, with their name."""
        with transaction(self._db):
            existing = self._row(check_name(name))
            if existing is None:
                raise no_user(name)
            if existing.revoked_at is None:
                self._db.execute("UPDATE users SET revoked_at = ? WHERE name = ?", (time.time(), name))
        revoked = self._row(name)
        assert revoked is not None
        return revoked

    def authenticate(self, authorization: str | None) -> User:
        """The user an ``Authorization: Bearer <token>`` header speaks for, or Unauthorized saying
        why. Read from the file on every request, so a revocation holds from the next one."""
        token_hash = bearer_hash(authorization)
        with self._lock:
            row = first_row(
                self._db,
                "SELECT name, role, created_at, revoked_at FROM users WHERE token_hash = ?",
                (token_hash,),
            )
        return active_user(User(*row) if row else None)


def bearer_hash(authorization: str | None) -> str:
    """The hash of the token an ``Authorization: Bearer <token>`` header carries, or Unauthorized."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized(
            "authorization: send 'Authorization: Bearer <token>' with a team user's token "
            "(`clarity team user add NAME` on the team server makes one)"
        )
    return hash_token(token)


def active_user(user: User | None) -> User:
    """``user``, found by a token's hash, unless there is none or it was revoked (Unauthorized)."""
    if user is None:
        raise Unauthorized("authorization: this token is not a team user's")
    if user.revoked_at is not None:
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(user.revoked_at))
        raise Unauthorized(f"authorization: the token of {user.name} was revoked on {when}")
    return user


def no_user(name: str) -> UserError:
    return UserError(f"NAME: no user {name} (`clarity team user list` shows them)")


def already_active(existing: User) -> UserError:
    """The refusal of ``add`` for a user whose token still works."""
    return UserError(
        f"NAME: {existing.name} already has a token (role {existing.role}); revoke it first "
        f"(`clarity team user revoke {existing.name}`) to issue a new one"
    )
