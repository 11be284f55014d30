"""Fail silent: with the daemon down, hung or starting, a session with Clarity shows the user
exactly what a session without Clarity shows, in `-p` mode and in the interactive UI.

The real Claude Code CLI, the model scripted on loopback; Clarity installed the two ways a user
installs it: `clarity hooks install` (user scope, its default command hooks) and the plugin.
The daemon is

- down: nothing listens on its port (the plugin then starts one; here its `clarity` is a
  stand-in that exits, so no real daemon comes up under the test);
- hung: a port that accepts connections and never answers, so every hook runs into its budget
  (what a port bound by a daemon that does not serve yet looks like too);
- starting: a real `clarity serve` launched as the session starts (it answers about a second
  later, ready at once since the ONNX encoder), so hooks meet it in whatever phase it is in.

`-p`: the run succeeds with the same result, its stdout is the JSON result alone and its stderr
is empty, as without Clarity (Claude Code prints a failed http SessionEnd hook there, which is
why no Clarity hook is an http hook by default any more: test_hooks_e2e.py shows both types). Interactive: the screen after a prompt,
a tool call and /exit holds no hook line at all. The http hooks are run too, to show that the
screen would show a failure (so the silent checks can fail).
Time: how much a session waits with the daemon down is measured by scripts/bench/session_start.py
(`daemon down` configurations); here only a loose bound keeps a hang from passing.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ..daemon_util import Daemon, free_port
from .claude_cli import ClaudeRun, claude_env, run_claude_p
from .fake_anthropic import FakeAnthropic
from .hook_capture import blackhole
from .test_hooks_e2e import first_run_script, make_project
from .test_plugin import install_plugin
from .tmux_ui import TmuxClaude, tmux_available

pytestmark = pytest.mark.e2e

PROMPT = "run the tests and fix what fails"
INSTALLS = ["hooks", "plugin"]
API_KEY = "sk-ant-test-0000000000000000000000000000"


@contextmanager
def daemon_in(state: str, tmp_path: Path, port: int) -> Iterator[None]:
    """A daemon on ``port`` that is down, hung, or starting as the block begins."""
    if state == "down":
        yield
    elif state == "hung":
        with blackhole(port):
            yield
    else:  # started with the session: whatever phase it is in when each hook fires
        daemon = Daemon(tmp_path / "starting-root", port).start()
        try:
            yield
        finally:
            daemon.stop()


def set_up(
    install: str, url: str, tmp_path: Path, hook_type: str | None = None
) -> tuple[Path, dict[str, str]]:
    """A HOME with Clarity installed for the daemon at ``url``; the environment additions."""
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True, exist_ok=True)
    if install == "plugin":
        install_plugin(home, int(url.rsplit(":", 1)[1]), tmp_path)
        stand_in = tmp_path / "clarity-stand-in"
        stand_in.write_text("#!/bin/sh\nexit 0\n")
        stand_in.chmod(0o755)
        return home, {"CLARITY_BIN": str(stand_in)}
    args = ["hooks", "install", "--scope", "user", "--url", url]
    done = subprocess.run(
        [sys.executable, "-m", "clarity", *args, *(("--type", hook_type) if hook_type else ())],
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return home, {}


def session(home: Path, project: Path, binary: str, **extra: str) -> ClaudeRun:
    with FakeAnthropic(first_run_script()) as fake:
        run = run_claude_p(
            PROMPT, env=claude_env(home, fake.url, extra=extra), cwd=project, binary=binary, timeout=180
        )
        assert run.ok and run.result == "Tests pass now.", run.describe() + "\n" + fake.dump()
    return run


@contextmanager
def installed_with_daemon(
    install: str, state: str, tmp_path: Path
) -> Iterator[tuple[Path, Path, dict[str, str]]]:
    """(HOME, project, environment additions): Clarity installed for a daemon that is ``state``."""
    project = make_project(tmp_path / "project")
    port = free_port()
    home, extra = set_up(install, f"http://127.0.0.1:{port}", tmp_path)
    with daemon_in(state, tmp_path, port):
        yield home, project, extra


@pytest.fixture(scope="module")
def without_clarity(claude_bin: str, tmp_path_factory: pytest.TempPathFactory) -> ClaudeRun:
    work = tmp_path_factory.mktemp("no-clarity")
    return session(work / "home", make_project(work / "project"), claude_bin)


@pytest.mark.parametrize("state", ["down", "hung", "starting"])
@pytest.mark.parametrize("install", INSTALLS)
def test_print_mode_shows_what_a_session_without_clarity_shows(
    claude_bin: str, without_clarity: ClaudeRun, tmp_path: Path, install: str, state: str
) -> None:
    with installed_with_daemon(install, state, tmp_path) as (home, project, extra):
        run = session(home, project, claude_bin, **extra)
    assert run.stderr == without_clarity.stderr == ""
    assert run.stdout.strip().startswith("{") and run.stdout.strip().endswith("}")
    assert set(run.json) == set(without_clarity.json)
    # Loose: the figures come from the benchmark. Hung: every hook waits out its budget.
    assert run.duration < without_clarity.duration + (40 if state == "hung" else 5), run.duration


def interactive(claude_bin: str, home: Path, project: Path, extra: dict[str, str]) -> str:
    """A prompt, a tool call, the answer, /exit: everything the screen showed (the conversation
    before /exit, then what was printed on the way out)."""
    script = [
        {"tool": "Bash", "input": {"command": "echo tool-ran", "description": "Say it ran"}},
        {"text": "All done, said the scripted model."},
    ]
    with FakeAnthropic(script) as fake:
        env = claude_env(home, fake.url, api_key=API_KEY, extra=extra)
        with TmuxClaude(claude_bin, env, project, home) as ui:
            ui.wait_for("bypass permissions on", 60)
            ui.send(PROMPT)
            ui.wait_for("said the scripted model", 90)
            during = ui.wait_until_idle(30)  # the Stop hook runs after the answer is shown
            return during + ui.exit(60)  # the UI clears its screen on exit: keep both


@pytest.fixture
def tmux() -> None:
    if not tmux_available():
        pytest.fail("tmux is needed to drive the interactive UI (apt-get install tmux)")


@pytest.mark.parametrize("state", ["down", "hung"])
@pytest.mark.parametrize("install", INSTALLS)
def test_interactive_ui_shows_no_hook_line(
    claude_bin: str, tmux: None, tmp_path: Path, install: str, state: str
) -> None:
    with installed_with_daemon(install, state, tmp_path) as (home, project, extra):
        screen = interactive(claude_bin, home, project, extra)
    assert "Ran 1 shell command" in screen, screen
    assert "hook" not in screen.lower(), screen


def test_interactive_ui_shows_failed_http_hooks(claude_bin: str, tmux: None, tmp_path: Path) -> None:
    """The negative case: `--type http` with the daemon down puts failures on the screen."""
    project = make_project(tmp_path / "project")
    home, extra = set_up("hooks", f"http://127.0.0.1:{free_port()}", tmp_path, "http")
    screen = interactive(claude_bin, home, project, extra)
    assert "UserPromptSubmit hook failed" in screen, screen
    assert "ECONNREFUSED" in screen
