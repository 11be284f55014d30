"""A team server's three routes on loopback, for the developer daemon's tests.

From the daemon's side the team server is another system, reached over the network: this is a
test double of it that speaks ``clarity.team.protocol`` (validated with its models) and can
misbehave on purpose: apply a POST and drop the connection before answering, or hold every
answer. It keeps what each request carried, so a test can tell what reached the wire.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from clarity.team.protocol import (
    PREFIX,
    Change,
    ChangesResponse,
    DeleteOp,
    OpResult,
    OpsRequest,
    OpsResponse,
    PutOp,
    WhoAmI,
)


@dataclass
class StubState:
    # token -> (user, role); alice, who writes, unless a test says otherwise
    users: dict[str, tuple[str, str]] = field(default_factory=lambda: {"t-alice": ("alice", "write")})
    model: str | None = None
    applied: dict[str, int] = field(default_factory=dict)  # op id -> times applied
    records: dict[str, Change] = field(default_factory=dict)  # id -> its last change
    changes: list[Change] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)  # every request's path and body, as sent
    drop_answers: int = 0  # POSTs to apply and then hang up on without an answer
    clock: int = 1_000

    def stamp(self) -> int:
        self.clock = max(self.clock + 1, int(time.time() * 1000))
        return self.clock

    def add_change(self, change: Change) -> None:
        self.records[change.id] = change
        self.changes.append(change)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _user(self) -> tuple[str, str] | None:
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        found = self.server.state.users.get(token)
        if found is None:
            self._send(401, {"error": "token: unknown or revoked"})
        return found

    def _send(self, status: int, body: Any) -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        with self.server.lock:
            self.server.state.bodies.append(self.path.encode())
        user = self._user()
        if user is None:
            return
        if parts.path == f"{PREFIX}/whoami":
            answer = WhoAmI(user=user[0], role=user[1], model=self.server.state.model)  # type: ignore[arg-type]
            self._send(200, answer.model_dump_json())
            return
        if parts.path == f"{PREFIX}/changes":
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            projects = set(query["projects"].split(","))
            since, limit = int(query.get("since", 0)), int(query.get("limit", 1000))
            with self.server.lock:
                found = [
                    c for c in self.server.state.changes if c.project in projects and c.changed_at >= since
                ]
            page = found[:limit]
            cursor = page[-1].changed_at if page else since
            answer = ChangesResponse(changes=page, cursor=cursor, more=len(found) > limit)
            self._send(200, answer.model_dump_json())
            return
        self._send(404, {"error": f"path: no {parts.path}"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        state = self.server.state
        with self.server.lock:
            state.bodies.append(self.path.encode() + b" " + body)
        user = self._user()
        if user is None:
            return
        if self.path != f"{PREFIX}/ops":
            self._send(404, {"error": f"path: no {self.path}"})
            return
        if user[1] == "read":
            self._send(403, {"error": f"role: {user[0]} has the role read"})
            return
        request = OpsRequest.model_validate_json(body)
        with self.server.lock:
            results = [self._apply(user, op) for op in request.ops]
            drop = state.drop_answers > 0
            state.drop_answers -= drop
        if drop:  # applied, and the answer is lost on the way
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self._send(200, OpsResponse(results=results).model_dump_json())

    def _apply(self, user: tuple[str, str], op: PutOp | DeleteOp) -> OpResult:
        state = self.server.state
        if op.op_id in state.applied:
            return OpResult(op_id=op.op_id, status="duplicate")
        memory_id = op.memory.id if isinstance(op, PutOp) else op.id
        before = state.records.get(memory_id)
        owner = before.memory.author if before is not None and before.memory is not None else None
        if owner not in (None, user[0]) and user[1] != "admin":
            return OpResult(op_id=op.op_id, status="refused", error=f"id: {memory_id} is {owner}'s")
        if isinstance(op, PutOp):
            if state.model is None:
                state.model = op.model
            elif op.model != state.model:
                return OpResult(op_id=op.op_id, status="refused", error="model: not the team's")
            memory = op.memory.model_copy(update={"author": user[0], "shared": True})
            change = Change(
                id=memory.id,
                project=memory.scope,
                kind="put",
                changed_at=state.stamp(),
                memory=memory,
                vector=op.vector,
            )
        else:
            change = Change(id=op.id, project=op.project, kind="delete", changed_at=state.stamp())
        state.add_change(change)
        state.applied[op.op_id] = state.applied.get(op.op_id, 0) + 1
        return OpResult(op_id=op.op_id, status="applied")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: StubState, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.state = state
        self.lock = threading.Lock()


@contextmanager
def team_stub(state: StubState | None = None, port: int = 0) -> Iterator[tuple[str, StubState]]:
    """A stub team server on loopback (``port`` 0: any free one): its URL and its state."""
    state = state or StubState()
    server = _Server(state, port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def silent_port() -> Iterator[str]:
    """A port that accepts connections (the kernel completes them) and never answers: a team
    server that hangs. The URL of it."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
