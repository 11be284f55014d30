"""Start and stop real ``clarity serve`` processes for tests."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

# Every daemon a test starts, so that none outlives the session whatever fails (conftest's
# pytest_sessionfinish and an atexit hook both call stop_all()).
_started: list[Daemon] = []


def run_clarity(
    env: dict[str, str], *args: str, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m clarity ARGS`` as a user runs it: its own process, no stdin, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "clarity", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Daemon:
    """A real daemon process on loopback with its own storage root and config file."""

    def __init__(
        self, root: Path, port: int, env: dict[str, str] | None = None, args: list[str] | None = None
    ):
        self.root = root
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.extra_env = env or {}
        self.args = args or []
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = root / f"daemon-{port}.log"

    def env(self) -> dict[str, str]:
        # The daemon tests exercise the embedded engine (its storage lock, its index builds);
        # a QDRANT_URL from CI is for the server-engine store tests, so it is not passed on.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("CLARITY_") and k not in ("QDRANT_URL", "QDRANT_API_KEY")
        }
        env.update(
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            CLARITY_STORAGE__ROOT=str(self.root),
            CLARITY_SERVER__PORT=str(self.port),
            MEMORY_CONFIG_PATH=str(self.root / "config.json"),
        )
        env.update(self.extra_env)
        return env

    def start(self) -> Daemon:
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            [sys.executable, "-m", "clarity", "serve", *self.args],
            env=self.env(),
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        _started.append(self)
        return self

    @contextlib.contextmanager
    def running(self, ready: bool = False) -> Iterator[Daemon]:
        """Started, healthy (or ready: the model loaded), and stopped on the way out whatever failed."""
        self.start()
        try:
            if ready:
                self.wait_ready()
            else:
                self.wait_healthy()
            yield self
        finally:
            self.stop()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def wait_healthy(self, timeout: float = 60) -> float:
        return self._wait_for("/healthz", "healthy", time.monotonic(), timeout, answer_within=1, every=0.05)

    def wait_ready(self, timeout: float = 180) -> float:
        started = time.monotonic()
        self.wait_healthy(timeout)
        # a loaded machine can be slow to answer while the model loads: keep polling
        return self._wait_for("/readyz", "ready", started, timeout, answer_within=5, every=0.1)

    def _wait_for(
        self, path: str, state: str, started: float, timeout: float, answer_within: float, every: float
    ) -> float:
        """Poll ``path`` until it answers 200; seconds since ``started``. Fails at once if the daemon exits."""
        while time.monotonic() - started < timeout:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"daemon exited {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}{path}", timeout=answer_within).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(every)
        raise AssertionError(f"daemon not {state} after {timeout}s:\n{self.log()}")

    def api(self, method: str, path: str, project: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if project:
            headers["X-Clarity-Project"] = project
        return httpx.request(method, f"{self.url}/api{path}", headers=headers, timeout=60, **kwargs)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def stop_all(under: Path | None = None) -> None:
    """Stop every daemon still running (a failed fixture, an assertion before ``stop()``), and
    with ``under``, any daemon whose storage root lies below it: the ones the CLI started in the
    background for a test (``clarity import`` with no daemon running starts one)."""
    while _started:
        daemon = _started.pop()
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.stop(timeout=10)
    if under is not None:
        for pid in _serving_below(under):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while (left := _serving_below(under)) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _serving_below(root: Path) -> list[int]:
    """Pids of ``clarity serve`` processes whose CLARITY_STORAGE__ROOT is below ``root``."""
    found = []
    prefix = f"CLARITY_STORAGE__ROOT={root}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            if b"clarity" not in b" ".join(command) or b"serve" not in command:
                continue
            if any(item.startswith(prefix) for item in (entry / "environ").read_bytes().split(b"\0")):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


atexit.register(stop_all)
