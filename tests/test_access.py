"""Who may talk to the daemon and who may read its files.

- It listens on loopback unless told otherwise, and any other bind address needs a token.
- With a token, every route but /healthz answers 401 without it and 403 with a wrong one,
  compared in constant time (hmac.compare_digest). The dashboard's pages, which a browser opens,
  redirect a request without the header to the login form instead of answering 401.
- In server mode the Qdrant API key (QDRANT_API_KEY) reaches the Qdrant server on every request.
- Everything under the storage root is readable by its owner only.
"""

from __future__ import annotations

import hmac
import json
import os
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import anyio
import httpx
import pytest
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import clarity.http.middleware
from clarity.dashboard.security import is_dashboard_path
from clarity.hooks.events import EVENTS
from clarity.http.middleware import BearerTokenMiddleware

from .daemon_util import Daemon, free_port

TOKEN = "access-test-token-" + uuid.uuid4().hex
FIXTURES = Path(__file__).parent / "fixtures" / "hook_payloads"


def listening_addresses(pid: int, port: int) -> set[str]:
    """Local addresses the process's network namespace listens on for this port (from /proc)."""
    found = set()
    for table, width in (("tcp", 8), ("tcp6", 32)):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A = LISTEN
                assert len(address) == width
                found.add(address)
    return found


# -- binding -------------------------------------------------------------------------------------


def test_binds_to_loopback_by_default(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "root", free_port()).start()
    try:
        daemon.wait_healthy()
        assert daemon.process is not None
        # 0100007F is 127.0.0.1 in /proc's byte order; 00000000 would be every interface.
        assert listening_addresses(daemon.process.pid, daemon.port) == {"0100007F"}
        assert httpx.get(f"{daemon.url}/readyz", timeout=5).status_code in (200, 503)  # no token needed
    finally:
        daemon.stop()


@pytest.mark.parametrize(
    ("how", "value"),
    [
        ("flag", "0.0.0.0"),
        ("flag", "::"),
        ("env", "0.0.0.0"),
        ("config", "0.0.0.0"),
        ("flag", "127.0.0.2"),  # loopback range, but not the configured loopback name: still needs one
    ],
)
def test_non_loopback_bind_without_a_token_refuses_to_start(tmp_path: Path, how: str, value: str) -> None:
    root = tmp_path / "root"
    args, env = [], {}
    if how == "flag":
        args = ["--host", value]
    elif how == "env":
        env = {"CLARITY_SERVER__HOST": value}
    else:
        root.mkdir()
        (root / "config.json").write_text(json.dumps({"server": {"host": value}}))
    daemon = Daemon(root, free_port(), env=env, args=args).start()
    assert daemon.process is not None
    assert daemon.process.wait(60) == 2
    log = daemon.log()
    assert f"server.host={value!r}: binding beyond loopback needs a token" in log
    assert "CLARITY_TOKEN" in log and "Traceback" not in log
    assert not (root / "qdrant").exists()  # refused before touching the storage


def test_blank_token_does_not_count(tmp_path: Path) -> None:
    daemon = Daemon(
        tmp_path / "root", free_port(), env={"CLARITY_SERVER__TOKEN": "  "}, args=["--host", "0.0.0.0"]
    ).start()
    assert daemon.process is not None and daemon.process.wait(60) == 2
    assert "server.token: is empty" in daemon.log()


def test_non_loopback_bind_with_a_token_serves_and_guards(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "root", free_port(), env={"CLARITY_TOKEN": TOKEN}, args=["--host", "0.0.0.0"])
    daemon.start()
    try:
        daemon.wait_healthy()
        assert daemon.process is not None
        assert listening_addresses(daemon.process.pid, daemon.port) == {"00000000"}
        assert httpx.get(f"{daemon.url}/api/stats", timeout=5).status_code == 401
    finally:
        daemon.stop()


# -- the token -----------------------------------------------------------------------------------


RIGHT = {"Authorization": f"Bearer {TOKEN}"}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}
MCP_INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    daemon = Daemon(tmp_path_factory.mktemp("guarded"), free_port(), env={"CLARITY_TOKEN": TOKEN})
    daemon.start()
    daemon.wait_healthy()
    deadline = time.monotonic() + 180
    while httpx.get(f"{daemon.url}/readyz", headers=RIGHT, timeout=5).status_code != 200:
        assert time.monotonic() < deadline, daemon.log()
        time.sleep(0.2)
    yield daemon
    daemon.stop()


def routes(memory_id: str) -> list[tuple[str, str, Any]]:
    hook = json.loads((FIXTURES / "UserPromptSubmit.json").read_text())
    return [
        ("GET", "/readyz", None),
        ("GET", "/api/stats", None),
        ("GET", "/api/memories", None),
        ("POST", "/api/memories", {"content": "must not be stored without the token"}),
        ("GET", f"/api/memories/{memory_id}", None),
        ("PATCH", f"/api/memories/{memory_id}", {"importance": 0.1}),
        ("DELETE", f"/api/memories/{memory_id}", None),
        ("POST", "/api/search", {"query": "anything"}),
        *[("POST", f"/hooks/{event}", {**hook, "hook_event_name": event}) for event in EVENTS],
        ("POST", "/hooks/NotAnEvent", {}),
        ("POST", "/mcp", MCP_INIT),
        ("GET", "/mcp", None),
        ("DELETE", "/mcp", None),
        ("GET", "/", None),
        ("GET", "/no/such/route", None),
        ("OPTIONS", "/api/memories", None),
    ]


def test_every_route_but_healthz_needs_the_token(guarded: Daemon) -> None:
    stored = httpx.post(
        f"{guarded.url}/api/memories",
        json={"content": f"guarded memory {uuid.uuid4()}", "scope": "global"},
        headers=RIGHT,
        timeout=60,
    )
    assert stored.status_code == 201, stored.text
    memory_id = stored.json()["id"]
    wrong_tokens = [
        "Bearer wrong",
        f"Bearer {TOKEN[:-1]}",  # a prefix
        f"Bearer {TOKEN}x",  # an extension
        f"Bearer {TOKEN[:-1]}{'a' if TOKEN[-1] != 'a' else 'b'}",  # same length, last byte differs
        f"Bearer  {TOKEN}",
        f"bearer{TOKEN}",
        f"Basic {TOKEN}",
        TOKEN,
        "",
    ]
    checked = 0
    with httpx.Client(base_url=guarded.url, timeout=30) as http:
        for method, path, body in routes(memory_id):
            kwargs: dict[str, Any] = {"json": body} if body is not None else {}
            missing = http.request(method, path, headers=MCP_HEADERS, **kwargs)
            if is_dashboard_path(path) and missing.status_code == 303:
                # A browser cannot send the header: dashboard pages send it to the login form
                # (which sets a cookie derived from the token) instead, and show nothing.
                assert missing.headers["location"].startswith("/login"), missing.headers
                assert not missing.content
            else:
                assert missing.status_code == 401, (method, path, missing.text)
                assert missing.json() == {"error": "authorization: bearer token required"}
                assert missing.headers["www-authenticate"] == "Bearer"
            for wrong in wrong_tokens:
                refused = http.request(
                    method, path, headers={**MCP_HEADERS, "Authorization": wrong}, **kwargs
                )
                assert refused.status_code == 403, (method, path, wrong, refused.text)
                assert refused.json() == {"error": "authorization: wrong token"}
                checked += 1
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            assert http.get("/healthz", headers=headers).status_code == 200
        # Nothing got through: the memory is unchanged and nothing else was stored.
        kept = http.get(f"/api/memories/{memory_id}", headers=RIGHT)
        assert kept.status_code == 200 and kept.json()["importance"] == 0.5
        assert http.get("/api/memories", params={"scope": "all"}, headers=RIGHT).json()["total"] == 1
        # And the right token opens the doors.
        assert http.get("/api/stats", headers=RIGHT).status_code == 200
        init = http.post("/mcp", json=MCP_INIT, headers={**MCP_HEADERS, **RIGHT})
        assert init.status_code == 200, init.text
        assert (
            http.post("/hooks/Stop", json={"session_id": "s", "cwd": "/tmp"}, headers=RIGHT).status_code
            == 200
        )
    assert checked == len(routes(memory_id)) * len(wrong_tokens)
    assert TOKEN not in guarded.log()


def test_the_stdio_shim_sends_the_token(guarded: Daemon, tmp_path: Path) -> None:
    env = {**guarded.env(), "CLARITY_TOKEN": TOKEN, "PATH": os.environ.get("PATH", "")}
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "clarity", "mcp"], env=env, cwd=str(tmp_path)
    )
    marker = uuid.uuid4().hex

    async def main() -> None:
        async with Client(params) as client:
            stored = await client.call_tool("store_memory", {"content": f"shim with a token {marker}"})
            assert not stored.is_error, stored.content
        without = {k: v for k, v in env.items() if k != "CLARITY_TOKEN"}
        async with Client(
            StdioServerParameters(
                command=sys.executable, args=["-m", "clarity", "mcp"], env=without, cwd=str(tmp_path)
            )
        ) as client:
            refused = await client.call_tool("store_memory", {"content": f"shim without a token {marker}"})
            assert refused.is_error
            assert "authorization: bearer token required" in " ".join(
                getattr(b, "text", "") for b in refused.content
            )

    anyio.run(main)


def test_token_compare_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The middleware compares with hmac.compare_digest, whatever the supplied value looks like."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(clarity.http.middleware.hmac, "compare_digest", spy)

    async def ok(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = BearerTokenMiddleware(Starlette(routes=[Route("/x", ok), Route("/healthz", ok)]), token="t0k")
    client = TestClient(app)
    assert client.get("/x", headers={"Authorization": "Bearer t0k"}).status_code == 200
    assert client.get("/x", headers={"Authorization": "Bearer t0j"}).status_code == 403
    assert client.get("/x", headers={"Authorization": "Bearer a-much-longer-wrong-token"}).status_code == 403
    assert client.get("/x").status_code == 401
    assert client.get("/healthz").status_code == 200
    assert calls == [
        (b"Bearer t0k", b"Bearer t0k"),
        (b"Bearer t0j", b"Bearer t0k"),
        (b"Bearer a-much-longer-wrong-token", b"Bearer t0k"),
    ]


# -- Qdrant server mode: the API key goes out with every request ---------------------------------


class RecordingQdrant(BaseHTTPRequestHandler):
    """Answers like a Qdrant server that lost its collections; records what arrived."""

    seen: ClassVar[list[dict[str, Any]]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        self.seen.append({"method": self.command, "path": self.path, "api-key": self.headers.get("api-key")})
        body = json.dumps(
            {"status": {"error": "recording stand-in: no collections here"}, "time": 0}
        ).encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _answer

    def log_message(self, *args: Any) -> None:
        pass


def test_server_mode_sends_the_qdrant_api_key(tmp_path: Path) -> None:
    RecordingQdrant.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordingQdrant)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    api_key = "qdrant-key-" + uuid.uuid4().hex
    try:
        daemon = Daemon(
            tmp_path / "root",
            free_port(),
            env={"QDRANT_URL": f"http://127.0.0.1:{server.server_port}", "QDRANT_API_KEY": api_key},
        ).start()
        assert daemon.process is not None
        code = daemon.process.wait(120)
    finally:
        server.shutdown()
        server.server_close()
    log = daemon.log()
    assert code == 1, log
    assert "cannot open the server store" in log
    assert RecordingQdrant.seen, f"qdrant-client never reached the server:\n{log}"
    assert all(request["api-key"] == api_key for request in RecordingQdrant.seen), RecordingQdrant.seen
    assert api_key not in log


# -- file modes ----------------------------------------------------------------------------------


def assert_private(root: Path) -> int:
    paths = [root, *root.rglob("*")]
    loose = [
        f"{oct(stat.S_IMODE(p.lstat().st_mode))} {p.relative_to(root)}"
        for p in paths
        if not p.is_symlink() and p.lstat().st_mode & 0o077
    ]
    assert not loose, "readable by others:\n" + "\n".join(loose)
    return len(paths)


def test_storage_files_are_readable_by_the_owner_only(tmp_path: Path) -> None:
    """A daemon started by a client (as `clarity mcp` does), with a permissive umask, storing
    memories and learning from hooks: every file and folder under the root is 0o600 / 0o700."""
    root = tmp_path / "root"
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CLARITY_", "QDRANT_"))},
        "CLARITY_STORAGE__ROOT": str(root),
        "CLARITY_SERVER__PORT": str(port),
        "MEMORY_CONFIG_PATH": str(root / "app-data" / "config.json"),
        "HF_HUB_OFFLINE": "1",
    }
    # A config file from before this version, world-readable.
    (root / "app-data").mkdir(parents=True)
    (root / "app-data" / "config.json").write_text("{}")
    os.chmod(root / "app-data" / "config.json", 0o644)
    os.chmod(root, 0o755)
    starter = "import os; os.umask(0o022); from clarity.config import load_settings; from clarity.daemon import ensure_daemon; ensure_daemon(load_settings(), 120)"
    subprocess.run([sys.executable, "-c", starter], env=env, check=True, timeout=180)
    daemon = Daemon(root, port)
    daemon.log_path = tmp_path / "unused.log"
    try:
        daemon.wait_ready()
        project = tmp_path / "project"
        project.mkdir()
        for i in range(30):
            created = daemon.api(
                "POST", "/memories", str(project), json={"content": f"private fact {i} {uuid.uuid4()}"}
            )
            assert created.status_code == 201
        hook = json.loads((FIXTURES / "PostToolUseFailure.json").read_text())
        assert (
            httpx.post(
                f"{daemon.url}/hooks/PostToolUseFailure", json={**hook, "cwd": str(project)}
            ).status_code
            == 200
        )
        assert_private(root)  # while running
    finally:
        stopped = subprocess.run(
            [sys.executable, "-m", "clarity", "stop"], env=env, capture_output=True, timeout=60
        )
        assert stopped.returncode == 0, stopped.stderr
    count = assert_private(root)  # and after a clean shutdown
    names = {p.name for p in root.rglob("*")}
    assert {"qdrant", "app-data", "clarity.lock", "daemon.log", "start.lock", "config.json"} <= names, names
    assert count >= 10
