"""Running the team server, ``clarity serve --team``: its own storage root (so one host can run a
developer daemon and a team server side by side), TLS from ``team.tls_cert``/``team.tls_key``,
and the team app on uvicorn (``clarity.team.server_app``) instead of the daemon's.

Without TLS it binds only a loopback address (a proxy in front terminating TLS, or a test): a
token sent in the clear beyond this machine would let anyone on the path write as its user.
The start-up pieces (storage lock, private files, socket, signal handling) are the daemon's own.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from clarity.config import ConfigError
from clarity.http.loopback import LOOPBACK_HOSTS

if TYPE_CHECKING:
    from clarity.config import Settings

log = logging.getLogger(__name__)

TEAM_PORT = 8443  # `clarity serve --team` without --port: beside a daemon's 8000


def tls_files(settings: Settings) -> tuple[Path, Path] | None:
    """The certificate chain and key to serve with, checked to load; None on loopback without them."""
    team, host = settings.team, settings.server.host
    if (team.tls_cert is None) != (team.tls_key is None):
        raise ConfigError(
            "config team.tls_cert / team.tls_key: set both (the certificate chain and its private key), "
            "or neither"
        )
    if team.tls_cert is None or team.tls_key is None:
        if host not in LOOPBACK_HOSTS:
            raise ConfigError(
                f"config server.host={host!r}: a team server binds beyond loopback only with TLS; set "
                "team.tls_cert and team.tls_key (CLARITY_TEAM__TLS_CERT, CLARITY_TEAM__TLS_KEY), or bind "
                "127.0.0.1 behind a proxy that terminates TLS"
            )
        return None
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(team.tls_cert, team.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"config team.tls_cert={str(team.tls_cert)!r}, team.tls_key={str(team.tls_key)!r}: "
            f"cannot load them: {exc}"
        ) from None
    return team.tls_cert, team.tls_key


def team_url(settings: Settings, tls: bool) -> str:
    host = settings.server.host
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{settings.server.port}"


def run_team_server(settings: Settings, announce: Callable[[str], None]) -> None:
    """Own the storage, bind the port, serve the team app until a signal. Blocking; ConfigError or
    DaemonError with one line when it cannot start."""
    import uvicorn

    from clarity import __version__
    from clarity.daemon import StorageLock, _graceful_server, bind_socket, make_private, opened
    from clarity.team.server_app import TeamServer, create_team_app
    from clarity.team.store import team_collection

    tls = tls_files(settings)
    root = settings.storage.root
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    make_private(root)
    lock = StorageLock(settings) if settings.engine == "embedded" else None
    if lock is not None:
        lock.acquire()
    try:
        sock = bind_socket(settings)
        team = opened(lambda: TeamServer(settings), f"the team server's {settings.engine} store")
        config = uvicorn.Config(
            create_team_app(team),
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=5,
            ssl_certfile=str(tls[0]) if tls else None,
            ssl_keyfile=str(tls[1]) if tls else None,
        )
        where = settings.qdrant.url or str(settings.storage.qdrant_dir)
        url = team_url(settings, tls is not None)
        server = _graceful_server(config, lambda: announce(f"clarity team server: ready at {url}"))
        state = (
            f"state in {root / 'app-data' / 'team'}"
            if settings.engine == "embedded"
            else f"state shared in {team_collection(settings)}_team_*, audit in {root / 'app-data' / 'team'}"
        )
        announce(
            f"clarity {__version__} team server: serving {url} ({settings.engine} engine at {where}; {state})"
        )
        try:
            server.run(sockets=[sock])
        finally:
            team.close()
    finally:
        if lock is not None:
            lock.release()
