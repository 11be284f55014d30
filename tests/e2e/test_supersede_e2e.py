"""A changed fact supersedes the old one through the real Claude Code CLI, by the "remember ..."
hook and by MCP ``store_memory``: the reply says what it replaced, and the next session's brief
carries only the new value (read from the request bodies the scripted model receives)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clarity.integrations.claude_code import install

from ..daemon_util import Daemon
from .claude_cli import claude_env, run_claude_p
from .fake_anthropic import FakeAnthropic, all_text, tool_results
from .test_context_budget_e2e import hook_contexts

pytestmark = pytest.mark.e2e

OLD = "the staging database listens on port 6543"
NEW = "the staging database listens on port 6544"


def _session(
    claude_bin: str, project: Path, home: Path, prompt: str, script: list[dict[str, Any]]
) -> dict[str, Any]:
    with FakeAnthropic(script) as fake:
        run = run_claude_p(
            prompt, env=claude_env(home, fake.url), cwd=project, binary=claude_bin, timeout=180
        )
        assert run.ok, run.describe() + "\n" + fake.dump()
        return fake.main_requests[-1]


def _brief(body: dict[str, Any]) -> str:
    return next(text for hook, text in hook_contexts(body) if hook == "SessionStart")


@pytest.fixture
def project(tmp_path: Path, daemon: Daemon) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / ".git").mkdir()  # its own project scope
    install("project", "command", project=project, no_mcp=True, base_url=daemon.url)
    return project


def test_remember_a_new_value_replaces_the_old_in_the_next_session(
    claude_bin: str, daemon: Daemon, project: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    first = _session(claude_bin, project, home, f"remember that {OLD}", [{"text": "Noted."}])
    assert "Clarity stored this as a fact" in all_text(first), all_text(first)[-2000:]

    second = _session(claude_bin, project, home, f"remember that {NEW}", [{"text": "Noted."}])
    said = next(text for hook, text in hook_contexts(second) if hook == "UserPromptSubmit")
    assert "Clarity stored this as a fact" in said and NEW in said, said
    assert "It replaces " in said and f"(6543 -> 6544): {OLD}" in said, said

    third = _session(
        claude_bin, project, home, "which port does the staging database listen on?", [{"text": "6544."}]
    )
    brief = _brief(third)
    assert NEW in brief and "6543" not in brief, brief
    assert not any("6543" in text for _, text in hook_contexts(third)), hook_contexts(third)
    listed = daemon.api("GET", "/memories", str(project), params={"scope": "project"}).json()["memories"]
    assert [m["content"] for m in listed] == [NEW]
    everything = daemon.api(
        "GET", "/memories", str(project), params={"scope": "project", "include_superseded": "true"}
    ).json()["memories"]
    old = next(m for m in everything if m["content"] == OLD)
    assert old["superseded_by"] == listed[0]["id"] and listed[0]["supersedes"] == [old["id"]]


def test_store_memory_over_mcp_replaces_the_old_value(
    claude_bin: str, daemon: Daemon, project: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    server = {"type": "http", "url": f"{daemon.url}/mcp", "headers": {"X-Clarity-Project": str(project)}}
    (home / ".claude.json").write_text(json.dumps({"mcpServers": {"clarity": server}}))
    script = [
        {"tool": "ToolSearch", "input": {"query": "select:mcp__clarity__store_memory"}},
        {"tool": "mcp__clarity__store_memory", "input": {"content": OLD.capitalize()}},
        {"tool": "mcp__clarity__store_memory", "input": {"content": NEW.capitalize()}},
        {"text": "done"},
    ]
    body = _session(claude_bin, project, home, "store the staging database port in Clarity", script)
    stored, replaced = (result["text"] for result in tool_results(body)[-2:])
    assert stored.startswith("Stored fact ") and "It replaces" not in stored, stored
    old_short = stored.removeprefix("Stored fact ").split(" ", 1)[0]
    assert f"It replaces {old_short} (6543 -> 6544): {OLD.capitalize()}" in replaced, replaced

    # A plain fact is not in the brief (it holds requests, preferences, commands, fixes): the
    # next session's prompt brings the new value, and only it.
    ask = "which port does the staging database listen on?"
    after = _session(claude_bin, project, home, ask, [{"text": "6544."}])
    prompted = next(text for hook, text in hook_contexts(after) if hook == "UserPromptSubmit")
    assert NEW.capitalize() in prompted, hook_contexts(after)
    assert not any("6543" in text for _, text in hook_contexts(after)), hook_contexts(after)
