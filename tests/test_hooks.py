"""Hook endpoints of the real daemon, fed the payloads Claude Code 2.1.330 really sends.

The payloads come from tests/fixtures/hook_payloads/ (captured from the real CLI); each test
points their cwd at a fresh git repository so every test has its own project scope.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from clarity.hooks.events import EVENTS

from .daemon_util import Daemon, free_port

FIXTURES = Path(__file__).parent / "fixtures" / "hook_payloads"


def payload(event: str, project: Path, session: str, **fields: Any) -> dict[str, Any]:
    data = json.loads((FIXTURES / f"{event}.json").read_text())
    data.update(cwd=str(project), session_id=session, **fields)
    return data


def post(daemon: Daemon, event: str, body: Any) -> httpx.Response:
    return httpx.post(f"{daemon.url}/hooks/{event}", json=body, timeout=30)


def context(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return str(response.json().get("hookSpecificOutput", {}).get("additionalContext", ""))


def memories(daemon: Daemon, project: Path, kind: str | None = None) -> list[dict[str, Any]]:
    params = {"scope": "project", "limit": 100}
    if kind:
        params["memory_types"] = kind
    response = daemon.api("GET", "/memories", str(project), params=params)
    return list(response.json()["memories"])


def wait_for(
    daemon: Daemon, project: Path, kind: str, count: int = 1, timeout: float = 30
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = memories(daemon, project, kind)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no {kind} memory learned within {timeout}s: {memories(daemon, project)}")


def fail_then_fix(daemon: Daemon, project: Path, session: str) -> None:
    failing = payload(
        "PostToolUseFailure",
        project,
        session,
        tool_input={"command": "./run-tests.sh", "description": "run the tests"},
        error="Exit code 1\nerror: missing config file settings.ini",
    )
    assert post(daemon, "PostToolUseFailure", failing).json() == {}
    fixing = payload(
        "PostToolUse",
        project,
        session,
        tool_input={
            "command": "cp settings.example.ini settings.ini && ./run-tests.sh",
            "description": "copy the example config, rerun",
        },
    )
    assert post(daemon, "PostToolUse", fixing).json() == {}


def test_failure_and_its_fix_are_learned_and_offered_before_the_next_run(
    shared_daemon: Daemon, project: Path
) -> None:
    fail_then_fix(shared_daemon, project, "s-fix")
    fix = wait_for(shared_daemon, project, "fix")[0]
    assert "./run-tests.sh" in fix["content"] and "missing config file settings.ini" in fix["content"]
    assert "cp settings.example.ini settings.ini" in fix["content"]
    assert fix["source"] == "hook"
    errors = memories(shared_daemon, project, "error")
    assert errors and "missing config file" in errors[0]["content"]

    before = payload("PreToolUse", project, "s-next", tool_input={"command": "./run-tests.sh --verbose"})
    text = context(post(shared_daemon, "PreToolUse", before))
    assert "Fixed by running `cp settings.example.ini settings.ini" in text and fix["id"][:8] in text

    question = "the run-tests script fails again, what fixed it?"
    asked = payload("UserPromptSubmit", project, "s-ask", prompt=question)
    text = context(post(shared_daemon, "UserPromptSubmit", asked))
    assert "missing config file settings.ini" in text and fix["id"][:8] in text
    # the session that was given it before the run is not given it again
    again = payload("UserPromptSubmit", project, "s-next", prompt=question)
    assert fix["id"][:8] not in context(post(shared_daemon, "UserPromptSubmit", again))

    brief = context(post(shared_daemon, "SessionStart", payload("SessionStart", project, "s-brief")))
    assert "Recent fixes" in brief and "cp settings.example.ini" in brief


def failure_and_fix(project: Path, session: str) -> list[dict[str, Any]]:
    """The two events fail_then_fix posts, as payloads."""
    return [
        payload(
            "PostToolUseFailure",
            project,
            session,
            tool_input={"command": "./run-tests.sh", "description": "run the tests"},
            error="Exit code 1\nerror: missing config file settings.ini",
        ),
        payload(
            "PostToolUse",
            project,
            session,
            tool_input={"command": "cp settings.example.ini settings.ini && ./run-tests.sh"},
        ),
    ]


def keep(root: Path, *lines: bytes) -> Path:
    """What the plugin's hook.sh appends while no daemon answers (clarity/hooks/spool.py)."""
    kept = root / "app-data" / "pending-hooks.jsonl"
    kept.parent.mkdir(parents=True, exist_ok=True)
    with kept.open("ab") as handle:
        handle.write(b"".join(line + b"\n" for line in lines))
    return kept


def test_events_kept_while_no_daemon_answered_are_learned_when_it_starts(
    tmp_path: Path, project: Path
) -> None:
    """The plugin's first session after install: its tool events found nobody and were kept."""
    root = tmp_path / "root"
    failing, fixing = (json.dumps(p).encode() for p in failure_and_fix(project, "s-kept"))
    prompt = json.dumps(payload("PreToolUse", project, "s-kept")).encode()  # not a learning event
    kept = keep(root, failing, b"not json", prompt, b'{"hook_event_name": "Stop"}', fixing)
    with Daemon(root, free_port()).running(ready=True) as daemon:
        fix = wait_for(daemon, project, "fix")[0]
        assert "./run-tests.sh" in fix["content"] and "cp settings.example.ini settings.ini" in fix["content"]
        assert not kept.exists()
        assert [p.name for p in kept.parent.iterdir() if p.name.startswith("pending-hooks")] == []


def test_events_kept_while_the_daemon_started_go_before_the_next_live_one(
    shared_daemon: Daemon, project: Path
) -> None:
    """A failure kept just before the daemon answered, its fix posted live: learned as a fix,
    so the kept event was queued first."""
    failing, fixing = failure_and_fix(project, "s-kept-live")
    kept = keep(shared_daemon.root, json.dumps(failing).encode())
    assert post(shared_daemon, "PostToolUse", fixing).json() == {}
    fix = wait_for(shared_daemon, project, "fix")[0]
    assert "missing config file settings.ini" in fix["content"]
    assert not kept.exists()


def test_repeated_test_command_is_one_memory_with_a_count(shared_daemon: Daemon, project: Path) -> None:
    for _ in range(200):
        ran = payload("PostToolUse", project, "s-repeat", tool_input={"command": "pytest -q tests/"})
        assert post(shared_daemon, "PostToolUse", ran).status_code == 200
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        commands = memories(shared_daemon, project, "command")
        if commands and commands[0]["occurrences"] == 200:
            break
        time.sleep(0.2)
    assert len(commands) == 1, commands
    assert commands[0]["occurrences"] == 200
    assert "pytest -q tests/" in commands[0]["content"]


def test_explicit_remember_is_stored_as_a_preference(shared_daemon: Daemon, project: Path) -> None:
    asked = payload(
        "UserPromptSubmit",
        project,
        "s-remember",
        prompt="Remember that we always use uv instead of pip in this repository",
    )
    text = context(post(shared_daemon, "UserPromptSubmit", asked))
    stored = memories(shared_daemon, project, "preference")
    assert len(stored) == 1 and stored[0]["content"].startswith("we always use uv instead of pip")
    assert stored[0]["id"] in text and "preference" in text  # the note names the whole id
    noted = payload("UserPromptSubmit", project, "s-remember", prompt="note that the staging host is orion-7")
    post(shared_daemon, "UserPromptSubmit", noted)
    assert [m["content"] for m in memories(shared_daemon, project, "fact")] == ["the staging host is orion-7"]


def test_prompt_context_is_relevant_capped_and_absent_when_nothing_fits(
    shared_daemon: Daemon, project: Path
) -> None:
    for i in range(40):
        shared_daemon.api(
            "POST",
            "/memories",
            str(project),
            json={"content": f"The payments service retries webhook {i} up to {i + 3} times " + "x" * 300},
        )
    shared_daemon.api(
        "POST", "/memories", str(project), json={"content": "Grafana dashboards live in ops/grafana"}
    )
    asked = payload(
        "UserPromptSubmit", project, "s-ctx", prompt="how often does the payments service retry webhooks?"
    )
    text = context(post(shared_daemon, "UserPromptSubmit", asked))
    assert text.startswith("Relevant memories from Clarity")
    assert "payments service retries webhook" in text and "Grafana" not in text
    assert len(text) <= 2000
    unrelated = payload("UserPromptSubmit", project, "s-ctx", prompt="write a haiku about autumn leaves")
    assert post(shared_daemon, "UserPromptSubmit", unrelated).json() == {}


def test_stop_writes_one_session_summary_and_never_returns_context(
    shared_daemon: Daemon, project: Path
) -> None:
    fail_then_fix(shared_daemon, project, "s-sum")
    edit = payload(
        "PostToolUse",
        project,
        "s-sum",
        tool_name="Edit",
        tool_input={"file_path": str(project / "app.py"), "old_string": "a", "new_string": "b"},
    )
    post(shared_daemon, "PostToolUse", edit)
    for _ in range(3):  # Stop fires after every turn: the summary is updated, not duplicated
        assert post(shared_daemon, "Stop", payload("Stop", project, "s-sum")).json() == {}
    assert post(shared_daemon, "SessionEnd", payload("SessionEnd", project, "s-sum")).json() == {}
    summaries = wait_for(shared_daemon, project, "summary")
    time.sleep(0.5)
    summaries = memories(shared_daemon, project, "summary")
    assert len(summaries) == 1
    text = summaries[0]["content"]
    assert "app.py" in text and "./run-tests.sh" in text and "Fixed by running" in text


def test_secrets_in_tool_output_are_redacted_before_storage(shared_daemon: Daemon, project: Path) -> None:
    key = "sk-ant-api03-" + "Zx9" * 30
    failing = payload(
        "PostToolUseFailure",
        project,
        "s-secret",
        tool_input={"command": f"curl -H 'Authorization: Bearer {key}' https://api.example.com/v1"},
        error=f"Exit code 22\ncurl: (22) 401 Unauthorized; password=hunter2xyz key {key}",
    )
    post(shared_daemon, "PostToolUseFailure", failing)
    stored = wait_for(shared_daemon, project, "error")[0]
    dumped = json.dumps(stored)
    assert key not in dumped and "hunter2xyz" not in dumped
    assert "[REDACTED:" in stored["content"]


@pytest.mark.parametrize(
    ("event", "body", "status", "message"),
    [
        ("NotAnEvent", {}, 404, "unknown hook event"),
        ("UserPromptSubmit", {"cwd": "/tmp", "prompt": "x"}, 400, "session_id: required"),
        (
            "PreToolUse",
            {"session_id": "s", "transcript_path": "", "cwd": "/tmp", "hook_event_name": "Stop"},
            400,
            "does not match",
        ),
        ("UserPromptSubmit", "not an object", 400, "expected a JSON object"),
        # Ids key what each session was given (kept across restarts): bounded, no NUL.
        (
            "SessionStart",
            {"session_id": "s", "cwd": "/tmp", "hook_event_name": "SessionStart", "agent_id": "a" * 201},
            400,
            "String should have at most 200 characters",
        ),
        (
            "SessionStart",
            {"session_id": "s\u0000x", "cwd": "/tmp", "hook_event_name": "SessionStart"},
            400,
            "must not contain a NUL character",
        ),
    ],
)
def test_bad_hook_payloads_get_clear_errors(
    shared_daemon: Daemon, event: str, body: Any, status: int, message: str
) -> None:
    response = post(shared_daemon, event, body)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_payloads_with_only_the_common_fields_are_fine(shared_daemon: Daemon, project: Path) -> None:
    common = {"session_id": "s-min", "transcript_path": "", "cwd": str(project)}
    recorded = [json.loads(path.read_text()) for path in FIXTURES.glob("*.json")]
    # every event Claude Code was recorded sending to hooks, and no other
    assert {data["hook_event_name"] for data in recorded if "hook_event_name" in data} == set(EVENTS)
    for event in EVENTS:
        response = post(shared_daemon, event, {**common, "hook_event_name": event})
        assert response.status_code == 200, (event, response.text)


def test_guard_rules_deny_or_ask_only_when_configured(tmp_path: Path, project: Path) -> None:
    config = {
        "hooks": {
            "guards": [
                {
                    "pattern": r"rm\s+-rf\s+/(\s|$)",
                    "decision": "deny",
                    "reason": "deletes the whole filesystem",
                },
                {
                    "pattern": r"git\s+push\s+.*--force",
                    "decision": "ask",
                    "reason": "rewrites shared history",
                },
            ]
        }
    }
    root = tmp_path / "guarded"
    root.mkdir()
    (root / "config.json").write_text(json.dumps(config))
    daemon = Daemon(root, free_port()).start()
    try:
        daemon.wait_healthy()
        deny = post(
            daemon, "PreToolUse", payload("PreToolUse", project, "g", tool_input={"command": "rm -rf /"})
        )
        assert deny.json()["hookSpecificOutput"]["permissionDecision"] == "deny"
        assert "deletes the whole filesystem" in deny.json()["hookSpecificOutput"]["permissionDecisionReason"]
        ask = post(
            daemon,
            "PreToolUse",
            payload("PreToolUse", project, "g", tool_input={"command": "git push origin main --force"}),
        )
        assert ask.json()["hookSpecificOutput"]["permissionDecision"] == "ask"
        fine = post(daemon, "PreToolUse", payload("PreToolUse", project, "g", tool_input={"command": "ls"}))
        assert "permissionDecision" not in json.dumps(fine.json())
    finally:
        daemon.stop()


def test_without_guard_rules_nothing_is_denied(shared_daemon: Daemon, project: Path) -> None:
    response = post(
        shared_daemon, "PreToolUse", payload("PreToolUse", project, "g", tool_input={"command": "rm -rf /"})
    )
    assert "permissionDecision" not in json.dumps(response.json())


def test_invalid_guard_pattern_stops_start_up(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"hooks": {"guards": [{"pattern": "([unclosed"}]}}))
    daemon = Daemon(root, free_port()).start()
    assert daemon.process is not None and daemon.process.wait(60) == 2
    assert "hooks.guards.0.pattern" in daemon.log() and "not a valid regular expression" in daemon.log()
