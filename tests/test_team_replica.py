"""The replica: team changes pulled into the local store as ordinary records with their author,
their vectors reused, fused with personal memories in one ranked answer; a tombstone deletes the
local copy; a memory with a write still waiting here is left alone; each project's cursor is kept.

The team server is ``tests/team_stub.py`` on loopback; the store, model and hooks are real."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from clarity.embedding import EmbeddingProvider
from clarity.hooks.events import HookEvent
from clarity.hooks.service import HookService
from clarity.memory import MemoryNotFound, MemoryService
from clarity.models import Memory, MemoryCreate, MemoryType, content_hash, new_memory_id, utcnow
from clarity.project import project_scope
from clarity.requests import RetrieveRequest
from clarity.team.protocol import OVERLAP_MS, Change
from clarity.team.sync import TeamSync

from .team_local import attach, local_service
from .team_stub import StubState, team_stub

local = pytest.fixture(local_service, name="local")
BOB = "Production deploys need two approvals in the #deploys channel."


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A clone of the team's repository: a remote, so its id is the same on every clone."""
    path = tmp_path / "shop"
    path.mkdir()
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    subprocess.run(
        ["git", "-C", str(path), "remote", "add", "origin", "git@example.com:acme/shop.git"], check=True
    )
    return path


def teammate_put(
    state: StubState, project: str, text: str, vector: list[float], author: str = "bob"
) -> Memory:
    now = utcnow()
    memory = Memory(
        id=new_memory_id(),
        content=text,
        memory_type=MemoryType.fact,
        scope=project,
        created_at=now,
        updated_at=now,
        content_hash=content_hash(text),
        shared=True,
        author=author,
    )
    state.add_change(
        Change(
            id=memory.id, project=project, kind="put", changed_at=state.stamp(), memory=memory, vector=vector
        )
    )
    return memory


def nudged(embedder: EmbeddingProvider, text: str) -> list[float]:
    """``text``'s vector, moved a little: what the replica keeps tells reuse from re-embedding."""
    vector = np.asarray(embedder.embed_documents([text])[0]) + 0.002
    return [float(x) for x in vector / np.linalg.norm(vector)]


@pytest.fixture
def replica(
    local: MemoryService, embedder: EmbeddingProvider, repo: Path
) -> Iterator[tuple[TeamSync, StubState, str]]:
    """Alice's team tier on ``local``, a team server whose vectors are her model's, and the
    project of ``repo`` (seen here, as a hook's cwd makes it known)."""
    with team_stub() as (url, state):
        state.model = embedder.identity
        sync = attach(local, url)
        yield sync, state, project_scope(str(repo))


def test_team_memories_arrive_with_their_author_and_fuse_with_personal_ones(
    local: MemoryService, embedder: EmbeddingProvider, repo: Path, replica: tuple[TeamSync, StubState, str]
) -> None:
    sync, state, project = replica
    mine = local.store(MemoryCreate(content="We deploy staging with `make ship-staging`."), project)
    vector = nudged(embedder, BOB)
    bobs = teammate_put(state, project, BOB, vector)
    sync.round()
    got = local.get(bobs.id)
    assert (got.author, got.shared, got.content) == ("bob", True, BOB)
    found = local.record_with_vector(bobs.id)
    assert found is not None and found[1] == pytest.approx(vector, abs=1e-6)  # reused, not re-embedded
    answer = local.retrieve(RetrieveRequest(query="how do we deploy", limit=5), project)
    ids = [hit.memory.id for hit in answer.results]
    assert {mine.id, bobs.id} <= set(ids)
    scores = [hit.score for hit in answer.results]
    assert scores == sorted(scores, reverse=True)  # one ranked answer
    hooks = HookService(local.settings, local)
    try:
        event = HookEvent(
            hook_event_name="UserPromptSubmit",
            session_id="s1",
            cwd=str(repo),
            prompt="how many approvals do production deploys need?",
        )
        context = hooks.handle(event)["hookSpecificOutput"]["additionalContext"]
    finally:
        hooks.close()
    assert BOB[:40] in context and "shared by bob" in context
    # A tombstone deletes the local copy; the personal memory stays.
    state.add_change(Change(id=bobs.id, project=project, kind="delete", changed_at=state.stamp()))
    sync.round()
    with pytest.raises(MemoryNotFound):
        local.get(bobs.id)
    assert local.get(mine.id).content.startswith("We deploy staging")


def test_a_memory_with_a_write_waiting_is_left_alone_and_cursors_are_kept(
    local: MemoryService, embedder: EmbeddingProvider, replica: tuple[TeamSync, StubState, str]
) -> None:
    sync, state, project = replica
    ours = local.store(MemoryCreate(content="The API rate limit is 600 a minute.", shared=True), project)
    older = ours.memory.model_copy(
        update={"content": "The API rate limit is 100 a minute.", "author": "alice"}
    )
    state.add_change(
        Change(
            id=ours.id,
            project=project,
            kind="put",
            changed_at=state.stamp(),
            memory=older,
            vector=nudged(embedder, older.content),
        )
    )
    sync.whoami = sync.client.whoami()
    sync.pull()  # before the push: the local edit is newer than the team's copy
    assert local.get(ours.id).content == "The API rate limit is 600 a minute."
    sync.round()  # pushed, then pulled back with its author
    back = local.get(ours.id)
    assert (back.content, back.author) == ("The API rate limit is 600 a minute.", "alice")
    cursor = sync.outbox.cursors()[project]
    assert cursor == state.records[ours.id].changed_at
    sync.outbox.close()
    again = TeamSync(local.settings.model_copy(update={"team": sync.team}), local)  # a restart
    assert again.outbox.cursors()[project] == cursor
    state.bodies.clear()
    again.round()
    asked = [parse_qs(urlsplit(b.decode()).query) for b in state.bodies if b.startswith(b"/team/v1/changes")]
    # Other projects this process has seen (earlier tests' repositories) are pulled too: look at ours.
    ours_asked = [query for query in asked if query["projects"] == [project]]
    assert ours_asked and ours_asked[0]["since"] == [str(cursor - OVERLAP_MS)], asked


def test_projects_pulled_are_repositories_with_a_remote(
    local: MemoryService, repo: Path, tmp_path: Path
) -> None:
    plain = tmp_path / "scratch"
    plain.mkdir()
    with team_stub() as (url, _):
        sync = attach(local, url)
        team_project, folder = project_scope(str(repo)), project_scope(str(plain))
        projects = sync.projects()
        assert team_project in projects and folder not in projects  # a folder's name stays here
