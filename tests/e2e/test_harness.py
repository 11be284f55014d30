"""The e2e harness itself: the real Claude Code CLI against the scripted fake model."""

from __future__ import annotations

import pytest

from .claude_cli import claude_env, run_claude_p
from .fake_anthropic import FakeAnthropic, all_text, tool_results

pytestmark = pytest.mark.e2e


def test_two_turn_bash_then_text(claude_bin, claude_home, project_dir):
    script = [
        {"tool": "Bash", "input": {"command": "echo hello-from-bash", "description": "Say hello"}},
        {"text": "done"},
    ]
    with FakeAnthropic(script) as fake:
        env = claude_env(claude_home, fake.url)
        run = run_claude_p("run the greeting", env=env, cwd=project_dir, binary=claude_bin, timeout=120)

        assert run.ok, run.describe() + "\n" + fake.dump()
        assert run.result == "done", run.describe()
        assert fake.script_done and fake.exhausted == 0, fake.dump()

        mains = fake.main_requests
        assert len(mains) == 2, fake.dump()
        assert "run the greeting" in all_text(mains[0])
        results = tool_results(mains[1])
        assert results, fake.dump()
        assert "hello-from-bash" in results[-1]["text"]
        assert results[-1].get("is_error") is False
        # the tool_use the model "sent" is echoed back in the conversation
        assistant = [m for m in mains[1]["messages"] if m["role"] == "assistant"]
        assert assistant[-1]["content"][0]["name"] == "Bash"
        assert results[-1]["tool_use_id"] == assistant[-1]["content"][0]["id"]
