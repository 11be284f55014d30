"""The daemon in real use: many windows starting at once, crashes, foreign ports, long sessions."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx
import pytest
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters

from .daemon_util import Daemon, free_port

pytestmark = pytest.mark.slow
PAYLOADS = Path(__file__).parent / "fixtures" / "hook_payloads"


def serve_processes(port: int) -> list[int]:
    """Every `clarity serve` process listening on this port, whoever started it."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            b"serve" in argv
            and any(a.endswith(b"clarity") for a in argv)
            and (str(port).encode() in argv or f"CLARITY_SERVER__PORT={port}".encode() in env)
        ):
            found.append(int(entry.name))
    return found


def test_five_windows_at_once_start_exactly_one_daemon(tmp_path: Path) -> None:
    env = {**Daemon(tmp_path / "root", free_port()).env(), "PATH": os.environ.get("PATH", "")}
    port = int(env["CLARITY_SERVER__PORT"])
    results: list[str] = []

    async def window(n: int) -> None:
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "clarity", "mcp"], env=env, cwd=str(tmp_path)
        )
        async with Client(params) as client:
            stored = await client.call_tool(
                "store_memory", {"content": f"window {n} was here", "scope": "global", "detail": True}
            )
            assert not stored.is_error, stored.content
            results.append(stored.structured_content["id"])

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for n in range(5):
                group.start_soon(window, n)

    try:
        anyio.run(main)
        assert len(set(results)) == 5  # five successful calls
        assert len(serve_processes(port)) == 1, serve_processes(port)
    finally:
        for pid in serve_processes(port):
            os.kill(pid, signal.SIGTERM)


def clarity(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clarity", *args],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_stale_lock_after_a_crash_is_named_and_harmless(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "root", free_port()).start()
    daemon.wait_healthy()
    pid = daemon.process.pid if daemon.process else 0
    daemon.stop(signal.SIGKILL)
    status = clarity(daemon.env(), "status")
    assert status.returncode == 1
    text = " ".join(status.stderr.split())
    assert f"stale lock file from pid {pid} (gone)" in text and "Traceback" not in text
    restarted = Daemon(tmp_path / "root", daemon.port).start()  # takes the storage over
    try:
        restarted.wait_healthy()
        assert clarity(restarted.env(), "status").returncode == 0
    finally:
        restarted.stop()


def test_port_held_by_a_silent_program_is_named_with_the_fix(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()  # accepts connections, never answers
        port = squatter.getsockname()[1]
        env = Daemon(tmp_path / "root", port).env()
        status = clarity(env, "status")
        assert status.returncode == 1
        assert f"port {port} is held by another program" in " ".join(status.stderr.split())
        started = time.monotonic()
        start = clarity(env, "service", "start")
        assert start.returncode != 0 and f"port {port} is held by another program" in " ".join(
            start.stderr.split()
        )
        assert time.monotonic() - started < 20  # reported at once, not after a start timeout


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def _rss_and_threads(pid: int) -> tuple[int, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["Threads"])


def test_process_count_and_memory_stay_flat_over_a_long_session(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "root", free_port()).start()
    try:
        daemon.wait_ready()
        assert daemon.process is not None
        pid = daemon.process.pid
        prompt = json.loads((PAYLOADS / "UserPromptSubmit.json").read_text())
        tool = json.loads((PAYLOADS / "PostToolUse.json").read_text())
        with httpx.Client(base_url=daemon.url, timeout=30) as http:

            def session(calls: int, offset: int) -> None:
                for i in range(calls):
                    n = offset + i
                    http.post(
                        "/hooks/PostToolUse",
                        json={
                            **tool,
                            "cwd": str(tmp_path),
                            "tool_input": {"command": f"make target-{n % 50}"},
                        },
                    )
                    http.post(
                        "/hooks/UserPromptSubmit",
                        json={**prompt, "cwd": str(tmp_path), "prompt": f"how do I build target {n % 50}?"},
                    )
                    http.post(
                        "/api/memories",
                        json={
                            "content": f"session fact {n}: build target-{n} takes {n % 90} s",
                            "scope": "global",
                        },
                    )

            session(150, 0)  # warm-up: caches, the model's first allocations
            time.sleep(1)
            rss_before, threads_before = _rss_and_threads(pid)
            session(450, 150)
            time.sleep(1)
            rss_after, threads_after = _rss_and_threads(pid)
        growth_mb = (rss_after - rss_before) / 1e6
        print(
            f"RSS {rss_before / 1e6:.0f} -> {rss_after / 1e6:.0f} MB over 1350 calls; threads {threads_before} -> {threads_after}"
        )
        assert growth_mb < 40, f"RSS grew {growth_mb:.0f} MB"
        assert threads_after <= threads_before + 2
        assert _children(pid) == []  # nothing spawned outlives its job
    finally:
        daemon.stop()
