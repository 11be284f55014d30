"""Helpers to watch the hooks a real Claude Code run fires.

* :func:`recorder_hooks` builds a ``hooks`` settings block whose command hooks append each
  event's stdin payload (plus the ``CLAUDE_*`` environment the hook saw) to a JSON-lines
  file, and optionally print a canned reply per event.
* :class:`HookSink` is a loopback HTTP server for ``"type": "http"`` hooks: it records
  method, path, headers and body of every post and answers with a per-event reply
  (a dict sent as JSON, a ``(status, body)`` tuple, or a delay to simulate a slow hook).
* :func:`blackhole` is a port that accepts connections and never answers (a hung daemon).
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from clarity.hooks.events import EVENTS

# Every event Clarity installs a hook for: the harness captures what Claude Code sends for each.
ALL_EVENTS = EVENTS
# Events that take a matcher (tool name or source); the others ignore it.
MATCHER_EVENTS = {"PreToolUse", "PostToolUse", "PostToolUseFailure", "SessionStart", "SessionEnd"}

_RECORDER = r"""
import json, os, sys, time
event, log_path, replies_path = sys.argv[1], sys.argv[2], sys.argv[3]
raw = sys.stdin.read()
try:
    payload = json.loads(raw)
except ValueError:
    payload = raw
entry = {
    "event": event,
    "time": time.time(),
    "payload": payload,
    "env": {k: v for k, v in os.environ.items() if k.startswith("CLAUDE")},
    "cwd": os.getcwd(),
}
with open(log_path, "a") as fh:
    fh.write(json.dumps(entry) + "\n")
replies = {}
if os.path.exists(replies_path):
    with open(replies_path) as fh:
        replies = json.load(fh)
reply = replies.get(event)
if reply is None:
    sys.exit(0)
if isinstance(reply, dict) and "__exit__" in reply:
    sys.stdout.write(reply.get("stdout", ""))
    sys.stderr.write(reply.get("stderr", ""))
    sys.exit(int(reply["__exit__"]))
sys.stdout.write(reply if isinstance(reply, str) else json.dumps(reply))
"""


def install_recorder(directory: str | Path) -> Path:
    """Write the recorder script into ``directory`` and return its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "hook_recorder.py"
    path.write_text(_RECORDER)
    return path


def recorder_command(recorder: Path, event: str, log: Path, replies: Path) -> str:
    return f"{sys.executable} {recorder} {event} {log} {replies}"


def recorder_hooks(
    directory: str | Path,
    events: Iterable[str] = ALL_EVENTS,
    *,
    replies: Mapping[str, Any] | None = None,
    matcher: str = "*",
    timeout: int = 30,
) -> tuple[dict[str, Any], Path, Path]:
    """A ``hooks`` settings block of command hooks recording every event.

    Returns ``(hooks, log_path, replies_path)``. ``replies`` maps an event name to what its
    hook prints on stdout: a dict (sent as JSON), a string (sent as is), or
    ``{"__exit__": N, "stdout": ..., "stderr": ...}`` to exit with code N. The replies file
    can be rewritten between runs.
    """
    directory = Path(directory)
    recorder = install_recorder(directory)
    log = directory / "hooks.jsonl"
    replies_path = directory / "hook_replies.json"
    replies_path.write_text(json.dumps(dict(replies or {})))
    hooks: dict[str, Any] = {}
    for event in events:
        group: dict[str, Any] = {
            "hooks": [
                {
                    "type": "command",
                    "command": recorder_command(recorder, event, log, replies_path),
                    "timeout": timeout,
                }
            ]
        }
        if event in MATCHER_EVENTS:
            group["matcher"] = matcher
        hooks[event] = [group]
    return hooks, log, replies_path


def read_log(log: str | Path) -> list[dict[str, Any]]:
    path = Path(log)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def merge_hooks(*blocks: Mapping[str, list[Any]]) -> dict[str, list[Any]]:
    """Concatenate several ``hooks`` blocks event by event."""
    merged: dict[str, list[Any]] = {}
    for block in blocks:
        for event, groups in block.items():
            merged.setdefault(event, []).extend(groups)
    return merged


# ---------------------------------------------------------------------------
# http hooks


@dataclass
class HookPost:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes
    time: float = field(default_factory=time.time)

    @property
    def event(self) -> str | None:
        return self.body.get("hook_event_name") if isinstance(self.body, dict) else None


Reply = Mapping[str, Any] | tuple[int, Any] | None
Responder = Callable[[HookPost], Reply]


class _SinkHandler(BaseHTTPRequestHandler):
    server: _SinkServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        post = HookPost(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body, raw)
        sink = self.server.owner
        with sink._lock:
            sink.posts.append(post)
        reply = sink.responder(post)
        delay = sink.delays.get(post.event or "", 0.0)
        if delay:
            time.sleep(delay)
        status, payload = 200, reply
        if isinstance(reply, tuple):
            status, payload = reply
        if payload is None:
            data = b""
        elif isinstance(payload, (bytes, str)):
            data = payload.encode() if isinstance(payload, str) else payload
        else:
            data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_POST = _handle
    do_GET = _handle
    do_PUT = _handle


class _SinkServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: HookSink


class HookSink:
    """Loopback receiver for ``"type": "http"`` hooks.

    ``replies`` maps an event name to the reply body (dict -> JSON, str -> raw) or to a
    ``(status, body)`` tuple; ``delays`` maps an event name to seconds to wait before
    replying. ``responder`` overrides both for full control.
    """

    def __init__(
        self,
        replies: Mapping[str, Any] | None = None,
        *,
        delays: Mapping[str, float] | None = None,
        responder: Responder | None = None,
    ) -> None:
        self.replies = dict(replies or {})
        self.delays = dict(delays or {})
        self.responder: Responder = responder or (lambda post: self.replies.get(post.event or ""))
        self.posts: list[HookPost] = []
        self._lock = threading.Lock()
        self._httpd: _SinkServer | None = None

    def __enter__(self) -> HookSink:
        httpd = _SinkServer(("127.0.0.1", 0), _SinkHandler)
        httpd.owner = self
        self._httpd = httpd
        threading.Thread(target=httpd.serve_forever, name="hook-sink", daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def events(self) -> list[str | None]:
        with self._lock:
            return [p.event for p in self.posts]

    def hooks(
        self,
        events: Iterable[str] = ALL_EVENTS,
        *,
        path: str = "/hook",
        timeout: int | None = 10,
        headers: Mapping[str, str] | None = None,
        matcher: str = "*",
        per_event_path: bool = True,
    ) -> dict[str, Any]:
        """A ``hooks`` settings block posting every event to this sink."""
        block: dict[str, Any] = {}
        for event in events:
            hook: dict[str, Any] = {
                "type": "http",
                "url": f"{self.url}{path}/{event}" if per_event_path else f"{self.url}{path}",
            }
            if timeout is not None:
                hook["timeout"] = timeout
            if headers:
                hook["headers"] = dict(headers)
            group: dict[str, Any] = {"hooks": [hook]}
            if event in MATCHER_EVENTS:
                group["matcher"] = matcher
            block[event] = [group]
        return block


def http_hooks_for(
    url: str, events: Iterable[str] = ALL_EVENTS, *, timeout: int | None = 10
) -> dict[str, Any]:
    """A ``hooks`` block posting every event to an arbitrary ``url`` (e.g. an unreachable one)."""
    block: dict[str, Any] = {}
    for event in events:
        hook: dict[str, Any] = {"type": "http", "url": url}
        if timeout is not None:
            hook["timeout"] = timeout
        group: dict[str, Any] = {"hooks": [hook]}
        if event in MATCHER_EVENTS:
            group["matcher"] = "*"
        block[event] = [group]
    return block


@contextmanager
def blackhole(port: int = 0) -> Iterator[int]:
    """A loopback port (``port``, or a free one) that accepts connections and never answers: a
    hung daemon. Yields the port; every connection is held open until the block ends."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(512)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, name="blackhole", daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        server.close()


__all__ = [
    "ALL_EVENTS",
    "MATCHER_EVENTS",
    "HookPost",
    "HookSink",
    "blackhole",
    "http_hooks_for",
    "install_recorder",
    "merge_hooks",
    "read_log",
    "recorder_hooks",
]
