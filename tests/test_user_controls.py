"""The user's switches, each shown to change behaviour: pause/resume, CLARITY_DISABLED,
excluded tools and paths, subagents, and the storage cap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from clarity.embedding import EmbeddingProvider
from clarity.hooks.events import EVENTS, HookEvent
from clarity.hooks.service import HookService
from clarity.lifecycle.retention import SizeGuard, disk_usage
from clarity.memory import MemoryService
from clarity.models import MemoryCreate, MemoryType
from clarity.project import project_scope
from clarity.requests import ListRequest
from tests.conftest import make_settings, open_engine

from .daemon_util import Daemon

FIXTURES = Path(__file__).parent / "fixtures" / "hook_payloads"


def event(name: str, cwd: Path, **fields: Any) -> HookEvent:
    data = json.loads((FIXTURES / f"{name}.json").read_text())
    fields.setdefault("session_id", f"s-{uuid.uuid4().hex[:6]}")
    data.update(cwd=str(cwd), **fields)
    return HookEvent.model_validate(data)


def context(reply: dict[str, Any]) -> str:
    return str(reply.get("hookSpecificOutput", {}).get("additionalContext", ""))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


@pytest.fixture
def hooks(
    tmp_path: Path, embedder: EmbeddingProvider, request: pytest.FixtureRequest
) -> Iterator[HookService]:
    sections = getattr(request, "param", {})
    settings = make_settings(tmp_path / "root", **sections)
    service = MemoryService(settings, open_engine("embedded", tmp_path / "root"), embedder)
    hook_service = HookService(settings, service)
    yield hook_service
    hook_service.close()
    service.close()


def project_memories(hooks: HookService, repo: Path) -> list[str]:
    hooks.learner.drain()
    page = hooks.memory.list(ListRequest(scope="project", limit=100), project=project_scope(str(repo)))
    return [m.content for m in page.memories]


def seed(hooks: HookService, repo: Path) -> None:
    hooks.memory.store(
        MemoryCreate(
            content="The integration tests need the docker network named ci-net", memory_type=MemoryType.fact
        ),
        project=project_scope(str(repo)),
    )


def clarity_cli(root: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLARITY_")}
    env.update(CLARITY_STORAGE__ROOT=str(root), MEMORY_CONFIG_PATH=str(root / "config.json"))
    return subprocess.run(
        [sys.executable, "-m", "clarity", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_pause_and_resume_per_project_and_globally(hooks: HookService, repo: Path, tmp_path: Path) -> None:
    seed(hooks, repo)

    def prompt() -> HookEvent:  # a new session each time: a session is given a memory once
        return event("UserPromptSubmit", repo, prompt="which docker network do the integration tests need?")

    assert "ci-net" in context(hooks.handle(prompt()))

    paused = clarity_cli(tmp_path / "root", repo, "pause")
    assert paused.returncode == 0 and "paused for this project" in paused.stdout, paused.stderr
    assert hooks.handle(prompt()) == {}
    ran = event("PostToolUse", repo, tool_input={"command": "make lint"})
    hooks.handle(ran)
    assert not any("make lint" in m for m in project_memories(hooks, repo))  # nothing learned while paused
    other = tmp_path / "other"
    other.mkdir()
    assert (
        hooks.handle(event("UserPromptSubmit", other, prompt="remember that the other project uses tabs"))
        != {}
    )

    assert clarity_cli(tmp_path / "root", repo, "resume").returncode == 0
    assert "ci-net" in context(hooks.handle(prompt()))

    assert clarity_cli(tmp_path / "root", tmp_path, "pause", "--global").returncode == 0
    assert hooks.handle(prompt()) == {}
    assert clarity_cli(tmp_path / "root", tmp_path, "resume", "--global").returncode == 0
    assert "ci-net" in context(hooks.handle(prompt()))


def test_excluded_paths_and_tools_teach_nothing(hooks: HookService, repo: Path) -> None:
    session = "s-excluded"
    for path in (".env", "config/secrets/prod.yaml", "deploy/server.pem", "src/app.py"):
        edit = {"file_path": str(repo / path)}
        hooks.handle(event("PostToolUse", repo, tool_name="Edit", tool_input=edit, session_id=session))
    cat = {"command": "cat .env.production && ./deploy.sh"}
    hooks.handle(event("PostToolUse", repo, tool_input=cat, session_id=session))
    hooks.handle(
        event("PostToolUse", repo, tool_input={"command": "pytest -q tests/unit"}, session_id=session)
    )
    hooks.handle(event("Stop", repo, session_id=session))
    learned = "\n".join(project_memories(hooks, repo))
    assert "src/app.py" in learned and "pytest -q tests/unit" in learned
    for secret in (".env", "prod.yaml", "server.pem", "deploy.sh"):
        assert secret not in learned, f"{secret} was learned: {learned}"

    (repo / ".clarity.json").write_text(json.dumps({"exclude_tools": ["Bash"]}), encoding="utf-8")
    from clarity.hooks.controls import _rules_cache

    _rules_cache.clear()
    hooks.handle(event("PostToolUse", repo, tool_input={"command": "npm run build"}))
    assert not any("npm run build" in m for m in project_memories(hooks, repo))


@pytest.mark.parametrize(
    "hooks", [{"hooks": {"guards": [{"pattern": ".", "decision": "deny", "reason": "any"}]}}], indirect=True
)
def test_events_answered_before_they_are_handled(hooks: HookService, repo: Path, tmp_path: Path) -> None:
    """The daemon replies {} to these before handle() runs (reply_is_empty): handle() must agree
    even with memories to offer and a guard matching every command, and handling them after the
    reply keeps arrival order (a fix is only a fix after its failure) and the pause switch."""
    seed(hooks, repo)
    answered_early = set()
    for fixture in sorted(FIXTURES.glob("*.json")):
        if fixture.stem.split(".")[0] not in EVENTS:
            continue
        hook = event(fixture.stem, repo, prompt="which docker network do the integration tests need?")
        if HookService.reply_is_empty(hook):
            answered_early.add(fixture.stem)
            assert hooks.handle(hook) == {}, fixture.stem
    # A PreToolUse naming a file (Edit, Write) is handled: per-file recall may have context for it.
    assert answered_early == {
        "PostToolUse",
        "PostToolUse.Edit",
        "PostToolUse.Write",
        "PostToolUseFailure",
        "Stop",
        "SessionEnd",
    }

    failing = {"command": "./check.sh"}
    hooks.handle_after_reply(event("PostToolUseFailure", repo, tool_input=failing, session_id="s-order"))
    fixing = {"command": "touch ready.flag && ./check.sh"}
    hooks.handle_after_reply(event("PostToolUse", repo, tool_input=fixing, session_id="s-order"))
    deadline = time.monotonic() + 60
    while hooks.backlog and time.monotonic() < deadline:  # handled and learned before the pause
        time.sleep(0.01)
    hooks.pauses.set(project_scope(str(repo)), True)
    hooks.handle_after_reply(event("PostToolUse", repo, tool_input={"command": "make while-paused"}))
    hooks.close()  # waits until everything handed over is handled and learned
    learned = project_memories(hooks, repo)
    assert any("Fixed by running `touch ready.flag" in m for m in learned), learned
    assert not any("while-paused" in m for m in learned)
    assert hooks.backlog == 0


def test_a_pause_is_judged_when_the_event_happens(hooks: HookService, repo: Path) -> None:
    """Found in review: with the pause checked only when the learner took an event, a command
    run while paused was learned if the pause was lifted before the learner got to it."""
    seed(hooks, repo)  # works the project out once, as the session's first prompt does
    busy = [{"command": f"./step-{i}.sh --verbose"} for i in range(8)]
    for tool_input in busy:  # keep the learner busy, so the next event waits in the queue
        hooks.handle_after_reply(event("PostToolUseFailure", repo, tool_input=tool_input, error="exit 1"))
    hooks.pauses.set(project_scope(str(repo)), True)
    hooks.handle_after_reply(event("PostToolUse", repo, tool_input={"command": "make ran-while-paused"}))
    hooks.pauses.set(project_scope(str(repo)), False)
    hooks.close()
    learned = project_memories(hooks, repo)
    assert any("step-7" in m for m in learned), learned  # the learner did run
    assert not any("ran-while-paused" in m for m in learned), learned


def test_subagent_hooks_do_not_inject_by_default(hooks: HookService, repo: Path) -> None:
    seed(hooks, repo)
    failing = event(
        "PostToolUseFailure", repo, tool_input={"command": "make itest"}, error="network ci-net not found"
    )
    hooks.handle(failing)
    project_memories(hooks, repo)
    before = event("PreToolUse", repo, tool_input={"command": "make itest"})
    assert "ci-net" in context(hooks.handle(before))
    inside = event(
        "PreToolUse", repo, tool_input={"command": "make itest"}, agent_id="a1b2", agent_type="Explore"
    )
    assert hooks.handle(inside) == {}


@pytest.mark.parametrize("hooks", [{"hooks": {"inject_in_subagents": True}}], indirect=True)
def test_subagent_injection_can_be_switched_on(hooks: HookService, repo: Path) -> None:
    hooks.handle(
        event(
            "PostToolUseFailure", repo, tool_input={"command": "make itest"}, error="network ci-net not found"
        )
    )
    project_memories(hooks, repo)
    inside = event(
        "PreToolUse", repo, tool_input={"command": "make itest"}, agent_id="a1b2", agent_type="Explore"
    )
    assert "ci-net" in context(hooks.handle(inside))


def test_clarity_disabled_header_makes_http_hooks_no_ops(shared_daemon: Daemon, repo: Path) -> None:
    body = json.loads((FIXTURES / "UserPromptSubmit.json").read_text())
    body.update(cwd=str(repo), prompt="remember that staging deploys need a change ticket")
    url = f"{shared_daemon.url}/hooks/UserPromptSubmit"
    off = httpx.post(url, json=body, headers={"X-Clarity-Disabled": "1"}, timeout=30)
    assert off.status_code == 200 and off.json() == {}
    # Claude Code leaves $CLARITY_DISABLED as is when the variable is unset: that is not "disabled".
    on = httpx.post(url, json=body, headers={"X-Clarity-Disabled": "$CLARITY_DISABLED"}, timeout=30)
    assert "Clarity stored this" in on.json()["hookSpecificOutput"]["additionalContext"]


def test_storage_cap_warns_then_evicts_oldest_low_importance_first(
    embedder: EmbeddingProvider, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    service = MemoryService(make_settings(root), open_engine("embedded", root), embedder)
    keep = service.store(
        MemoryCreate(content="we deploy with blue-green switches", importance=0.9, scope="global")
    )
    for i in range(120):
        service.store(
            MemoryCreate(content=f"low value observation {i} about build {i}", importance=0.1, scope="global")
        )
        time.sleep(0.001)
    service.db.flush()  # type: ignore[attr-defined]
    used = disk_usage(root)

    warn = SizeGuard(make_settings(root, storage={"max_bytes": int(used / 0.95)}), service).check()
    assert warn.state == "warning" and warn.evicted == 0 and service.db.count() == 121

    over = SizeGuard(make_settings(root, storage={"max_bytes": int(used * 0.7)}), service).check()
    assert over.state == "over" and over.evicted > 0
    left = service.list(ListRequest(scope="all", limit=500, sort="oldest")).memories
    assert len(left) == 121 - over.evicted
    assert keep.id in {m.id for m in left}  # the important one stays
    survivors = sorted(int(m.content.split()[3]) for m in left if m.importance < 0.5)
    assert survivors == list(range(120 - len(survivors), 120))  # the oldest went first
    # The eviction's deletes now wait for their purge (storage.purge_delay_seconds): until the
    # shards are rewritten their space has not come back, so a second check evicts nothing more.
    assert service.db.info()["purge_pending"] > 0
    again = SizeGuard(make_settings(root, storage={"max_bytes": int(used * 0.1)}), service).check()
    assert again.state == "over" and again.evicted == 0
    assert service.db.count() == len(left)
    service.close()
