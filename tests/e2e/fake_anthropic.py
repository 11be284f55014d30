"""A scripted stand-in for the Anthropic Messages API, served on loopback.

End-to-end tests point the real Claude Code CLI at it with ``ANTHROPIC_BASE_URL`` and
script the model's side of the conversation turn by turn::

    script = [
        {"tool": "Bash", "input": {"command": "echo hi", "description": "say hi"}},
        {"text": "done"},
    ]
    with FakeAnthropic(script) as server:
        run_claude_p("go", base_url=server.url, ...)
        assert "hi" in all_text(server.main_requests[1])

A *turn* is one of:

* ``{"tool": NAME, "input": {...}}``       -> one ``tool_use`` block, stop_reason ``tool_use``
  (add ``"id": "toolu_..."`` to fix the tool_use id)
* ``{"text": "..."}``                      -> one text block, stop_reason ``end_turn``
* ``{"text": "...", "tool": ..., "input": ...}`` -> text then the tool call
* ``{"tools": [{"tool": ..., "input": ...}, ...]}`` -> several parallel tool calls
* a callable ``f(body) -> turn``           -> decided from the request (e.g. to echo what it saw)

Any turn may also carry ``"delay": seconds`` (sleep before answering) or
``"error_status": 529`` / ``"error_type": "overloaded_error"`` (answer with an API error; note
that Claude Code retries errors, and each retry consumes the next turn).
When the script runs out, main requests get the text ``EXHAUSTED_TEXT`` and
``server.exhausted`` counts them.

Claude Code also makes side requests (title / summary generation with a small model,
quota probes, ``count_tokens``). Those are answered with a short text and do not use a
scripted turn. A request is "main" when it carries a non-empty ``tools`` list and is not
one of the known side-request shapes (see :func:`is_side_request`); override with the
``is_main`` argument if a test needs something else.

Every request is recorded (method, path, headers, parsed JSON body) in ``server.requests``;
``server.main_requests`` holds only the bodies of scripted-conversation requests.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

Turn = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]

EXHAUSTED_TEXT = "[fake-anthropic: script exhausted]"
SIDE_TEXT = "Scripted side answer"

_ids = itertools.count(1)


def _new_id(prefix: str) -> str:
    return f"{prefix}_fake{next(_ids):06d}{int(time.time() * 1000) % 100000:05d}"


@dataclass
class Recorded:
    """One HTTP request the server received."""

    method: str
    path: str  # path without the query string
    query: str
    headers: dict[str, str]
    body: Any  # parsed JSON, raw text if not JSON, None if empty
    kind: str = "other"  # "main", "side", "count_tokens", "other"
    time: float = field(default_factory=time.time)


# ---------------------------------------------------------------------------
# request inspection helpers


def _flatten(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, list):
        for item in value:
            _flatten(item, out)
    elif isinstance(value, dict):
        kind = value.get("type")
        if kind == "text" or ("text" in value and isinstance(value.get("text"), str)):
            out.append(value["text"])
        if kind == "tool_result":
            _flatten(value.get("content"), out)
        elif kind == "tool_use":
            out.append(json.dumps(value.get("input", {}), ensure_ascii=False))
        elif kind in (None, "message") and "content" in value:
            _flatten(value.get("content"), out)


def all_text(request: Any) -> str:
    """Every system prompt, text block, tool_use input and tool_result of a request, joined.

    Accepts a request body (dict) or a :class:`Recorded`. Use it for substring assertions
    such as ``assert "<system-reminder>" in all_text(body)``.
    """
    body = request.body if isinstance(request, Recorded) else request
    if not isinstance(body, dict):
        return "" if body is None else str(body)
    out: list[str] = []
    _flatten(body.get("system"), out)
    for message in body.get("messages") or []:
        _flatten(message.get("content"), out)
    return "\n".join(out)


def last_user_text(body: dict[str, Any]) -> str:
    """The flattened text of the last user message of a request body."""
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            out: list[str] = []
            _flatten(message.get("content"), out)
            return "\n".join(out)
    return ""


def tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    """All tool_result blocks of a request body, in order, with content flattened to ``text``."""
    found = []
    for message in body.get("messages") or []:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for block in content:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                out: list[str] = []
                _flatten(block.get("content"), out)
                found.append({**block, "text": "\n".join(out)})
    return found


def system_text(body: dict[str, Any]) -> str:
    out: list[str] = []
    _flatten(body.get("system"), out)
    return "\n".join(out)


def is_side_request(body: dict[str, Any]) -> bool:
    """True for the requests Claude Code makes besides the main agent loop.

    Observed with Claude Code 2.1.330: a session-title request (small model, no tools,
    JSON-schema output), quota probes (``max_tokens`` 1, no tools). Anything without tools is a
    side request; a request with tools is main.
    """
    if not isinstance(body, dict):
        return True
    return not body.get("tools")


# ---------------------------------------------------------------------------
# response builders


def _turn_blocks(turn: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    blocks: list[dict[str, Any]] = []
    if turn.get("text"):
        blocks.append({"type": "text", "text": str(turn["text"])})
    calls: list[dict[str, Any]] = []
    if "tool" in turn:
        calls.append({"tool": turn["tool"], "input": turn.get("input", {}), "id": turn.get("id")})
    calls.extend(turn.get("tools") or [])
    for call in calls:
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id") or _new_id("toolu"),
                "name": call["tool"],
                "input": call.get("input", {}),
            }
        )
    if not blocks:
        blocks.append({"type": "text", "text": ""})
    stop = turn.get("stop_reason") or ("tool_use" if calls else "end_turn")
    return blocks, stop


def _usage(output_tokens: int = 10) -> dict[str, Any]:
    return {
        "input_tokens": 100,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def message_json(model: str, blocks: list[dict[str, Any]], stop_reason: str) -> dict[str, Any]:
    return {
        "id": _new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": _usage(),
    }


def sse_events(model: str, blocks: list[dict[str, Any]], stop_reason: str) -> Iterable[tuple[str, dict]]:
    """The server-sent events of one streamed message, as (event name, data) pairs."""
    start = message_json(model, [], None)  # type: ignore[arg-type]
    start["usage"] = {**_usage(1)}
    yield "message_start", {"type": "message_start", "message": start}
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            text = block["text"]
            # Two deltas when long enough, to exercise the client's accumulation.
            pieces = [text[: len(text) // 2], text[len(text) // 2 :]] if len(text) > 1 else [text]
            for piece in pieces:
                yield (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                )
        else:
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {
                        "type": "tool_use",
                        "id": block["id"],
                        "name": block["name"],
                        "input": {},
                    },
                },
            )
            raw = json.dumps(block["input"], ensure_ascii=False)
            pieces = [raw[: len(raw) // 2], raw[len(raw) // 2 :]] if len(raw) > 2 else [raw]
            for piece in pieces:
                yield (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    },
                )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": 10},
        },
    )
    yield "message_stop", {"type": "message_stop"}


# ---------------------------------------------------------------------------
# the server


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.owner.verbose:
            super().log_message(format, *args)

    # -- plumbing

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    def _record(self, body: Any) -> Recorded:
        parts = urlsplit(self.path)
        rec = Recorded(
            method=self.command,
            path=parts.path,
            query=parts.query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        self.server.owner._add(rec)
        return rec

    def _send_json(self, status: int, payload: Any, head_only: bool = False) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", _new_id("req"))
        self.end_headers()
        if not head_only:
            self.wfile.write(data)

    # -- verbs

    def do_HEAD(self) -> None:
        self._record(None)
        self._send_json(200, {}, head_only=True)

    def do_GET(self) -> None:
        rec = self._record(None)
        if rec.path.rstrip("/").endswith("/v1/models"):
            self._send_json(200, {"data": [], "has_more": False, "first_id": None, "last_id": None})
        else:
            self._send_json(200, {})

    def do_DELETE(self) -> None:
        self._record(self._read_body())
        self._send_json(200, {})

    def do_PUT(self) -> None:
        self._record(self._read_body())
        self._send_json(200, {})

    def do_POST(self) -> None:
        body = self._read_body()
        rec = self._record(body)
        owner = self.server.owner
        if rec.path.endswith("/v1/messages/count_tokens"):
            rec.kind = "count_tokens"
            self._send_json(200, {"input_tokens": max(1, len(json.dumps(body or {})) // 4)})
            return
        if not rec.path.endswith("/v1/messages"):
            self._send_json(200, {})
            return
        if not isinstance(body, dict):
            self._send_json(
                400, {"type": "error", "error": {"type": "invalid_request_error", "message": "bad json"}}
            )
            return
        model = str(body.get("model") or "claude-fake")
        if owner.is_main(body):
            rec.kind = "main"
            turn = owner._next_turn(body)
        else:
            rec.kind = "side"
            turn = owner.side_turn(body) if owner.side_turn else {"text": SIDE_TEXT}
        if turn.get("error_status"):
            status = int(turn["error_status"])
            self._send_json(
                status,
                {
                    "type": "error",
                    "error": {"type": turn.get("error_type", "api_error"), "message": "scripted"},
                },
            )
            return
        delay = float(turn.get("delay", 0) or 0)
        if delay:
            time.sleep(delay)
        blocks, stop = _turn_blocks(turn)
        if body.get("stream"):
            self._stream(model, blocks, stop)
        else:
            self._send_json(200, message_json(model, blocks, stop))

    def _stream(self, model: str, blocks: list[dict[str, Any]], stop: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.send_header("request-id", _new_id("req"))
        self.end_headers()
        self.close_connection = True
        try:
            for event, data in sse_events(model, blocks, stop):
                self.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: FakeAnthropic


class FakeAnthropic:
    """Context manager running the scripted Messages API on ``127.0.0.1:<free port>``."""

    def __init__(
        self,
        script: Iterable[Any] = (),
        *,
        is_main: Callable[[dict[str, Any]], bool] | None = None,
        side_turn: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        verbose: bool = False,
    ) -> None:
        self.script: list[Turn] = list(script)
        self.is_main = is_main or (lambda body: not is_side_request(body))
        self.side_turn = side_turn
        self.verbose = verbose
        self.requests: list[Recorded] = []
        self.exhausted = 0  # main requests that arrived after the script ran out
        self._lock = threading.Lock()
        self._cursor = 0
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> FakeAnthropic:
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="fake-anthropic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- info

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def main_requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.body for r in self.requests if r.kind == "main"]

    @property
    def side_requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.body for r in self.requests if r.kind == "side"]

    @property
    def paths(self) -> list[str]:
        """``"METHOD /path"`` of every request, in arrival order."""
        with self._lock:
            return [f"{r.method} {r.path}" for r in self.requests]

    @property
    def turns_used(self) -> int:
        return self._cursor

    @property
    def script_done(self) -> bool:
        return self._cursor >= len(self.script)

    def add_turns(self, *turns: Turn) -> None:
        with self._lock:
            self.script.extend(turns)

    def dump(self) -> str:
        """A readable summary of every request, for assertion messages."""
        lines = []
        with self._lock:
            for i, r in enumerate(self.requests):
                extra = ""
                if isinstance(r.body, dict):
                    extra = f" model={r.body.get('model')} tools={len(r.body.get('tools') or [])} msgs={len(r.body.get('messages') or [])}"
                lines.append(
                    f"{i:3d} {r.kind:12s} {r.method} {r.path}{'?' + r.query if r.query else ''}{extra}"
                )
        return "\n".join(lines)

    # -- internals

    def _add(self, rec: Recorded) -> None:
        with self._lock:
            self.requests.append(rec)

    def _next_turn(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if self._cursor >= len(self.script):
                self.exhausted += 1
                return {"text": EXHAUSTED_TEXT}
            turn = self.script[self._cursor]
            self._cursor += 1
        if callable(turn):
            turn = turn(body)
        return turn


__all__ = [
    "EXHAUSTED_TEXT",
    "SIDE_TEXT",
    "FakeAnthropic",
    "Recorded",
    "all_text",
    "is_side_request",
    "last_user_text",
    "message_json",
    "sse_events",
    "system_text",
    "tool_results",
]
