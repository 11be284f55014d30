"""Which memories go to the team, and the secret gate: a memory that held a secret stays personal,
is never enqueued and never reaches the wire; a global memory is never shared; the caller is told.

The team server is ``tests/team_stub.py`` on loopback; it records every request it receives."""

from __future__ import annotations

from pathlib import Path

import pytest

from clarity.config_team import TeamSettings
from clarity.hooks.events import HookEvent
from clarity.hooks.service import HookService
from clarity.memory import MemoryService
from clarity.memory.service import NO_TEAM
from clarity.models import MemoryCreate, MemoryPatch, MemoryType, Source
from clarity.team.share import GLOBAL_NEVER, HELD_SECRET, SHARED, decide

from .team_local import attach, local_service
from .team_stub import team_stub
from .test_team_outbox import PROJECT

local = pytest.fixture(local_service, name="local")
TOKEN = "ghp_1234567890abcdefghijklmnopqrstuvwxyzAB"
TEAM = TeamSettings(url="https://team.example:8443")


def test_the_share_decision() -> None:
    said = {
        "asked": decide(MemoryCreate(content="We use pnpm.", shared=True), TEAM),
        "not asked": decide(MemoryCreate(content="We use pnpm."), TEAM),
        "global": decide(MemoryCreate(content="I like tabs.", scope="global", shared=True), TEAM),
        "secret": decide(MemoryCreate(content=f"The CI token is {TOKEN}.", shared=True), TEAM),
        "secret in a tag": decide(MemoryCreate(content="CI token", tags=[TOKEN[:40]], shared=True), TEAM),
    }
    assert {name: (request.shared, note) for name, (request, note) in said.items()} == {
        "asked": (True, SHARED),
        "not asked": (False, None),
        "global": (False, GLOBAL_NEVER),
        "secret": (False, HELD_SECRET),
        "secret in a tag": (False, HELD_SECRET),
    }
    every = TEAM.model_copy(update={"share": "project"})
    assert decide(MemoryCreate(content="We use pnpm."), every)[0].shared
    # Not asked for, so nothing to say: a global memory is simply personal.
    assert decide(MemoryCreate(content="I like tabs.", scope="global"), every) == (
        MemoryCreate(content="I like tabs.", scope="global"),
        None,
    )


def test_a_memory_with_a_secret_stays_personal_and_never_reaches_the_wire(local: MemoryService) -> None:
    with team_stub() as (url, state):
        sync = attach(local, url)
        secret = local.store(
            MemoryCreate(content=f"Deploy with the token {TOKEN} on host db7.", shared=True), PROJECT
        )
        mine = local.store(
            MemoryCreate(content="I keep my notes in ~/notes.", scope="global", shared=True), PROJECT
        )
        shared = local.store(MemoryCreate(content="Deploys go through `make ship`.", shared=True), PROJECT)
        assert (secret.team, secret.memory.shared) == (HELD_SECRET, False)
        assert "[REDACTED" in secret.memory.content  # stored, redacted, on this machine only
        assert (mine.team, mine.memory.shared) == (GLOBAL_NEVER, False)
        assert [op.memory_id for op in sync.outbox.head(10)] == [shared.id]  # never enqueued
        sync.round()
        wire = b"\n".join(state.bodies)
        assert shared.id.encode() in wire
        for kept in (secret, mine):
            assert kept.id.encode() not in wire
        assert b"db7" not in wire and b"notes" not in wire and b"REDACTED" not in wire


def test_an_update_that_brings_a_secret_withdraws_the_memory_from_the_team(local: MemoryService) -> None:
    with team_stub() as (url, state):
        sync = attach(local, url)
        stored = local.store(MemoryCreate(content="The staging database is pg-stage.", shared=True), PROJECT)
        sync.round()
        assert state.records[stored.id].kind == "put"
        updated = local.update(stored.id, MemoryPatch(content=f"pg-stage, password={TOKEN}"))
        assert updated.shared is False and local.get(stored.id).shared is False
        sync.round()
        assert state.records[stored.id].kind == "delete"  # withdrawn; its new text never sent
        assert TOKEN[4:20].encode() not in b"\n".join(state.bodies)
        later = local.update(stored.id, MemoryPatch(content="pg-stage is the staging database."))
        assert later.shared is False  # personal from then on: sharing again is a new store
        assert sync.outbox.waiting() == 0


def test_without_a_team_server_a_shared_memory_is_kept_personal_and_said(local: MemoryService) -> None:
    result = local.store(MemoryCreate(content="We use pnpm.", shared=True), PROJECT)
    assert (result.team, result.memory.shared) == (NO_TEAM, False)
    assert local.store(MemoryCreate(content="We use pnpm 9."), PROJECT).team is None


def test_share_project_shares_what_hooks_learn_but_never_a_global_memory(local: MemoryService) -> None:
    with team_stub() as (url, _):
        sync = attach(local, url, share="project")
        learned = local.store(
            MemoryCreate(
                content="`pnpm test` failed: missing fixture",
                memory_type=MemoryType.error,
                source=Source.hook,
            ),
            PROJECT,
        )
        mine = local.store(MemoryCreate(content="I prefer short answers.", scope="global"), PROJECT)
        assert learned.memory.shared and not mine.memory.shared
        assert [op.memory_id for op in sync.outbox.head(10)] == [learned.id]


def test_remember_for_the_team_in_a_prompt(local: MemoryService, tmp_path: Path) -> None:
    with team_stub() as (url, _):
        sync = attach(local, url)
        hooks = HookService(local.settings, local)
        try:

            def prompt(text: str) -> str:
                event = HookEvent(
                    hook_event_name="UserPromptSubmit", session_id="s1", cwd=str(tmp_path), prompt=text
                )
                return hooks.handle(event)["hookSpecificOutput"]["additionalContext"]

            said = prompt("remember for the team that releases are cut on Tuesdays")
            assert "for this project, shared with the team" in said
            assert ": releases are cut on Tuesdays" in said
            kept = prompt(f"remember for the team that the deploy key is {TOKEN}")
            assert "kept personal: it held a secret" in kept
            plain = prompt("remember that I run tests with -x")
            assert "shared" not in plain and "personal" not in plain
            assert len(sync.outbox.head(10)) == 1
        finally:
            hooks.close()
