"""Where a storage root's daemon is: its lock file, the URL a client should use, why none answers.

Split from ``clarity.daemon`` so the client side (every CLI command, ``clarity status``) reads
the lock file and finds the daemon without the server side's imports. A client looks, in order,
at the URL the user named (``--url``, which sets ``CLARITY_URL`` for its run), the URL recorded
in ``<root>/clarity.lock`` while the daemon holding the lock answers (a daemon started on another
port), then the configured host and port.

Requests go over the standard library's ``http.client``: it imports in a few milliseconds where
httpx takes 70 ms of a client command's 0.3 s start (scripts/bench/cli_start.py), and a client
makes one or two requests on loopback, with nothing to pool, retry or negotiate.
"""

from __future__ import annotations

import fcntl
import http.client
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from clarity.config import ConfigError, SettingsModel
from clarity.http.loopback import LOOPBACK_HOSTS

# What a request that did not get an answer raises: refused, timed out, reset, a broken reply.
HTTP_ERRORS = (OSError, http.client.HTTPException)


@contextmanager
def open_request(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float | None = 5.0,
) -> Iterator[http.client.HTTPResponse]:
    """One request on a connection of its own; the response, its body not read yet. Raises one of
    ``HTTP_ERRORS`` when no answer comes."""
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname or "", parts.port, timeout=timeout)
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request(method, target, body=body, headers=headers or {})
        yield connection.getresponse()
    finally:
        connection.close()


def fetch(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, bytes]:
    """One request: its status and body."""
    with open_request(method, url, body, headers, timeout) as response:
        return response.status, response.read()


def daemon_url(settings: SettingsModel) -> str:
    """The configured address as a client reaches it (an unspecified bind address is loopback)."""
    host = settings.server.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.server.port}"


URL_ENV = "CLARITY_URL"  # also what a client command's --url sets for its run


def explicit_url() -> str | None:
    """The daemon URL the user named (``--url`` or ``CLARITY_URL``), checked; None if none."""
    value = os.environ.get(URL_ENV, "").strip()
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{URL_ENV}={value!r} (or --url): expected the daemon's http://HOST:PORT")
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        raise ConfigError(f"{URL_ENV}={value!r} (or --url): the port is not a number 1..65535") from None
    return value.rstrip("/")


def client_url(settings: SettingsModel) -> str:
    """Where a client finds the daemon of this storage root: the URL the user named, else the
    URL in the lock file while its daemon holds the lock and answers (started on another port),
    else the configured host and port. Only the second costs a request, and only when the lock
    file names another URL than the configured one."""
    named = explicit_url()
    if named:
        return named
    configured = daemon_url(settings)
    locked = read_lock_info(settings).get("url")
    if isinstance(locked, str) and locked != configured and lock_is_held(settings) and answers(locked):
        return locked
    return configured


def answers(url: str, timeout: float = 0.5) -> bool:
    """A Clarity daemon answers ``/healthz`` at ``url``."""
    try:
        return fetch("GET", f"{url}/healthz", timeout=timeout)[0] == 200
    except HTTP_ERRORS:
        return False


def read_lock_info(settings: SettingsModel) -> dict[str, Any]:
    try:
        return dict(json.loads(settings.storage.lock_file.read_text(encoding="utf-8") or "{}"))
    except (OSError, ValueError):
        return {}


def lock_is_held(settings: SettingsModel) -> bool:
    """True while some process owns the storage root (what `clarity stop` waits on)."""
    try:
        with open_private(settings.storage.lock_file, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False
    except OSError:
        return False


def port_taken(settings: SettingsModel, timeout: float = 0.5) -> bool:
    """Something accepts connections on the daemon's address (Clarity or not)."""
    try:
        with socket.create_connection((settings.server.host, settings.server.port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def diagnose(settings: SettingsModel) -> list[str]:
    """Why no daemon answers, each with its fix: a daemon at another URL than the one asked, a
    stale lock, a hung daemon, a foreign port. A daemon that answers is never called hung."""
    url = client_url(settings)
    info = read_lock_info(settings)
    pid, locked = info.get("pid"), info.get("url")
    root = settings.storage.root
    problems = []
    if lock_is_held(settings):
        if isinstance(locked, str) and locked != url and answers(locked, timeout=2):
            problems.append(
                f"the daemon of the storage {root} (pid {pid}) answers at {locked}, not at {url}: "
                f"pass --url {locked}, or unset {URL_ENV}"
            )
        elif answers(url, timeout=3):  # only slow to answer (a busy machine): not hung
            problems.append(f"the daemon at {url} answers, but slowly; try again")
        else:
            problems.append(
                f"daemon pid {pid} holds the storage {root} but does not answer at {url}; "
                f"if it is hung, `clarity stop` (or `kill -9 {pid}`) ends it without losing data"
                if isinstance(pid, int)
                else f"a process holds the storage {root} but does not answer at {url}"
            )
    elif isinstance(pid, int):
        state = "still running but not as its daemon" if pid_alive(pid) else "gone"
        problems.append(
            f"stale lock file from pid {pid} ({state}), left by a crash: harmless, the next `clarity serve` "
            "takes the storage over"
        )
    if port_taken(settings) and not lock_is_held(settings):
        port = settings.server.port
        problems.append(
            f"port {port} is held by another program that does not answer as Clarity "
            f"(see `ss -ltnp 'sport = :{port}'`); free it, or run Clarity on another port "
            "with `clarity serve --port N` / CLARITY_SERVER__PORT=N"
        )
    return problems


def open_private(path: Path, mode: str) -> IO[Any]:
    """Open (creating if needed) a file only its owner can read, whatever the caller's umask."""
    flags = os.O_RDWR | os.O_CREAT | os.O_APPEND
    handle = os.fdopen(os.open(path, flags, 0o600), mode, encoding=None if "b" in mode else "utf-8")
    os.fchmod(handle.fileno(), 0o600)
    return handle


def headers_for(settings: SettingsModel, project: str | None = None) -> dict[str, str]:
    """The token (if one is set) and the project a request speaks for."""
    headers = {}
    if settings.server.token:
        headers["Authorization"] = f"Bearer {settings.server.token.get_secret_value()}"
    if project:
        headers["X-Clarity-Project"] = project
    return headers


def is_healthy(settings: SettingsModel, timeout: float = 0.5) -> bool:
    """The daemon a client of this storage root would talk to (``client_url``) answers."""
    return answers(client_url(settings), timeout)


def is_configured(url: str, settings: SettingsModel) -> bool:
    """``url`` names the configured address (``localhost`` for 127.0.0.1 too), where a client
    may start a daemon: one named elsewhere (another machine, a container) is never started here."""
    parts = urlsplit(url)
    host = settings.server.host
    local = parts.hostname in LOOPBACK_HOSTS and host in LOOPBACK_HOSTS | {"0.0.0.0", "::"}
    same_host = parts.hostname == host or local
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme == "http" and same_host and port == settings.server.port and parts.path in ("", "/")
