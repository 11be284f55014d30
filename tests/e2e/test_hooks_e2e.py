"""The real Claude Code CLI with Clarity's hooks installed, the model scripted on loopback.

Run one: the model runs a failing test script, then the command that fixes it. Run two, in the
same project: the request the model receives must already carry, as hook context, the earlier
failure and its fix. Both with http hooks and with command hooks; and with the daemon stopped,
the same run must complete normally (hooks fail open).
"""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest

from clarity.integrations.claude_code import install

from ..daemon_util import Daemon, free_port
from .claude_cli import claude_env, run_claude_p
from .fake_anthropic import FakeAnthropic, all_text, tool_results

pytestmark = pytest.mark.e2e

RUN_TESTS = """#!/bin/sh
if [ ! -f settings.ini ]; then
  echo "error: missing config file settings.ini" >&2
  exit 1
fi
echo "all 12 tests passed"
"""
FIX = "cp settings.example.ini settings.ini && ./run-tests.sh"


def make_project(path: Path) -> Path:
    path.mkdir()
    script = path / "run-tests.sh"
    script.write_text(RUN_TESTS)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    (path / "settings.example.ini").write_text("[tests]\nfast = true\n")
    return path


def first_run_script() -> list[dict]:
    return [
        {"tool": "Bash", "input": {"command": "./run-tests.sh", "description": "Run the tests"}},
        {"tool": "Bash", "input": {"command": FIX, "description": "Create the config and rerun"}},
        {"text": "Tests pass now."},
    ]


def wait_for_fix(daemon: Daemon, project: Path, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = daemon.api(
            "GET", "/memories", str(project), params={"scope": "project", "memory_types": "fix"}
        )
        memories = found.json()["memories"]
        if memories:
            return dict(memories[0])
        time.sleep(0.2)
    raise AssertionError(f"the fix was not learned:\n{daemon.log()[-3000:]}")


@pytest.mark.parametrize("hook_type", ["http", "command"])
def test_second_session_receives_the_earlier_failure_and_its_fix(
    claude_bin: str, shared_daemon: Daemon, tmp_path: Path, hook_type: str
) -> None:
    project = make_project(tmp_path / "project")
    home = tmp_path / "home"
    install("project", hook_type, project=project, no_mcp=True, base_url=shared_daemon.url)  # type: ignore[arg-type]

    with FakeAnthropic(first_run_script()) as fake:
        first = run_claude_p(
            "run the tests and fix what fails",
            env=claude_env(home, fake.url),
            cwd=project,
            binary=claude_bin,
            timeout=180,
        )
        assert first.ok, first.describe() + "\n" + fake.dump()
        outputs = [r["text"] for r in tool_results(fake.main_requests[-1])]
        assert any("missing config file" in text for text in outputs), fake.dump()
        assert any("all 12 tests passed" in text for text in outputs), fake.dump()

    fix = wait_for_fix(shared_daemon, project)
    assert "./run-tests.sh" in fix["content"] and "cp settings.example.ini settings.ini" in fix["content"]

    with FakeAnthropic([{"text": "It needed settings.ini."}]) as fake:
        second = run_claude_p(
            "the test script fails again; what fixed it last time?",
            env=claude_env(tmp_path / "home2", fake.url),
            cwd=project,
            binary=claude_bin,
            timeout=180,
        )
        assert second.ok, second.describe()
        seen = all_text(fake.main_requests[0])
    assert "hook additional context" in seen, seen[-3000:]
    assert "missing config file settings.ini" in seen
    assert "cp settings.example.ini settings.ini" in seen
    assert fix["id"][:8] in seen


@pytest.mark.parametrize("hook_type", ["http", "command"])
def test_hooks_fail_open_when_the_daemon_is_down(claude_bin: str, tmp_path: Path, hook_type: str) -> None:
    project = make_project(tmp_path / "project")
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    install("project", hook_type, project=project, no_mcp=True, base_url=nobody)  # type: ignore[arg-type]
    started = time.monotonic()
    with FakeAnthropic(first_run_script()) as fake:
        run = run_claude_p(
            "run the tests and fix what fails",
            env=claude_env(tmp_path / "home", fake.url),
            cwd=project,
            binary=claude_bin,
            timeout=180,
        )
        assert run.ok, run.describe() + "\n" + fake.dump()
        assert run.result == "Tests pass now."
        assert fake.script_done, fake.dump()
        assert "hook additional context" not in all_text(fake.main_requests[-1])
    assert time.monotonic() - started < 60
    if hook_type == "command":  # the default: nothing on stderr, as without Clarity
        assert run.stderr == "", run.stderr
    else:  # Claude Code prints a failed http SessionEnd hook: why command hooks are the default
        assert (
            run.stderr
            == f"SessionEnd hook [{nobody}/hooks/SessionEnd] failed: connect ECONNREFUSED {nobody[7:]}\n"
        )


@pytest.mark.parametrize("hook_type", ["http", "command"])
def test_clarity_disabled_turns_every_hook_into_a_no_op(
    claude_bin: str, shared_daemon: Daemon, tmp_path: Path, hook_type: str
) -> None:
    project = make_project(tmp_path / "project")
    install("project", hook_type, project=project, no_mcp=True, base_url=shared_daemon.url)  # type: ignore[arg-type]
    prompt = "remember that the release train leaves on Fridays at 10:00"

    def session(home: str, **extra: str) -> str:
        with FakeAnthropic([{"text": "Noted."}]) as fake:
            run = run_claude_p(
                prompt,
                env={**claude_env(tmp_path / home, fake.url), **extra},
                cwd=project,
                binary=claude_bin,
                timeout=180,
            )
            assert run.ok, run.describe()
            return all_text(fake.main_requests[0])

    def stored() -> list[dict]:
        found = shared_daemon.api("GET", "/memories", str(project), params={"scope": "project"})
        return [m for m in found.json()["memories"] if "release train" in m["content"]]

    seen = session("off", CLARITY_DISABLED="1")
    assert "hook additional context" not in seen and stored() == []
    seen = session("on")  # the same session without the switch stores it and says so
    assert "Clarity stored this" in seen and len(stored()) == 1
