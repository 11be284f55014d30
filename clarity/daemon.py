"""Running the one daemon: its storage lock, its socket, and starting it for a client.

Exactly one daemon may own a storage root. The lock is an ``flock`` on ``<root>/clarity.lock``:
the kernel drops it when the process dies, however it dies, so a crashed daemon never leaves a
stale lock behind. The file also records the pid and URL, so ``clarity status`` can say who
holds it and a client finds the daemon on whatever port it runs (``clarity.daemon_lookup``).

Start-up says "serving" only once the lock is held, the port bound and the store open, and
"ready" (with the dashboard's URL) once the model has loaded.
"""

from __future__ import annotations

import contextlib
import faulthandler
import fcntl
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

from clarity.config import ConfigError, Settings
from clarity.daemon_lookup import (
    URL_ENV,
    daemon_url,
    diagnose,
    explicit_url,
    is_configured,
    is_healthy,
    lock_is_held,
    open_private,
    port_taken,
)
from clarity.http.loopback import LOOPBACK_HOSTS

T = TypeVar("T")

log = logging.getLogger(__name__)


class DaemonError(RuntimeError):
    """A start-up problem phrased for one line on the terminal."""


def opened(open_it: Callable[[], T], what: str) -> T:
    """``open_it()``, with what stops it said in one line: a store another process holds names
    that process (``StoreLocked``); anything else is "cannot open <what>: <reason>"."""
    from clarity.store import StoreLocked

    try:
        return open_it()
    except StoreLocked as exc:
        raise DaemonError(str(exc)) from exc
    except Exception as exc:
        raise DaemonError(f"cannot open {what}: {exc}") from exc


class StorageLock:
    """Exclusive ownership of a storage root for the life of this process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path = settings.storage.lock_file
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        root = self.settings.storage.root
        try:
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
            handle = open_private(self.path, "a+")  # held for the process lifetime
        except OSError as exc:
            raise DaemonError(f"storage root {root} is not writable: {exc}") from exc
        for attempt in range(5):  # `clarity status`/`stop` probe the lock for microseconds
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt < 4:
                    time.sleep(0.1)
        else:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            info = json.loads(holder) if holder.startswith("{") else {}
            who = f"pid {info['pid']}, {info.get('url', '?')}" if "pid" in info else "another process"
            raise DaemonError(
                f"storage {root} is already used by another Clarity daemon ({who}); "
                "stop it with `clarity stop`, or point this one at another CLARITY_STORAGE__ROOT"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps({"pid": os.getpid(), "url": daemon_url(self.settings), "started": time.time()})
        )
        handle.flush()
        os.chmod(self.path, 0o600)
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.seek(0)
                self._handle.truncate()
                fcntl.flock(self._handle, fcntl.LOCK_UN)
                self._handle.close()
            self._handle = None


def check_bind(settings: Settings) -> None:
    token = settings.server.token
    if token is not None and not token.get_secret_value().strip():
        raise ConfigError("config server.token: is empty; set a real secret (CLARITY_TOKEN) or unset it")
    if settings.server.host not in LOOPBACK_HOSTS and not settings.server.token:
        raise ConfigError(
            f"config server.host={settings.server.host!r}: binding beyond loopback needs a token; "
            "set CLARITY_TOKEN (or server.token) and send it as 'Authorization: Bearer <token>'"
        )


PRIVATE_UMASK = 0o077


def make_private(root: Path) -> None:
    """Storage is readable by its owner only: new files through the umask, and anything an older
    version or another tool left group- or world-readable is tightened once at start-up.

    Only what Clarity made is touched (``config.owns``): a root that also holds other files
    keeps them, and itself, as they are, and the start-up log says so."""
    from clarity.config import owns

    os.umask(PRIVATE_UMASK)
    uid = os.getuid()
    entries = sorted(root.iterdir())
    foreign = [entry.name for entry in entries if not owns(entry.name)]
    if foreign:
        log.warning(
            "storage root %s also holds %d entries that are not Clarity's (%s): left as they are; "
            "give Clarity a directory of its own (storage.root)",
            root,
            len(foreign),
            ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else ""),
        )
    own = [entry for entry in entries if owns(entry.name)]
    for path in ([] if foreign else [root]) + [p for entry in own for p in (entry, *entry.rglob("*"))]:
        try:
            info = path.lstat()
            if info.st_uid == uid and not path.is_symlink() and info.st_mode & 0o077:
                path.chmod(info.st_mode & 0o700)
        except OSError as exc:  # vanished or not ours: worth a line, never a failed start
            log.warning("cannot make %s private: %s", path, exc)


def bind_socket(settings: Settings) -> socket.socket:
    host, port = settings.server.host, settings.server.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this on Linux. Without it a keep-alive client waits out
    # Nagle's algorithm against delayed ACKs: 40 ms added to every hook call.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise DaemonError(
            f"cannot listen on {host}:{port}: {exc.strerror}; another program holds the port "
            "(`clarity status` tells whether it is Clarity), or choose another with --port"
        ) from exc
    sock.set_inheritable(True)
    return sock


def _graceful_server(config: Any, on_started: Callable[[], None]) -> Any:
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """uvicorn re-raises SIGTERM after shutdown, which would kill us before the store is
        closed and the lock released; we finish our own cleanup and exit 0 instead."""

        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            self._captured_signals.clear()

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                on_started()

    return GracefulServer(config)


class _TrainingOnlyWarning(logging.Filter):
    """transformers warns at every start that the encoder's ``loss_type=None`` is unrecognised
    and a causal-LM loss will be used: a training setting that inference never reads."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "loss_type=" not in record.getMessage()


def quiet_third_party_logs() -> None:
    """Drop the third-party start-up lines that mislead (each filter names its one message)."""
    logger = logging.getLogger("transformers.modeling_utils")
    if not any(isinstance(f, _TrainingOnlyWarning) for f in logger.filters):
        logger.addFilter(_TrainingOnlyWarning())


def _stderr_line(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _announce_when_ready(service: Any, url: str, started: float, announce: Callable[[str], None]) -> None:
    """One line once the model has loaded (or failed to): the daemon is ready, and where."""
    from clarity.embedding import ModelNotReady

    try:
        service.embedder.wait_ready()
    except ModelNotReady as exc:
        announce(
            f"clarity: serving without the embedding model (lexical search only): {exc}; dashboard {url}/"
        )
        return
    announce(f"clarity: ready in {time.monotonic() - started:.1f}s at {url}; dashboard {url}/")


def check_space_at_start(settings: Settings) -> None:
    """Say in the log when the store starts under its free-space floor (it then serves reads
    and refuses writes), and on a RAM-backed filesystem load the engine once in a child first.

    tmpfs allocates a page even when a hole is only *read* through a mapping, and the engine maps
    its in-RAM files whole when it loads them: a shard written since the last start can need tens
    of MB there. Short of them, loading dies with SIGBUS; in a child that is a clear error
    instead, and after a child loaded the files they are allocated, so the daemon's load is safe.
    """
    from clarity.store.edge.manifest import live_shards
    from clarity.store.space import SpaceGuard, filesystem_type, ram_backed

    root, engine_dir = settings.storage.root, settings.storage.qdrant_dir
    space = SpaceGuard(root, settings.storage.min_free_bytes)
    free = space.free_bytes()
    if free < space.floor:
        log.warning(
            "storage %s has %.1f MB free, under the floor of %.1f MB (storage.min_free_bytes): serving "
            "reads and refusing writes until space is freed there (or the floor is lowered)",
            root,
            free / 1e6,
            space.floor / 1e6,
        )
    shards = sorted(live_shards(engine_dir) or ())
    if not shards or not ram_backed(engine_dir):
        return
    try:
        probe = subprocess.run(
            [sys.executable, "-m", "clarity.store.space", *(str(engine_dir / name) for name in shards)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except subprocess.TimeoutExpired:
        raise DaemonError(
            f"loading the store at {engine_dir} took over 600 s in a trial run; see its files"
        ) from None
    if probe.returncode != 0:
        how = f"signal {-probe.returncode}" if probe.returncode < 0 else probe.stderr.strip()[-300:]
        raise DaemonError(
            f"cannot load the store at {engine_dir}: it is on {filesystem_type(engine_dir)}, which takes "
            f"RAM for the engine's files as they load, and {free / 1e6:.1f} MB free was not enough (the "
            f"loader died: {how}); free space there and start again; the stored memories are intact"
        )


def run_daemon(settings: Settings, announce: Callable[[str], None] = _stderr_line) -> None:
    """Own the storage, bind the port, serve until a signal. Blocking.

    ``announce`` gets two lines: "serving" once the lock is held, the port bound and the store
    open (never before a start that then fails there), and "ready" when the model has loaded."""
    import threading

    from clarity import __version__
    from clarity.embedding import create_embedding_provider

    check_bind(settings)
    started = time.monotonic()
    quiet_third_party_logs()
    # A fatal signal (SIGBUS from a memory-mapped write on a full disk, SIGSEGV) still leaves
    # the Python stacks on stderr, which is the log file when the daemon runs in the background.
    faulthandler.enable(all_threads=True)
    settings.storage.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    make_private(settings.storage.root)
    lock = StorageLock(settings) if settings.engine == "embedded" else None
    if lock is not None:
        lock.acquire()
    try:
        sock = bind_socket(settings)
        settings.storage.cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if settings.engine == "embedded":
            check_space_at_start(settings)
        # The model loads while the web stack and the store are imported and opened (0.8 s of
        # imports): ready 1.5 s after start instead of 1.8 s (docs/benchmarks.md, first hour).
        embedder = create_embedding_provider(settings.embedding, settings.storage.cache_dir)
        embedder.start_loading()
        import uvicorn

        from clarity.http.app import create_app
        from clarity.memory import MemoryService
        from clarity.store import open_store

        store = opened(lambda: open_store(settings), f"the {settings.engine} store")
        service = MemoryService(settings, store, embedder)
        team = None
        if settings.team.url:  # the team tier's outbox and replica (docs/team.md); httpx only then
            from clarity.team.sync import start_team

            try:
                team = start_team(settings, service)
            except (OSError, ValueError) as exc:
                service.close()
                raise DaemonError(f"cannot start the team tier: {exc}") from exc
        app = create_app(settings, service)
        config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
        url = daemon_url(settings)
        ready = threading.Thread(
            target=_announce_when_ready,
            args=(service, url, started, announce),
            name="clarity-ready",
            daemon=True,
        )
        server = _graceful_server(config, ready.start)
        where = settings.qdrant.url or str(settings.storage.qdrant_dir)
        announce(
            f"clarity {__version__}: serving {url} ({settings.engine} engine at {where}); loading the model"
        )
        try:
            server.run(sockets=[sock])
        finally:
            if team is not None:
                team.stop()
            service.close()
    finally:
        if lock is not None:
            lock.release()


# -- clients that need a daemon ---------------------------------------------------------------


def _wait_healthy(settings: Settings, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if is_healthy(settings):
            return True
        time.sleep(0.1)
    return False


def ensure_daemon(settings: Settings, wait_seconds: float = 30.0) -> None:
    """Start a daemon in the background unless one answers; a file lock makes racing starters wait."""
    if is_healthy(settings):
        return
    named = explicit_url()
    if named and not is_configured(named, settings):
        raise DaemonError(
            f"no Clarity daemon answers at {named} ({URL_ENV} or --url); start it there, or unset "
            f"{URL_ENV} to use (and start) the configured {daemon_url(settings)}"
        )
    settings.storage.app_data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    start_lock = settings.storage.app_data_dir / "start.lock"
    with open_private(start_lock, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            if is_healthy(settings):
                return
            if lock_is_held(settings):  # a daemon is starting (or hung): wait for it, do not race it
                if _wait_healthy(settings, wait_seconds):
                    return
                raise DaemonError("; ".join(diagnose(settings)))
            if port_taken(settings):
                raise DaemonError("; ".join(diagnose(settings)))
            log_path = settings.storage.app_data_dir / "daemon.log"
            with open_private(log_path, "ab") as log_file:
                process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "clarity",
                        "serve",
                        "--host",
                        settings.server.host,
                        "--port",
                        str(settings.server.port),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=log_file,
                    start_new_session=True,
                )
            deadline = time.monotonic() + wait_seconds
            while time.monotonic() < deadline:
                if is_healthy(settings):
                    return
                if process.poll() is not None:
                    tail = Path(log_path).read_text(encoding="utf-8", errors="replace")[-400:]
                    raise DaemonError(f"clarity serve exited with {process.returncode}: {tail.strip()}")
                time.sleep(0.1)
            raise DaemonError(f"clarity serve did not answer within {wait_seconds:.0f}s; see {log_path}")
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
