"""The real daemon process: health, REST, sharing between clients, restarts, ownership, auth."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import httpx
import pytest

from .daemon_util import Daemon, free_port


def test_healthz_answers_before_the_model_is_ready(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "root", free_port()).start()
    try:
        daemon.wait_healthy(60)
        first = httpx.get(f"{daemon.url}/readyz", timeout=5)
        # The health check must not wait for the model, however long it takes to load.
        assert first.status_code in (200, 503)
        daemon.wait_ready()
        ready = httpx.get(f"{daemon.url}/readyz", timeout=5).json()
        assert ready["ready"] is True and ready["engine"] == "embedded"
        assert ready["runtime"] == "onnx"  # the setup's export, not a torch fallback
        assert ready["location"] == str(tmp_path / "root" / "qdrant")
    finally:
        daemon.stop()


def test_rest_crud(shared_daemon: Daemon, tmp_path: Path) -> None:
    project = str(tmp_path)
    created = shared_daemon.api(
        "POST", "/memories", project, json={"content": "REST roundtrip fact", "tags": ["rest"]}
    )
    assert created.status_code == 201, created.text
    memory_id = created.json()["id"]
    again = shared_daemon.api("POST", "/memories", project, json={"content": "REST roundtrip fact"})
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    got = shared_daemon.api("GET", f"/memories/{memory_id}")
    assert got.json()["content"] == "REST roundtrip fact"
    found = shared_daemon.api("POST", "/search", project, json={"query": "roundtrip fact over REST"})
    assert found.json()["results"][0]["memory"]["id"] == memory_id
    listed = shared_daemon.api("GET", "/memories", project, params={"scope": "project", "tags": "rest"})
    assert [m["id"] for m in listed.json()["memories"]] == [memory_id]
    patched = shared_daemon.api("PATCH", f"/memories/{memory_id}", json={"importance": 0.9})
    assert patched.json()["importance"] == 0.9
    assert shared_daemon.api("DELETE", f"/memories/{memory_id}").json() == {"id": memory_id, "deleted": True}
    assert shared_daemon.api("GET", f"/memories/{memory_id}").status_code == 404
    stats = shared_daemon.api("GET", "/stats").json()
    assert stats["engine"] == "embedded" and stats["model_ready"] is True


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("POST", "/memories", b"{not json", 400, "body: not valid JSON"),
        ("POST", "/memories", b"\xff\xfe", 400, "body: not valid UTF-8"),
        ("POST", "/memories", b"[1, 2]", 400, "expected a JSON object"),
        ("POST", "/memories", {"content": ""}, 400, "content"),
        ("POST", "/memories", {"content": "x" * 20_001}, 400, "at most 20000 characters"),
        ("POST", "/memories", {"content": "ok", "memory_type": "rumour"}, 400, "memory_type"),
        ("POST", "/memories", {"content": "ok", "importance": 2}, 400, "importance"),
        ("POST", "/memories", {"content": "ok", "metadata": [1]}, 400, "metadata"),
        ("POST", "/memories", {"content": "ok", "metadata": {"k": "v" * 9000}}, 400, "metadata"),
        ("POST", "/memories", {"content": "ok", "scope": "Not A Scope!"}, 400, "scope"),
        ("POST", "/search", {"query": ""}, 400, "query"),
        ("POST", "/search", {"query": "x", "limit": 1000}, 400, "limit"),
        ("POST", "/search", {"query": "x", "filters": {}}, 400, "filters: unknown key"),
        ("GET", "/memories/not-a-uuid", None, 400, "not a memory id"),
        ("GET", f"/memories/{uuid.uuid4()}", None, 404, "no memory with id"),
        ("DELETE", f"/memories/{uuid.uuid4()}", None, 404, "no memory with id"),
        ("PATCH", f"/memories/{uuid.uuid4()}", {}, 400, "give at least one"),
        ("GET", "/memories?limit=0", None, 400, "limit"),
    ],
)
def test_bad_input_gets_a_clear_error_and_loses_nothing(
    shared_daemon: Daemon, tmp_path: Path, method: str, path: str, body: object, status: int, message: str
) -> None:
    kept = shared_daemon.api("POST", "/memories", str(tmp_path), json={"content": f"survivor {uuid.uuid4()}"})
    kwargs: dict = {}
    if isinstance(body, bytes):
        kwargs["content"] = body
        kwargs["headers"] = {"Content-Type": "application/json"}  # an untyped body is refused (415)
    elif body is not None:
        kwargs["json"] = body
    response = shared_daemon.api(method, path, str(tmp_path), **kwargs)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert shared_daemon.api("GET", f"/memories/{kept.json()['id']}").status_code == 200


def test_oversized_body_is_refused(shared_daemon: Daemon) -> None:
    response = shared_daemon.api("POST", "/memories", "global", content=b"{" + b" " * 2_000_000 + b"}")
    assert response.status_code == 413
    assert "over the limit" in response.json()["error"]


CLIENT = textwrap.dedent(
    """
    import json, sys, httpx
    url, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ids = []
    with httpx.Client(base_url=url + "/api", headers={"X-Clarity-Project": "shared-proj"}, timeout=60) as http:
        for i in range(n):
            r = http.post("/memories", json={"content": f"client {tag} fact number {i}: value {tag}{i * 7919}"})
            r.raise_for_status()
            ids.append(r.json()["id"])
            s = http.post("/search", json={"query": f"client {tag} fact number {i}", "limit": 3})
            s.raise_for_status()
    print(json.dumps(ids))
    """
)


def test_two_client_processes_share_one_daemon_and_survive_restart(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "root", free_port()).start()
    try:
        daemon.wait_ready()
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", CLIENT, daemon.url, tag, "25"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for tag in ("alpha", "beta")
        ]
        outputs = [p.communicate(timeout=300) for p in procs]
        for proc, (_, stderr) in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, stderr
        ids = [i for stdout, _ in outputs for i in json.loads(stdout)]
        assert len(set(ids)) == 50
        # One client sees the other's memories: there is one shared store.
        seen = daemon.api(
            "POST", "/search", "shared-proj", json={"query": "client beta fact number 3", "limit": 1}
        )
        assert seen.json()["results"][0]["memory"]["content"].startswith("client beta fact number 3:")
    finally:
        assert daemon.stop() == 0
    restarted = Daemon(tmp_path / "root", free_port()).start()
    try:
        restarted.wait_ready()
        for memory_id in ids:
            assert restarted.api("GET", f"/memories/{memory_id}").status_code == 200
        listed = restarted.api("GET", "/memories", "shared-proj", params={"scope": "project", "limit": 1})
        assert listed.json()["total"] == 50
    finally:
        restarted.stop()


def test_second_daemon_on_the_same_storage_refuses_with_a_clear_message(shared_daemon: Daemon) -> None:
    second = Daemon(shared_daemon.root, free_port())
    second.start()
    assert second.process is not None
    assert second.process.wait(60) == 1
    log = second.log()
    assert "already used by another Clarity daemon" in log
    assert str(shared_daemon.root) in log and "Traceback" not in log
    assert httpx.get(f"{shared_daemon.url}/healthz", timeout=5).status_code == 200


def test_port_held_by_another_program_is_reported(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        daemon = Daemon(tmp_path / "root", port).start()
        assert daemon.process is not None and daemon.process.wait(60) == 1
        assert f"cannot listen on 127.0.0.1:{port}" in daemon.log()


def test_non_loopback_bind_requires_a_token(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "root", free_port(), args=["--host", "0.0.0.0"]).start()
    assert daemon.process is not None and daemon.process.wait(60) == 2
    assert "needs a token" in daemon.log() and "CLARITY_TOKEN" in daemon.log()


def test_token_guards_every_route_but_healthz(tmp_path: Path) -> None:
    token = "s3cret-token-for-tests"
    daemon = Daemon(tmp_path / "root", free_port(), env={"CLARITY_TOKEN": token}).start()
    try:
        daemon.wait_healthy()
        assert httpx.get(f"{daemon.url}/healthz").status_code == 200
        assert httpx.get(f"{daemon.url}/readyz").status_code == 401
        assert httpx.get(f"{daemon.url}/api/stats").status_code == 401
        assert httpx.post(f"{daemon.url}/mcp", json={}).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert httpx.get(f"{daemon.url}/api/stats", headers=wrong).status_code == 403
        right = {"Authorization": f"Bearer {token}"}
        deadline = time.monotonic() + 120
        while httpx.get(f"{daemon.url}/readyz", headers=right).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert httpx.get(f"{daemon.url}/api/stats", headers=right).status_code == 200
    finally:
        daemon.stop()


def test_storage_files_are_private(shared_daemon: Daemon) -> None:
    assert (shared_daemon.root.stat().st_mode & 0o077) == 0
    assert ((shared_daemon.root / "qdrant").stat().st_mode & 0o077) == 0
    assert ((shared_daemon.root / "clarity.lock").stat().st_mode & 0o077) == 0


def test_clarity_stop_ends_the_daemon_from_any_directory(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "root", free_port()).start()
    daemon.wait_healthy()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def clarity_stop() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "clarity", "stop"],
            env=daemon.env(),
            cwd=elsewhere,
            capture_output=True,
            text=True,
            timeout=60,
        )

    stopped = clarity_stop()
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped the Clarity daemon" in stopped.stdout
    assert daemon.process is not None and daemon.process.wait(10) == 0
    again = clarity_stop()
    assert again.returncode == 0 and "no Clarity daemon is running" in again.stdout
