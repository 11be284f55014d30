"""A developer's local service with the team tier attached, for the team tier's tests: the real
store, model and outbox; no sync thread, so a test runs the sync rounds itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from clarity.embedding import EmbeddingProvider
from clarity.memory import MemoryService
from clarity.team.sync import TeamSync

from .conftest import make_settings, open_engine


def local_service(tmp_path: Path, embedder: EmbeddingProvider) -> Iterator[MemoryService]:
    """The ``local`` fixture of each team test module: ``pytest.fixture(local_service, name="local")``."""
    service = MemoryService(make_settings(tmp_path), open_engine("embedded", tmp_path), embedder)
    yield service
    service.close()


def attach(service: MemoryService, url: str, token: str = "t-alice", **team: object) -> TeamSync:
    """The daemon's team tier on ``service``, without its thread: the test runs its rounds."""
    settings = make_settings(service.settings.storage.root, team={"url": url, "token": token, **team})
    sync = TeamSync(settings, service)
    service.team = sync.writes
    return sync
