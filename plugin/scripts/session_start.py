#!/usr/bin/env python3
"""Clarity plugin, SessionStart: make sure a daemon answers, then hand it the event.

Claude Code runs this once per session (``python3 .../session_start.py --url=BASE
--timeout=S``) and waits for it, so it uses the standard library only and never takes longer
than ``--timeout`` seconds:

1. A daemon answers ``BASE/healthz``: post the event to ``BASE/hooks/SessionStart`` and print
   the reply (the project brief, Claude Code's hook output JSON).
2. None answers: start one in the background with ``clarity service start`` (the daemon's
   own start lock makes racing sessions start exactly one), detached from this session so it
   outlives it and holds none of Claude Code's pipes. Wait for it while the budget lasts, then
   post as in 1. If it is not up in time, the session goes on without memory; later hooks
   reach the daemon once it answers.

The ``clarity`` command is ``$CLARITY_BIN`` if set, else ``clarity`` on PATH, else
``~/.local/bin/clarity`` (where ``uv tool install`` and ``pipx`` put it).

It fails open: whatever goes wrong it exits 0. It prints only the daemon's reply, or a
``systemMessage`` (shown to the user, never to the model) when Clarity cannot be started.
``CLARITY_DISABLED=1`` makes it do nothing at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 5.0
# Kept back from the budget for posting the event once the daemon answers.
POST_RESERVE = 1.0
_TRUE = ("1", "true", "yes", "on")
# Hosts a daemon may be started for: this machine's loopback names, as clarity/http/loopback.py
# lists them (this script runs without clarity importable; a test keeps the two equal).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def parse(argv: list[str]) -> tuple[str, float]:
    url, timeout = os.environ.get("CLARITY_PLUGIN_URL") or DEFAULT_URL, DEFAULT_TIMEOUT
    for arg in argv:
        name, _, value = arg.partition("=")
        if name == "--url" and value:
            url = value
        elif name == "--timeout":
            with contextlib.suppress(ValueError):
                timeout = min(max(float(value), 0.5), 60.0)
    return url.rstrip("/"), timeout


def request(url: str, method: str, path: str, body: bytes | None, timeout: float) -> tuple[int, bytes]:
    import http.client

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(host, port, timeout=max(timeout, 0.05))
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    token = os.environ.get("CLARITY_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, parts.path.rstrip("/") + path, body=body, headers=headers)
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


def healthy(url: str, timeout: float) -> bool:
    try:
        return request(url, "GET", "/healthz", None, timeout)[0] == 200
    except (OSError, ValueError):
        return False


def find_clarity() -> str | None:
    explicit = os.environ.get("CLARITY_BIN")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    found = shutil.which("clarity")
    if found:
        return found
    fallback = os.path.expanduser("~/.local/bin/clarity")
    return fallback if os.access(fallback, os.X_OK) else None


def start_daemon(clarity: str, url: str) -> None:
    """``clarity service start`` in its own session: it survives this hook and the session,
    and holds none of Claude Code's pipes (Claude Code would wait for them to close)."""
    parts = urlsplit(url)
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


def notice(text: str) -> None:
    sys.stdout.write(json.dumps({"systemMessage": f"Clarity: {text}"}))


def run(argv: list[str]) -> None:
    started = time.monotonic()
    url, budget = parse(argv)
    deadline = started + budget
    body = b"" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read()
    if not healthy(url, min(0.5, budget / 4)):
        host = urlsplit(url).hostname
        if host not in LOOPBACK_HOSTS:
            return  # a remote daemon is not ours to start
        clarity = find_clarity()
        if clarity is None:
            notice(
                f"no daemon answers at {url} and no `clarity` command was found (PATH, CLARITY_BIN); "
                "memory is off for this session"
            )
            return
        start_daemon(clarity, url)
        while time.monotonic() < deadline - POST_RESERVE:
            time.sleep(0.1)
            if healthy(url, 0.3):
                break
        else:
            notice(f"starting the daemon at {url}; memory joins in once it answers")
            return
    if not body:
        return
    remaining = deadline - time.monotonic()
    if remaining <= 0.05:
        return
    status, reply = request(url, "POST", "/hooks/SessionStart", body, remaining)
    stripped = reply.strip()
    is_object = stripped.startswith(b"{") and stripped.endswith(b"}")
    if 200 <= status < 300 and is_object and json.loads(stripped):
        sys.stdout.buffer.write(stripped)


def main() -> int:
    if os.environ.get("CLARITY_DISABLED", "").strip().lower() in _TRUE:
        return 0
    try:
        run(sys.argv[1:])
        sys.stdout.flush()
    except BaseException as exc:  # fail open, whatever happened
        if os.environ.get("CLARITY_DEBUG"):
            sys.stderr.write(f"clarity session start: {exc!r}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
