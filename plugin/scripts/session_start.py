#!/usr/bin/env python3
"""Clarity plugin: hook.sh's Python side (and the daemon's starter), standard library only.

    python3 session_start.py EVENT [--url=BASE] [--timeout=S]   post stdin to BASE/hooks/EVENT
    python3 session_start.py --start [--url=BASE]               start a daemon in the background

hook.sh runs the first form where curl is missing or ``CLARITY_TOKEN`` is set (sent here as a
bearer token, never on a command line), and the second at SessionStart when nothing listens on
the daemon's port. When nothing listens, a learning event is kept as hook.sh keeps it, in
``<storage root>/app-data/pending-hooks.jsonl`` for the daemon to learn once it answers. Either way it fails silent: it exits 0 and prints only the daemon's reply
(Claude Code's hook output JSON), or a ``systemMessage`` when no ``clarity`` command can be
found at all (memory cannot work then, and the user should know why).

Starting the daemon: ``clarity service start`` in its own session, so it outlives the hook and
the Claude Code session and holds none of Claude Code's pipes; the daemon's own start lock makes
racing sessions start exactly one. The session does not wait for it: a daemon takes seconds to
answer (tests/e2e/test_plugin.py times it), and Claude Code would hold the first
model request for as long. Events of the session reach the daemon once it answers.

The ``clarity`` command is ``$CLARITY_BIN`` if set, else ``clarity`` on PATH, else
``~/.local/bin/clarity`` (where ``uv tool install`` and ``pipx`` put it).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 2.0
_TRUE = ("1", "true", "yes", "on")
# Learning events kept while nothing listens, for the daemon to learn once it answers
# (clarity/hooks/spool.py reads <storage root>/app-data/pending-hooks.jsonl).
KEPT_EVENTS = ("PostToolUse", "PostToolUseFailure", "Stop", "SessionEnd")
KEEP_LIMIT = 8 * 1_048_576
# Hosts a daemon may be started for: this machine's loopback names, as clarity/http/loopback.py
# lists them (this script runs without clarity importable; a test keeps the two equal).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def parse(argv: list[str]) -> tuple[str | None, str, float]:
    """(event or None for --start, base URL, timeout); unknown arguments are ignored."""
    event: str | None = None
    url, timeout = os.environ.get("CLARITY_PLUGIN_URL") or DEFAULT_URL, DEFAULT_TIMEOUT
    for arg in argv:
        name, _, value = arg.partition("=")
        if name == "--url" and value:
            url = value
        elif name == "--timeout":
            with contextlib.suppress(ValueError):
                timeout = min(max(float(value), 0.1), 60.0)
        elif arg.isalnum():  # the event's name, the last part of the daemon's URL
            event = arg
    return event, url.rstrip("/"), timeout


def post(url: str, event: str, body: bytes, timeout: float) -> bytes:
    """POST the event and return the reply of a 2xx answer (b"" otherwise)."""
    import http.client

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(host, port, timeout=timeout)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    token = os.environ.get("CLARITY_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request("POST", f"{parts.path.rstrip('/')}/hooks/{event}", body=body, headers=headers)
        reply = conn.getresponse()
        data = reply.read()
        return data if 200 <= reply.status < 300 else b""
    finally:
        conn.close()


def find_clarity() -> str | None:
    import shutil

    explicit = os.environ.get("CLARITY_BIN")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    found = shutil.which("clarity")
    if found:
        return found
    fallback = os.path.expanduser("~/.local/bin/clarity")
    return fallback if os.access(fallback, os.X_OK) else None


def start_daemon(url: str) -> None:
    """``clarity service start`` in its own session, not waited for; a notice when there is no
    ``clarity`` to run. A daemon named on another machine is not ours to start."""
    import subprocess

    parts = urlsplit(url)
    if parts.hostname not in LOOPBACK_HOSTS:
        return
    clarity = find_clarity()
    if clarity is None:
        sys.stdout.write(
            json.dumps(
                {
                    "systemMessage": f"Clarity: no daemon answers at {url} and no `clarity` command was "
                    "found (PATH, CLARITY_BIN); memory is off for this session"
                }
            )
        )
        return
    args = [clarity, "service", "start", "--wait", "60"]
    if parts.hostname:
        args += ["--host", parts.hostname]
    if parts.port:
        args += ["--port", str(parts.port)]
    # The daemon is shared by every session: it must not inherit this one's identity.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAUDE") or k == "CLAUDE_CONFIG_DIR"}
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=os.path.expanduser("~"),
        env=env,
        start_new_session=True,
        close_fds=True,
    )


def keep(body: bytes) -> None:
    """Append the event to the storage root's pending-hooks.jsonl, one line, private to its user."""
    root = os.path.expanduser(os.environ.get("CLARITY_STORAGE__ROOT") or "~/.claude/alunai-clarity")
    directory = os.path.join(root, "app-data")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, "pending-hooks.jsonl")
    with contextlib.suppress(FileNotFoundError):
        if os.path.getsize(path) > KEEP_LIMIT:
            return
    line = body.strip().replace(b"\r", b" ").replace(b"\n", b" ") + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)  # one write: concurrent hooks append whole lines
    finally:
        os.close(fd)


def is_reply(data: bytes) -> bool:
    """A non-empty JSON object: anything else is not passed on to Claude Code."""
    stripped = data.strip()
    return stripped.startswith(b"{") and stripped.endswith(b"}") and bool(json.loads(stripped))


def _on_alarm(signum: int, frame: object) -> None:
    raise TimeoutError("the daemon did not answer in time")


def run(argv: list[str]) -> None:
    event, url, timeout = parse(argv)
    if event is None:
        if "--start" in argv:
            start_daemon(url)
        return
    body = b"" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read()
    import signal

    if hasattr(signal, "setitimer"):  # a hard deadline, even for a server that trickles bytes
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        reply = post(url, event, body, timeout)
    except ConnectionRefusedError:
        reply = b""
        if event == "SessionStart":
            start_daemon(url)
        elif event in KEPT_EVENTS and body.strip():
            keep(body)
    finally:
        if hasattr(signal, "setitimer"):
            signal.setitimer(signal.ITIMER_REAL, 0)
    if is_reply(reply):
        sys.stdout.buffer.write(reply.strip())


def main() -> int:
    if os.environ.get("CLARITY_DISABLED", "").strip().lower() in _TRUE:
        return 0
    try:
        run(sys.argv[1:])
        sys.stdout.flush()
    except BaseException as exc:  # fail silent, whatever happened
        if os.environ.get("CLARITY_DEBUG"):
            with contextlib.suppress(BaseException):
                sys.stderr.write(f"clarity plugin: {exc!r}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
