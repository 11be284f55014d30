"""What the real Claude Code CLI does with hooks, pinned down so an upgrade that changes it fails here.

Each test is one ``claude -p`` run (1-3 s) against the scripted fake model. The findings are
written up in tests/fixtures/hook_payloads/README.md.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from .capture_hook_payloads import FIXTURES, TOOL_IDS, build_fixtures, capture
from .claude_cli import claude_env, run_claude_p, write_project_settings
from .fake_anthropic import FakeAnthropic, all_text
from .hook_capture import ALL_EVENTS, HookSink, http_hooks_for, recorder_hooks

pytestmark = pytest.mark.e2e

EVENT_FIXTURES = [
    "SessionStart.json",
    "UserPromptSubmit.json",
    "PreToolUse.json",
    "PostToolUse.json",
    "PostToolUseFailure.json",
    "PostToolUse.Write.json",
    "PostToolUse.Edit.json",
    "Stop.json",
    "SessionEnd.json",
]

TWO_BASH = [
    {
        "tool": "Bash",
        "input": {"command": "ls /nonexistent-dir-xyz", "description": "List a missing directory"},
    },
    {"tool": "Bash", "input": {"command": "echo ok", "description": "Print ok"}},
    {"text": "all done"},
]


def _ctx(event: str, text: str) -> dict:
    return {"hookSpecificOutput": {"hookEventName": event, "additionalContext": text}}


def _shape(value, depth: int = 2):
    """Key structure of a payload (keys of nested dicts down to ``depth``)."""
    if isinstance(value, dict) and depth > 0:
        return {k: _shape(v, depth - 1) for k, v in value.items()}
    return type(value).__name__


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def captured(claude_bin, tmp_path_factory):
    raw = capture(tmp_path_factory.mktemp("capture"))
    assert raw["run"].ok, raw["run"].describe()
    return raw


def test_payloads_match_the_fixtures(captured):
    files = build_fixtures(captured)
    for name in EVENT_FIXTURES:
        assert name in files, f"no {name} captured; events seen: {[e['event'] for e in captured['log']]}"
        stored = json.loads((FIXTURES / name).read_text())
        assert _shape(files[name]) == _shape(stored), (
            f"{name}: the payload shape changed; rerun `python -m tests.e2e.capture_hook_payloads` "
            "and update tests/fixtures/hook_payloads/README.md"
        )
    failure = files["PostToolUseFailure.json"]
    assert failure["tool_use_id"] == TOOL_IDS["bash_fail"]
    assert "No such file or directory" in failure["error"]
    assert files["PostToolUse.json"]["tool_response"]["stdout"] == "ok"


def test_http_hooks_post_the_command_payload_except_session_start(captured):
    posts = captured["posts"]
    events = [p.event for p in posts]
    assert "SessionStart" not in events  # "HTTP hooks are not supported for SessionStart"
    assert set(ALL_EVENTS) - {"SessionStart"} <= set(events)  # every other event Clarity hooks
    for post in posts:
        assert post.method == "POST"
        assert post.headers["content-type"] == "application/json"
        assert post.path == f"/hook/{post.event}"
        same = [
            e["payload"]
            for e in captured["log"]
            if e["event"] == post.event and e["payload"].get("tool_use_id") == post.body.get("tool_use_id")
        ]
        assert post.body in same, f"http body for {post.event} differs from the command hook's stdin"


def test_additional_context_wrapping(captured):
    last = captured["main_requests"][-1]
    text = all_text(last)
    system_msgs = [m for m in last["messages"] if m["role"] == "system"]
    first_system = system_msgs[0]["content"]
    first_system = first_system if isinstance(first_system, str) else first_system[0]["text"]
    assert first_system.startswith(
        "SessionStart hook additional context: CMD-CONTEXT-SessionStart\n\n# Environment"
    )
    assert "UserPromptSubmit hook additional context: HTTP-CONTEXT-UserPromptSubmit" in first_system
    assert "UserPromptSubmit hook additional context: CMD-CONTEXT-UserPromptSubmit" in first_system
    # per tool call, one system message after the tool_result; PreToolUse contexts joined by "\n"
    assert (
        "PreToolUse:Bash hook additional context: HTTP-CONTEXT-PreToolUse\nCMD-CONTEXT-PreToolUse\n\n"
        "PostToolUseFailure:Bash hook additional context: HTTP-CONTEXT-PostToolUseFailure\n\n"
        "PostToolUseFailure:Bash hook additional context: CMD-CONTEXT-PostToolUseFailure"
    ) in text
    assert "PostToolUse:Edit hook additional context: CMD-CONTEXT-PostToolUse" in text
    assert "<system-reminder>\nSessionStart" not in text


def test_unreachable_http_hook_does_not_stop_the_run(claude_bin, claude_home, project_dir):
    url = f"http://127.0.0.1:{_free_port()}/hook"
    write_project_settings(project_dir, {"hooks": http_hooks_for(url, timeout=5)})
    with FakeAnthropic(TWO_BASH) as fake:
        run = run_claude_p("go", env=claude_env(claude_home, fake.url), cwd=project_dir, binary=claude_bin)
    assert run.ok and run.result == "all done", run.describe()
    assert run.duration < 15, run.describe()  # ECONNREFUSED is immediate; no retries


def test_slow_http_hook_is_cancelled_at_its_timeout(claude_bin, claude_home, project_dir):
    replies = {
        "UserPromptSubmit": _ctx("UserPromptSubmit", "TOO-LATE"),
        "PostToolUse": _ctx("PostToolUse", "IN-TIME"),
    }
    with FakeAnthropic(TWO_BASH) as fake, HookSink(replies, delays={"UserPromptSubmit": 8}) as sink:
        write_project_settings(
            project_dir, {"hooks": sink.hooks(["UserPromptSubmit", "PostToolUse"], timeout=1)}
        )
        run = run_claude_p("go", env=claude_env(claude_home, fake.url), cwd=project_dir, binary=claude_bin)
        assert run.ok and run.result == "all done", run.describe()
        assert run.duration < 7, run.describe()  # waited ~1 s, not 8
        text = all_text(fake.main_requests[-1])
    assert "TOO-LATE" not in text
    assert "PostToolUse:Bash hook additional context: IN-TIME" in text


def test_command_hook_plain_stdout_and_silence(claude_bin, claude_home, project_dir, tmp_path: Path):
    replies = {
        "SessionStart": "PLAIN-SS",
        "UserPromptSubmit": "PLAIN-UPS",
        "PostToolUse": "PLAIN-POST",  # plain stdout of a tool hook: not shown to the model
        # PreToolUse, PostToolUseFailure, Stop: exit 0 with no output
    }
    hooks, _log, _ = recorder_hooks(tmp_path / "hooks", replies=replies)
    write_project_settings(project_dir, {"hooks": hooks})
    with FakeAnthropic(TWO_BASH) as fake:
        run = run_claude_p("go", env=claude_env(claude_home, fake.url), cwd=project_dir, binary=claude_bin)
        assert run.ok and run.result == "all done", run.describe()
        last = fake.main_requests[-1]
    text = all_text(last)
    assert "SessionStart:startup hook success: PLAIN-SS" in text
    assert "UserPromptSubmit hook success: PLAIN-UPS" in text
    assert "PLAIN-POST" not in text
    # silent hooks add no message: user, system(env), then assistant/user pairs only
    assert [m["role"] for m in last["messages"]] == [
        "user",
        "system",
        "assistant",
        "user",
        "assistant",
        "user",
    ]


def test_large_additional_context_is_moved_to_a_file(claude_bin, claude_home, project_dir):
    inline = "i" * 10_000
    too_big = "b" * 10_001
    replies = {
        "UserPromptSubmit": _ctx("UserPromptSubmit", inline),
        "PostToolUse": _ctx("PostToolUse", too_big),
    }
    with FakeAnthropic(TWO_BASH) as fake, HookSink(replies) as sink:
        write_project_settings(project_dir, {"hooks": sink.hooks(["UserPromptSubmit", "PostToolUse"])})
        run = run_claude_p("go", env=claude_env(claude_home, fake.url), cwd=project_dir, binary=claude_bin)
        assert run.ok, run.describe()
        text = all_text(fake.main_requests[-1])
    assert inline in text
    assert too_big not in text
    assert "PostToolUse:Bash hook additional context: <persisted-output>\nOutput too large" in text


def test_stop_hook_additional_context_forces_another_turn(claude_bin, claude_home, project_dir):
    """A Stop hook must not return additionalContext: Claude Code feeds it back and continues."""
    script = [{"text": "first answer"}, {"text": "second answer"}]
    calls = {"n": 0}

    def responder(post):
        if post.event == "Stop":
            calls["n"] += 1
            if calls["n"] == 1:
                return _ctx("Stop", "KEEP-GOING")
        return None

    with FakeAnthropic(script) as fake, HookSink(responder=responder) as sink:
        write_project_settings(project_dir, {"hooks": sink.hooks(["Stop"])})
        run = run_claude_p("go", env=claude_env(claude_home, fake.url), cwd=project_dir, binary=claude_bin)
        assert run.ok, run.describe()
        mains = fake.main_requests
        stops = [p.body for p in sink.posts]
    assert run.result == "second answer"
    assert len(mains) == 2
    assert mains[1]["messages"][-1]["role"] == "user"
    assert "<system-reminder>\nStop hook additional context: KEEP-GOING\n</system-reminder>" in all_text(
        mains[1]
    )
    assert [s["stop_hook_active"] for s in stops] == [False, True]
