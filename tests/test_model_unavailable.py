"""Retrieval and hooks keep answering from the lexical index while the model is loading or
broken, say so, and the memories stored meanwhile get dense vectors once the model is ready."""

from __future__ import annotations

import json
import time
from pathlib import Path

from clarity.embedding import create_embedding_provider
from clarity.memory import MemoryService
from clarity.models import MemoryCreate
from clarity.requests import RetrieveRequest
from clarity.store.base import MemoryFilter
from tests.conftest import make_settings, open_engine

from .daemon_util import Daemon, free_port

PAYLOADS = Path(__file__).parent / "fixtures" / "hook_payloads"


def test_lexical_answers_before_the_model_loads_then_vectors_backfill(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    embedder = create_embedding_provider(settings.embedding)  # not started: the model is not loaded
    service = MemoryService(settings, open_engine("embedded", tmp_path), embedder)
    stored = [
        service.store(MemoryCreate(content=text, scope="global"))
        for text in (
            "the payments worker retries webhooks five times",
            "grafana dashboards live in the observability repo",
            "release tags are signed with the team's GPG key",
        )
    ]
    assert [s.status for s in stored] == ["created"] * 3
    assert not embedder.ready
    pending = MemoryFilter(pending_vector=True)
    assert service.db.count(pending) == 3

    early = service.retrieve(RetrieveRequest(query="how many times are webhooks retried", scope="global"))
    assert early.mode == "lexical" and early.degraded and "loading" in early.degraded
    assert early.results[0].memory.id == stored[0].id

    service.start_background()  # waits for the model, then backfills
    embedder.start_loading()
    deadline = time.monotonic() + 120
    while service.db.count(pending) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert service.db.count(pending) == 0
    dense = service.retrieve(RetrieveRequest(query="monitoring charts", scope="global", mode="dense"))
    assert dense.degraded is None and dense.results[0].memory.id == stored[1].id
    assert dense.results[0].similarity is not None  # it has a dense vector now
    service.close()


def test_daemon_with_a_broken_model_still_serves_lexically(tmp_path: Path) -> None:
    daemon = Daemon(
        tmp_path / "root", free_port(), env={"CLARITY_EMBEDDING__MODEL": str(tmp_path / "no-model")}
    )
    daemon.start()
    try:
        daemon.wait_healthy()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            readiness = daemon.api("GET", "/../readyz").json()
            if readiness.get("model_error"):
                break
            time.sleep(0.2)
        assert readiness["ready"] is False and "could not load embedding model" in readiness["model_error"]

        created = daemon.api(
            "POST",
            "/memories",
            json={"content": "the nightly backup job writes to bucket archive-eu", "scope": "global"},
        )
        assert created.status_code == 201, created.text
        found = daemon.api(
            "POST", "/search", json={"query": "where does the nightly backup write", "scope": "global"}
        )
        body = found.json()
        assert found.status_code == 200 and body["mode"] == "lexical"
        assert "could not load embedding model" in body["degraded"]
        assert body["results"][0]["memory"]["content"].startswith("the nightly backup job")

        payload = json.loads((PAYLOADS / "UserPromptSubmit.json").read_text())
        payload.update(cwd=str(tmp_path), prompt="which bucket does the nightly backup use?")
        hook = daemon.api("POST", "/../hooks/UserPromptSubmit", json=payload)
        assert hook.status_code == 200
        assert "bucket archive-eu" in hook.json()["hookSpecificOutput"]["additionalContext"]
    finally:
        daemon.stop()
