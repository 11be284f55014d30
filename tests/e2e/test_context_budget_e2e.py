"""What Clarity gives the model, read from the request bodies the scripted model receives through
the real Claude Code CLI (command hooks, the default: SessionStart reaches only those).

- a memory reaches a session once: a prompt that matches it, a Bash call whose PreToolUse
  context would match it, and the same prompt again in the resumed session carry it once;
- "remember that we deploy with make ship" in one session is in the next session's brief;
- an unrelated prompt gets no Clarity context;
- every injected line says how old the memory is and where it came from.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from clarity.hooks.learner import program_tag
from clarity.integrations.claude_code import install

from ..daemon_util import Daemon
from .claude_cli import claude_env, run_claude_p
from .fake_anthropic import FakeAnthropic, all_text

pytestmark = pytest.mark.e2e

# "- [kind] text (3 days ago; learned from ...; id 1a2b3c4d)"
LINE = re.compile(r"^- \[\w+\] .+ \((?:just now|\d+ \w+ ago)(?:, seen \d+ times)?; [^;]+; id [0-9a-f]{8}\)$")
ASK = "why does ./run-tests.sh fail with missing config file settings.ini?"


def hook_contexts(body: dict[str, Any]) -> list[tuple[str, str]]:
    """(hook, context) for every hook context in a request, in order: Claude Code puts them in
    ``role: system`` messages as "<Event>[:<Tool>] hook additional context: <text>"."""
    found = []
    for message in body.get("messages") or []:
        if message.get("role") != "system":
            continue
        content = message.get("content")
        texts = [content] if isinstance(content, str) else [b.get("text", "") for b in content or []]
        for text in texts:
            parts = re.split(r"(?m)^(\w+(?::\w+)?) hook additional context: ", text)
            found += [(parts[i], parts[i + 1]) for i in range(1, len(parts) - 1, 2)]
    return found


def clarity_lines(body: dict[str, Any]) -> list[str]:
    return [
        line
        for _, text in hook_contexts(body)
        for line in text.splitlines()
        if line.startswith("- [") and "; id " in line
    ]


def session(
    claude_bin: str, project: Path, home: Path, prompt: str, script: list[dict[str, Any]], *args: str
) -> tuple[dict[str, Any], str | None]:
    """One ``claude -p`` run; the last request the model received, and the session id."""
    with FakeAnthropic(script) as fake:
        run = run_claude_p(
            prompt,
            env=claude_env(home, fake.url),
            cwd=project,
            binary=claude_bin,
            timeout=180,
            extra_args=args,
        )
        assert run.ok, run.describe() + "\n" + fake.dump()
        return fake.main_requests[-1], run.session_id


def test_the_model_gets_each_memory_once_with_its_age_and_origin(
    claude_bin: str, daemon: Daemon, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / ".git").mkdir()  # its own project scope
    install("project", "command", project=project, no_mcp=True, base_url=daemon.url)
    error = daemon.api(
        "POST",
        "/memories",
        str(project),
        json={
            "content": "`./run-tests.sh` failed: error: missing config file settings.ini",
            "memory_type": "error",
            "scope": "project",
            "tags": [program_tag("./run-tests.sh")],
        },
    ).json()["memory"]
    short = error["id"][:8]
    home = tmp_path / "home"

    # session 1: the user asks Clarity to remember something
    first, _ = session(
        claude_bin, project, home, "remember that we deploy with make ship", [{"text": "Noted."}]
    )
    assert "Clarity stored this as a fact for this project" in all_text(first), all_text(first)[-2000:]

    # session 2: the brief carries it; the error reaches the model with the prompt, not again
    # before the Bash call that would match it, nor with the same prompt in the resumed session
    script = [
        {"tool": "Bash", "input": {"command": "./run-tests.sh", "description": "Run the tests"}},
        {"text": "It needs settings.ini."},
    ]
    second, session_id = session(claude_bin, project, home, ASK, script)
    contexts = hook_contexts(second)
    brief = next(text for hook, text in contexts if hook == "SessionStart")
    assert "You asked to remember:\n- [fact] we deploy with make ship (" in brief, brief
    assert "the user asked to remember this; id " in brief
    prompted = next(text for hook, text in contexts if hook == "UserPromptSubmit")
    assert short in prompted and short not in brief
    assert [hook for hook, text in contexts if short in text] == ["UserPromptSubmit"], contexts
    assert session_id
    again, resumed_id = session(
        claude_bin, project, home, ASK, [{"text": "Same as before."}], "--resume", session_id
    )
    assert resumed_id == session_id
    assert all_text(again).count(ASK) == 2  # both prompts are in the resumed conversation...
    assert sum(line.count(short) for line in clarity_lines(again)) == 1, hook_contexts(
        again
    )  # ...the memory once
    assert sum("we deploy with make ship (" in line for line in clarity_lines(again)) == 1

    # every injected line says how old the memory is and where it came from
    lines = clarity_lines(second) + clarity_lines(again)
    assert lines and all(LINE.match(line) for line in lines), lines

    # session 3: an unrelated prompt gets no context with it; the Bash call that follows shows
    # that the error does match that call's PreToolUse (it was left out of session 2 as given)
    third, _ = session(claude_bin, project, tmp_path / "home3", "what is the capital of France?", script)
    contexts = hook_contexts(third)
    assert [hook for hook, _ in contexts if hook != "SessionStart"] == ["PreToolUse:Bash"], contexts
    assert short in contexts[-1][1], contexts
    assert all(LINE.match(line) for line in clarity_lines(third)), clarity_lines(third)
