"""What hooks give the model, checked on a real HookService over the real model and engine:
a memory once per session across SessionStart, UserPromptSubmit and PreToolUse; the brief by
importance, kind and recency with what the user asked to remember; age and origin on every line;
use counts only for what reached the model."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from clarity.embedding import EmbeddingProvider
from clarity.hooks.events import HookEvent
from clarity.hooks.learner import program_tag
from clarity.hooks.service import HookService
from clarity.hooks.session_budget import FILE_NAME, SessionBudget
from clarity.memory import MemoryService
from clarity.models import Memory, MemoryCreate, MemoryPatch, MemoryType
from clarity.project import project_scope
from clarity.requests import RetrieveRequest

from .conftest import make_settings, open_engine

FIXTURES = Path(__file__).parent / "fixtures" / "hook_payloads"
# "- [kind] text (3 days ago; learned from ...; id 1a2b3c4d)"
LINE = re.compile(r"^- \[\w+\] .+ \((?:just now|\d+ \w+ ago)(?:, seen \d+ times)?; [^;]+; id [0-9a-f]{8}\)$")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    return repo


def _hooks(root: Path, embedder: EmbeddingProvider, **hooks: Any) -> tuple[MemoryService, HookService]:
    settings = make_settings(root, hooks=hooks) if hooks else make_settings(root)
    memory = MemoryService(settings, open_engine("embedded", root), embedder)
    return memory, HookService(settings, memory)


@pytest.fixture
def served(tmp_path: Path, embedder: EmbeddingProvider) -> Iterator[tuple[MemoryService, HookService]]:
    memory, hooks = _hooks(tmp_path / "root", embedder)
    yield memory, hooks
    hooks.close()
    memory.close()


def event(name: str, project: Path, session: str, **fields: Any) -> HookEvent:
    data = json.loads((FIXTURES / f"{name}.json").read_text())
    data.update(cwd=str(project), session_id=session, **fields)
    return HookEvent.model_validate(data)


def context(reply: dict[str, Any]) -> str:
    return str(reply.get("hookSpecificOutput", {}).get("additionalContext", ""))


def store(memory: MemoryService, project: Path, content: str, **fields: Any) -> Memory:
    return memory.store(MemoryCreate(content=content, **fields), project=project_scope(str(project))).memory


def aged(memory: MemoryService, item: Memory, days: float) -> Memory:
    """The same record, created and last updated ``days`` ago."""
    moment = datetime.now(UTC) - timedelta(days=days)
    older = item.model_copy(update={"created_at": moment, "updated_at": moment})
    memory.put_memories([older])
    return older


def bash(project: Path, session: str, command: str) -> HookEvent:
    return event("PreToolUse", project, session, tool_input={"command": command})


def prompt(project: Path, session: str, text: str, **fields: Any) -> HookEvent:
    return event("UserPromptSubmit", project, session, prompt=text, **fields)


def test_a_memory_reaches_a_session_once_across_its_hooks(
    served: tuple[MemoryService, HookService], project: Path
) -> None:
    memory, hooks = served
    fix = store(
        memory,
        project,
        "`./run-tests.sh` failed with: missing config file settings.ini. "
        "Fixed by running `cp settings.example.ini settings.ini && ./run-tests.sh`.",
        memory_type=MemoryType.fix,
        scope="project",
        tags=[program_tag("./run-tests.sh")],
    )
    asked = "the run-tests.sh script fails with missing config file settings.ini again, what fixed it?"

    brief = context(hooks.handle(event("SessionStart", project, "s1")))
    assert "Recent fixes:" in brief and fix.id[:8] in brief
    assert hooks.handle(prompt(project, "s1", asked)) == {}  # in the brief already
    assert hooks.handle(bash(project, "s1", "./run-tests.sh")) == {}

    # another session: each hook gives it once, the first one that matches
    assert fix.id[:8] in context(hooks.handle(prompt(project, "s2", asked)))
    assert hooks.handle(prompt(project, "s2", asked)) == {}
    assert hooks.handle(bash(project, "s2", "./run-tests.sh --verbose")) == {}
    assert fix.id[:8] in context(hooks.handle(bash(project, "s3", "./run-tests.sh")))
    # the context was compacted or cleared: the brief is needed again
    assert hooks.handle(event("SessionStart", project, "s1", source="resume")) == {}
    assert fix.id[:8] in context(hooks.handle(event("SessionStart", project, "s1", source="compact")))
    assert fix.id[:8] in context(hooks.handle(event("SessionStart", project, "s1", source="clear")))
    # changed: given again, once
    memory.update(fix.id, MemoryPatch(content=fix.content + " Then rerun with -v."))
    assert "Then rerun with -v." in context(hooks.handle(prompt(project, "s2", asked)))
    assert hooks.handle(prompt(project, "s2", asked)) == {}
    # the session ended: its record stays for a resume (same id, the transcript restored)
    assert hooks.handle(event("SessionEnd", project, "s2")) == {}
    assert hooks.handle(event("SessionStart", project, "s2", source="resume")) == {}
    assert hooks.handle(prompt(project, "s2", asked)) == {}


def test_a_subagent_is_given_memories_apart_from_its_session(
    tmp_path: Path, embedder: EmbeddingProvider, project: Path
) -> None:
    memory, hooks = _hooks(tmp_path / "root", embedder, inject_in_subagents=True)
    try:
        fix = store(memory, project, "billing_v2 migrations run with `make migrate`", scope="project")
        asked = "how do billing_v2 migrations run?"
        assert fix.id[:8] in context(hooks.handle(prompt(project, "s", asked)))
        assert fix.id[:8] in context(hooks.handle(prompt(project, "s", asked, agent_id="agent-1")))
        assert hooks.handle(prompt(project, "s", asked, agent_id="agent-1")) == {}
    finally:
        hooks.close()
        memory.close()


def test_the_record_survives_a_restart(tmp_path: Path, embedder: EmbeddingProvider, project: Path) -> None:
    root = tmp_path / "root"
    memory, hooks = _hooks(root, embedder)
    fix = store(memory, project, "billing_v2 migrations run with `make migrate`", scope="project")
    asked = "how do billing_v2 migrations run?"
    assert fix.id[:8] in context(hooks.handle(prompt(project, "s", asked)))
    hooks.close()
    memory.close()
    assert (root / "app-data" / FILE_NAME).exists()
    memory, hooks = _hooks(root, embedder)
    try:
        assert hooks.handle(prompt(project, "s", asked)) == {}
        assert fix.id[:8] in context(hooks.handle(prompt(project, "other", asked)))
    finally:
        hooks.close()
        memory.close()
    # a damaged file is ignored: no crash, the memory is given once more
    (root / "app-data" / FILE_NAME).write_text("{not json")
    assert len(SessionBudget(root / "app-data" / FILE_NAME)) == 0


def test_the_brief_ranks_importance_and_recency_and_keeps_what_the_user_asked(
    served: tuple[MemoryService, HookService], project: Path
) -> None:
    memory, hooks = served
    for i in range(8):
        kind = MemoryType.preference if i % 2 else MemoryType.decision
        store(memory, project, f"Minor convention number {i}: keep module {i} tidy", memory_type=kind)
    key = store(
        memory,
        project,
        "We chose Postgres over MySQL for the ledger, for its transactional DDL",
        memory_type=MemoryType.decision,
        importance=0.95,
    )
    aged(memory, key, 90)
    noted = hooks.handle(prompt(project, "first", "remember that we deploy with make ship"))
    assert "Clarity stored this as a fact" in context(noted)

    brief = context(hooks.handle(event("SessionStart", project, "second")))
    lines = brief.splitlines()
    assert lines[0].startswith("Clarity memory for this project")
    asked = lines.index("You asked to remember:")
    assert lines[asked + 1].startswith(
        "- [fact] we deploy with make ship (just now; the user asked to remember"
    )
    decisions = lines.index("Preferences and decisions:")
    assert lines[decisions + 1].startswith("- [decision] We chose Postgres over MySQL"), brief
    assert "(3 months ago; stored explicitly; id " in lines[decisions + 1]
    assert sum(line.startswith("- [") for line in lines) == 1 + 6  # the section caps
    assert len(brief) <= hooks.settings.context_chars
    # the session that stored it was told already
    assert "we deploy with make ship" not in context(hooks.handle(event("SessionStart", project, "first")))


def test_every_injected_line_carries_age_and_origin(
    served: tuple[MemoryService, HookService], project: Path
) -> None:
    memory, hooks = served
    fix = store(
        memory,
        project,
        "`pnpm test` failed with: Cannot find module 'zod'. Fixed by running `pnpm install`.",
        memory_type=MemoryType.fix,
        scope="project",
        tags=[program_tag("pnpm")],
        source="hook",
        metadata={"failed_command": "pnpm test", "hook_event": "PostToolUse"},
    )
    aged(memory, fix, 3)
    store(memory, project, "The ledger_v3 service owns invoices", memory_type=MemoryType.decision)
    brief = context(hooks.handle(event("SessionStart", project, "a")))
    given = context(hooks.handle(prompt(project, "b", "who owns invoices in ledger_v3?")))
    before = context(hooks.handle(bash(project, "c", "pnpm test --filter web")))
    assert f"Fixed by running `pnpm install`. (3 days ago; learned from a fix; id {fix.id[:8]})" in before
    for text in (brief, given, before):
        entries = [line for line in text.splitlines() if line.startswith("- ")]
        assert entries, text
        assert all(LINE.match(line) for line in entries), text


def test_uses_count_only_what_reached_the_model(
    tmp_path: Path, embedder: EmbeddingProvider, project: Path
) -> None:
    # room for two lines: of the six retrieved (2 x max_memories), two reach the model
    memory, hooks = _hooks(tmp_path / "root", embedder, max_memories=3, context_chars=300)
    try:
        stored = [
            store(memory, project, f"billing_v2 note {i}: invoices are batched at {i}:00 UTC")
            for i in range(6)
        ]
        result = memory.retrieve(
            RetrieveRequest(query="billing_v2 batching", limit=6),
            project=project_scope(str(project)),
            track_use=False,
        )
        assert len(result.results) == 6
        text = context(hooks.handle(prompt(project, "s", "when are billing_v2 invoices batched?")))
        given = [m for m in stored if m.id[:8] in text]
        assert len(given) == 2, text
        uses = memory.uses(stored)
        assert {m.id for m in stored if uses[m.id]} == {m.id for m in given}
        assert all(uses[m.id] == 1 for m in given)
        # the brief counts what it shows, once
        memory.update(stored[0].id, MemoryPatch(memory_type=MemoryType.decision))
        brief = context(hooks.handle(event("SessionStart", project, "other")))
        assert stored[0].id[:8] in brief
        assert memory.uses(stored)[stored[0].id] == uses[stored[0].id] + 1
    finally:
        hooks.close()
        memory.close()


def _memory(content: str) -> Memory:
    now = datetime.now(UTC)
    return Memory(
        id=str(uuid.uuid4()),
        content=content,
        memory_type=MemoryType.fact,
        scope="global",
        created_at=now,
        updated_at=now,
        content_hash=content,
    )


def _give(budget: SessionBudget, key: str, memories: list[Memory]) -> list[Memory]:
    return budget.claim(key, memories, lambda m: m, lambda fresh: ("text", fresh))[1]


def test_concurrent_hooks_of_one_session_give_a_memory_once() -> None:
    budget = SessionBudget()
    memories = [_memory(f"fact {i}") for i in range(20)]
    with ThreadPoolExecutor(8) as pool:
        given = list(pool.map(lambda _: _give(budget, "s", memories), range(32)))
    assert sorted(m.id for batch in given for m in batch) == sorted(m.id for m in memories)


def test_the_record_is_bounded_and_ended_sessions_go_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("clarity.hooks.session_budget.MAX_SESSIONS", 3)
    monkeypatch.setattr("clarity.hooks.session_budget.MAX_IDS", 5)
    budget = SessionBudget()
    memories = [_memory(f"fact {i}") for i in range(8)]
    assert len(_give(budget, "a", memories)) == 8
    assert _give(budget, "a", memories[-5:]) == []  # the last five are kept
    assert len(_give(budget, "a", memories[:3])) == 3  # the oldest were dropped: given once more
    _give(budget, "b", memories)
    _give(budget, "c", memories)
    budget.end("b")  # first in line now, though not the least recently used
    _give(budget, "d", memories)
    assert len(budget) == 3
    assert _give(budget, "b", memories[-1:]) == memories[-1:]  # dropped
