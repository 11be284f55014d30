"""The plugin's hook client, plugin/scripts/hook.sh (and session_start.py behind it), run as
Claude Code runs it: ``sh hook.sh EVENT --url=... --timeout=N`` with the event JSON on stdin.

Claude Code shows the user every hook that fails, so whatever the daemon does (answers, is
down, hangs) the script must exit 0, print nothing on stderr and nothing on stdout but the
daemon's reply, and return within its budget. Both of its ways are run: curl (the fast one)
and the Python fallback (no curl on PATH, or a token to send). At SessionStart with nothing
listening it starts a daemon through ``clarity service start`` and does not wait for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clarity.hooks.events import EVENTS

from ..daemon_util import free_port
from .claude_cli import REPO_ROOT
from .hook_capture import HookSink, blackhole

HOOK_SH = REPO_ROOT / "plugin" / "scripts" / "hook.sh"
PAYLOADS = REPO_ROOT / "tests" / "fixtures" / "hook_payloads"
WAYS = ["curl", "python"]


def payload(event: str) -> bytes:
    return (PAYLOADS / f"{event}.json").read_bytes()


@pytest.fixture
def bin_dirs(tmp_path: Path) -> dict[str, str]:
    """PATH for each way: the machine's PATH (curl on it), or a directory holding only python3."""
    if shutil.which("curl") is None:
        pytest.fail("curl is needed for the plugin's fast way (it is on every supported system)")
    only_python = tmp_path / "only-python"
    only_python.mkdir()
    (only_python / "python3").symlink_to(sys.executable)
    return {"curl": os.environ["PATH"], "python": str(only_python)}


def run_hook(
    event: str,
    url: str,
    path: str,
    home: Path,
    timeout: float = 2,
    body: bytes | None = None,
    **extra: str,
) -> tuple[subprocess.CompletedProcess[bytes], float]:
    env = {"PATH": path, "HOME": str(home), **extra}
    started = time.monotonic()
    done = subprocess.run(
        ["/bin/sh", str(HOOK_SH), event, f"--url={url}", f"--timeout={timeout}"],
        input=payload(event) if body is None else body,
        capture_output=True,
        env=env,
        timeout=timeout + 10,
        check=False,
    )
    return done, time.monotonic() - started


@pytest.fixture
def fake_clarity(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A `clarity` that records how it was started (its arguments, then the CLAUDE* variables it
    inherited), then takes its time like a daemon start; ended with the test."""
    marker, pids = tmp_path / "started.txt", tmp_path / "fake-clarity.pids"
    script = tmp_path / "fake-clarity"
    script.write_text(
        f'#!/bin/sh\nPATH=/usr/bin:/bin\necho $$ >> "{pids}"\necho "$@" >> "{marker}"\n'
        f'env | grep ^CLAUDE | sort >> "{marker}"\nexec sleep 30\n'
    )
    script.chmod(0o755)
    yield script, marker
    for pid in pids.read_text().split() if pids.exists() else []:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGTERM)


@pytest.mark.parametrize("way", WAYS)
def test_posts_every_event_and_prints_only_the_reply(
    way: str, bin_dirs: dict[str, str], tmp_path: Path
) -> None:
    context = {"hookSpecificOutput": {"hookEventName": "UserPromptSubmit", "additionalContext": "remembered"}}
    with HookSink({"UserPromptSubmit": context}, responder=None) as sink:
        sink.responder = lambda post: context if post.path.endswith("/UserPromptSubmit") else {}
        for event in EVENTS:
            done, _ = run_hook(event, sink.url, bin_dirs[way], tmp_path)
            assert done.returncode == 0 and done.stderr == b"", done
            expected = context if event == "UserPromptSubmit" else None
            assert (json.loads(done.stdout) if done.stdout.strip() else None) == expected, (
                event,
                done.stdout,
            )
        posts = list(sink.posts)
    assert [p.path for p in posts] == [f"/hooks/{event}" for event in EVENTS]
    # byte for byte (but trailing newlines, which the shell drops)
    assert [p.raw.rstrip(b"\n") for p in posts] == [payload(event).rstrip(b"\n") for event in EVENTS]
    assert all(p.headers["content-type"] == "application/json" for p in posts)


@pytest.mark.parametrize("way", WAYS)
def test_an_error_answer_prints_nothing(way: str, bin_dirs: dict[str, str], tmp_path: Path) -> None:
    with HookSink(responder=lambda post: (500, {"error": "boom"})) as sink:
        done, _ = run_hook("UserPromptSubmit", sink.url, bin_dirs[way], tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")


@pytest.mark.parametrize("way", WAYS)
def test_nothing_listening_is_silent_and_session_start_starts_a_daemon_without_waiting(
    way: str, bin_dirs: dict[str, str], tmp_path: Path, fake_clarity: tuple[Path, Path]
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    clarity, marker = fake_clarity
    session = {"CLAUDE_PROJECT_DIR": "/p", "CLAUDE_CODE_ENTRYPOINT": "cli", "CLAUDE_CONFIG_DIR": "/c"}
    for event in EVENTS:
        done, took = run_hook(
            event, url, bin_dirs[way], tmp_path, timeout=5, CLARITY_BIN=str(clarity), **session
        )
        assert (done.returncode, done.stdout, done.stderr) == (0, b"", b""), (event, done)
        assert took < 1.0, (event, took)  # the daemon's start is never waited for
    deadline = time.monotonic() + 5
    while len(marker.read_text().splitlines() if marker.exists() else []) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    # started once, for SessionStart only, on the hooks' own address, without the session's identity
    assert marker.read_text().splitlines() == [
        f"service start --wait 60 --host 127.0.0.1 --port {port}",
        "CLAUDE_CONFIG_DIR=/c",
    ]


@pytest.mark.parametrize("way", WAYS)
def test_learning_events_that_find_nobody_are_kept_for_the_daemon(
    way: str, bin_dirs: dict[str, str], tmp_path: Path, fake_clarity: tuple[Path, Path]
) -> None:
    """The storage root's app-data/pending-hooks.jsonl gets one line per learning event, private
    to its user; the events whose reply is all they are for are not kept."""
    root = tmp_path / "store"
    url = f"http://127.0.0.1:{free_port()}"
    clarity, _ = fake_clarity
    for event in EVENTS:
        done, _ = run_hook(
            event, url, bin_dirs[way], tmp_path, CLARITY_STORAGE__ROOT=str(root), CLARITY_BIN=str(clarity)
        )
        assert (done.returncode, done.stdout, done.stderr) == (0, b"", b""), (event, done)
    kept = root / "app-data" / "pending-hooks.jsonl"
    lines = kept.read_bytes().splitlines()
    assert [json.loads(line) for line in lines] == [
        json.loads(payload(e)) for e in ("PostToolUse", "PostToolUseFailure", "Stop", "SessionEnd")
    ]
    assert kept.stat().st_mode & 0o777 == 0o600 and (root / "app-data").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("way", WAYS)
def test_a_daemon_that_never_answers_costs_the_budget_and_nothing_more(
    way: str, bin_dirs: dict[str, str], tmp_path: Path, fake_clarity: tuple[Path, Path]
) -> None:
    clarity, marker = fake_clarity
    with blackhole() as port:
        for event in ("SessionStart", "PreToolUse"):
            done, took = run_hook(
                event,
                f"http://127.0.0.1:{port}",
                bin_dirs[way],
                tmp_path,
                timeout=1,
                CLARITY_BIN=str(clarity),
            )
            assert (done.returncode, done.stdout, done.stderr) == (0, b"", b""), (event, done)
            assert 0.9 < took < 2.0, (event, took)
    assert not marker.exists()  # something holds the port: not a daemon to start


def test_without_clarity_installed_session_start_says_so(bin_dirs: dict[str, str], tmp_path: Path) -> None:
    """No daemon and no `clarity` to start one: memory cannot work, so the user is told once
    per session (a systemMessage, never seen by the model); no other event says anything."""
    url = f"http://127.0.0.1:{free_port()}"
    path = f"{bin_dirs['python']}{os.pathsep}/usr/bin{os.pathsep}/bin"
    done, _ = run_hook("SessionStart", url, path, tmp_path)
    assert done.returncode == 0 and done.stderr == b""
    assert json.loads(done.stdout)["systemMessage"].startswith("Clarity: no daemon answers")
    done, _ = run_hook("UserPromptSubmit", url, path, tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")


def test_a_token_is_sent_by_python_not_on_curls_command_line(
    bin_dirs: dict[str, str], tmp_path: Path
) -> None:
    with HookSink(responder=lambda post: {}) as sink:
        done, _ = run_hook("Stop", sink.url, bin_dirs["curl"], tmp_path, CLARITY_TOKEN="s3cret-token")
        [post] = sink.posts
    assert done.returncode == 0 and done.stderr == b""
    assert post.headers["authorization"] == "Bearer s3cret-token"


@pytest.mark.parametrize("value", ["1", "TRUE", "yes", "On"])
def test_clarity_disabled_posts_nothing(value: str, bin_dirs: dict[str, str], tmp_path: Path) -> None:
    with HookSink(responder=lambda post: {}) as sink:
        for way in WAYS:
            done, _ = run_hook("UserPromptSubmit", sink.url, bin_dirs[way], tmp_path, CLARITY_DISABLED=value)
            assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")
        posts: list[Any] = list(sink.posts)
    assert posts == []


def test_after_one_timeout_hooks_skip_the_daemon_and_keep_learning_events(
    bin_dirs: dict[str, str], tmp_path: Path
) -> None:
    """The curl way: one hook waits out its budget on a daemon that never answers, the next ones
    do not ask it (the connections it saw are counted) and learning events are kept instead."""
    root = tmp_path / ".claude" / "alunai-clarity"
    (root / "app-data").mkdir(parents=True)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # never accepted: connections wait in the backlog, unanswered
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        first, _ = run_hook("UserPromptSubmit", url, bin_dirs["curl"], tmp_path, timeout=1)
        second, _ = run_hook("PreToolUse", url, bin_dirs["curl"], tmp_path, timeout=1)
        learned, _ = run_hook("PostToolUse", url, bin_dirs["curl"], tmp_path, timeout=1)
        listener.settimeout(0.5)
        seen = 0
        with contextlib.suppress(TimeoutError):
            while True:
                listener.accept()[0].close()
                seen += 1
    finally:
        listener.close()
    for done in (first, second, learned):
        assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")
    assert seen == 1, seen
    assert (root / "app-data" / "hooks-unanswered").exists()
    kept = (root / "app-data" / "pending-hooks.jsonl").read_bytes().splitlines()
    assert [json.loads(line) for line in kept] == [json.loads(payload("PostToolUse"))]
