"""What `clarity serve` prints (issue 25): "serving" only once the storage and the port are its
own, one "ready" line with the dashboard's URL when the model has loaded, no misleading
third-party warning, and no escape codes in a log file even when colour is forced."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from .daemon_util import Daemon, free_port


def wait_for_line(daemon: Daemon, marker: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker in daemon.log():
            return daemon.log()
        time.sleep(0.1)
    raise AssertionError(f"no {marker!r} line:\n{daemon.log()}")


def exit_code(daemon: Daemon, timeout: float = 120) -> int:
    assert daemon.process is not None
    try:
        return daemon.process.wait(timeout)
    finally:
        daemon.stop()


def test_serving_then_one_ready_line_with_the_dashboard(tmp_path: Path) -> None:
    # Inherited FORCE_COLOR (Node-based tools set it) must not put escape codes in the log file.
    daemon = Daemon(tmp_path / "root", free_port(), env={"FORCE_COLOR": "1", "TTY_COMPATIBLE": "1"})
    with daemon.running(ready=True):
        log = wait_for_line(daemon, "ready in")
    lines = log.splitlines()
    serving = [i for i, line in enumerate(lines) if f"serving {daemon.url} " in line]
    ready = [i for i, line in enumerate(lines) if " ready in " in line]
    assert len(serving) == 1 and len(ready) == 1 and serving[0] < ready[0], log
    assert f"at {daemon.url}; dashboard {daemon.url}/" in lines[ready[0]]
    assert "loss_type" not in log and "\x1b[" not in log, log
    assert "Loading weights" not in log, log  # transformers' tqdm bar


def test_a_start_on_a_taken_port_never_says_serving(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        daemon = Daemon(tmp_path / "root", squatter.getsockname()[1]).start()
        assert exit_code(daemon) == 1
    assert "cannot listen on" in daemon.log() and "serving" not in daemon.log(), daemon.log()


def test_a_start_on_a_storage_in_use_never_says_serving(tmp_path: Path) -> None:
    with Daemon(tmp_path / "root", free_port()).running():
        second = Daemon(tmp_path / "root", free_port()).start()
        assert exit_code(second) == 1
    log = second.log()
    assert "already used by another Clarity daemon" in log and "serving" not in log, log
