"""Qdrant from .devcontainer/compose.yaml, brought up by pytest-docker.

Only the compose file's `qdrant` service is started (the workspace image is not built), under a
throwaway project name, so its volume is not the devcontainer's and `down -v` at the end removes
only what the tests made. The tests skip, with the reason, where there is no Docker engine or no
compose (`docker compose` plugin or docker-compose 1.x); the check runs at collection, and the
skip mark keeps pytest-docker's fixtures from ever being set up on such a machine.

The `compose_qdrant_url` fixture is the hook for running the server-engine suite against this
Qdrant (it is what QDRANT_URL should be set to).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / ".devcontainer" / "compose.yaml"
QDRANT_SERVICE = "qdrant"
QDRANT_HTTP_PORT = 6333


def _succeeds(cmd: list[str], timeout: float = 20) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=timeout, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _compose_command() -> str | None:
    if _succeeds(["docker", "compose", "version"]):
        return "docker compose"
    if shutil.which("docker-compose") and _succeeds(["docker-compose", "version"]):
        return "docker-compose"
    return None


def _unavailable_reason() -> tuple[str | None, str | None]:
    """(reason to skip, compose command), decided once at collection."""
    try:
        import pytest_docker  # noqa: F401
    except ImportError:
        return "pytest-docker is not installed (pip install -e '.[dev]')", None
    if shutil.which("docker") is None:
        return "no docker CLI on PATH", None
    if not _succeeds(["docker", "info"]):
        return "no Docker engine reachable: `docker info` failed", None
    command = _compose_command()
    if command is None:
        return "no compose: neither the `docker compose` plugin nor `docker-compose` works", None
    return None, command


SKIP_REASON, COMPOSE_COMMAND = _unavailable_reason()

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(SKIP_REASON is not None, reason=f"compose Qdrant tests need Docker: {SKIP_REASON}"),
]


def _pinned_qdrant_version() -> str:
    match = re.search(r"image:\s*qdrant/qdrant:v(\d+\.\d+\.\d+)\s", COMPOSE_FILE.read_text(encoding="utf-8"))
    assert match, f"no pinned qdrant/qdrant image in {COMPOSE_FILE}"
    return match.group(1)


# --- pytest-docker configuration (session scope, like the fixtures they override) ----------


@pytest.fixture(scope="session")
def docker_compose_command() -> str:
    assert COMPOSE_COMMAND is not None
    return COMPOSE_COMMAND


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(COMPOSE_FILE)


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    # Never the devcontainer's own project: `down -v` must not touch a developer's volumes.
    return f"clarity-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    # Only Qdrant; `--wait` is Compose v2 only, so readiness is polled below instead.
    return [f"up -d {QDRANT_SERVICE}"]


@pytest.fixture(scope="session")
def docker_cleanup() -> list[str]:
    return ["down -v"]


def _get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read().decode("utf-8"))


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def compose_qdrant_url(docker_ip: str, docker_services: Any) -> str:
    port = docker_services.port_for(QDRANT_SERVICE, QDRANT_HTTP_PORT)
    url = f"http://{docker_ip}:{port}"
    docker_services.wait_until_responsive(check=lambda: _ready(url), timeout=120.0, pause=1.0)
    return url


@pytest.fixture
def qdrant_env(compose_qdrant_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """QDRANT_URL pointing at the compose Qdrant, as the server-engine tests expect it."""
    monkeypatch.setenv("QDRANT_URL", compose_qdrant_url)
    yield compose_qdrant_url


# --- tests ----------------------------------------------------------------------------------


def test_qdrant_http_api_answers(qdrant_env: str) -> None:
    url = os.environ["QDRANT_URL"]
    assert url == qdrant_env
    info = _get_json(f"{url}/")
    assert isinstance(info, dict)
    assert info.get("version") == _pinned_qdrant_version(), info
    collections = _get_json(f"{url}/collections")
    assert isinstance(collections, dict) and collections.get("status") == "ok", collections


def test_qdrant_round_trip_with_qdrant_client(qdrant_env: str) -> None:
    qdrant_client = pytest.importorskip("qdrant_client")
    from qdrant_client import models

    client = qdrant_client.QdrantClient(url=os.environ["QDRANT_URL"], timeout=30)
    name = f"smoke_{uuid.uuid4().hex[:8]}"
    client.create_collection(
        name, vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE)
    )
    try:
        client.upsert(
            name,
            points=[
                models.PointStruct(id=1, vector=[1.0, 0.0, 0.0, 0.0], payload={"scope": "a"}),
                models.PointStruct(id=2, vector=[0.0, 1.0, 0.0, 0.0], payload={"scope": "b"}),
            ],
            wait=True,
        )
        hits = client.query_points(name, query=[0.9, 0.1, 0.0, 0.0], limit=1).points
        assert [hit.id for hit in hits] == [1]
    finally:
        client.delete_collection(name)


def test_server_engine_suite_against_compose_qdrant(qdrant_env: str) -> None:
    """The same store and memory-service cases that run on the embedded engine, on this server."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "QDRANT_URL": qdrant_env, "CLARITY_REQUIRE_QDRANT": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-k", "server", "tests/test_store.py", "tests/test_memory.py"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and " skipped" not in result.stdout.splitlines()[-1]
