"""`clarity doctor` on a set-up machine, and the fix it names for each provoked failure."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from .daemon_util import Daemon, free_port, run_clarity
from .e2e.claude_cli import find_claude


def clarity(
    env: dict[str, str], cwd: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return run_clarity(env, *args, cwd=cwd, timeout=timeout)


def doctor(env: dict[str, str], cwd: Path) -> tuple[int, dict[str, dict[str, str]]]:
    result = clarity(env, cwd, "doctor", "--json", timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    return result.returncode, checks


@pytest.fixture
def machine(tmp_path: Path, shared_daemon: Daemon) -> tuple[dict[str, str], Path]:
    """A HOME with Clarity's hooks installed for the user, pointing at the shared daemon."""
    claude = find_claude()
    if claude is None:
        pytest.skip("Claude Code CLI not found: run ./scripts/setup.sh --dev")
    home = tmp_path / "home"
    project = tmp_path / "project"
    home.mkdir()
    project.mkdir()
    env = {
        **shared_daemon.env(),
        "HOME": str(home),
        "PATH": f"{Path(claude).parent}{os.pathsep}{os.environ['PATH']}",
    }
    env.pop("CLAUDE_CONFIG_DIR", None)
    installed = clarity(env, project, "hooks", "install", "--scope", "user")
    assert installed.returncode == 0, installed.stderr + installed.stdout
    return env, project


def test_doctor_passes_on_a_set_up_machine(machine: tuple[dict[str, str], Path]) -> None:
    env, project = machine
    code, checks = doctor(env, project)
    failing = {name: c for name, c in checks.items() if c["status"] == "fail"}
    assert code == 0 and not failing, failing
    assert checks["daemon"]["status"] == "ok" and checks["model"]["status"] == "ok"
    assert "memories" in checks["qdrant"]["detail"]
    assert checks["hooks (user)"]["status"] == "ok" and checks["mcp"]["status"] == "ok"
    assert "2.1.330" in checks["claude code"]["detail"]


def test_doctor_names_the_fix_when_the_daemon_is_stopped(
    machine: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, project = machine
    # Another storage root: the shared daemon's own root would lead doctor to it (its lock file).
    stopped = {**env, "CLARITY_SERVER__PORT": str(free_port()), "CLARITY_STORAGE__ROOT": str(tmp_path / "r")}
    code, checks = doctor(stopped, project)
    assert code == 1
    assert checks["daemon"]["status"] == "fail" and "clarity serve" in checks["daemon"]["fix"]


def test_doctor_names_the_fix_when_storage_is_unwritable(
    machine: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, project = machine
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code, checks = doctor({**env, "CLARITY_STORAGE__ROOT": str(blocker / "root")}, project)
    assert code == 1
    assert checks["storage"]["status"] == "fail"
    assert (
        "not writable" in checks["storage"]["detail"] and "CLARITY_STORAGE__ROOT" in checks["storage"]["fix"]
    )


def test_doctor_names_the_fix_when_hooks_are_missing(machine: tuple[dict[str, str], Path]) -> None:
    env, project = machine
    removed = clarity(env, project, "hooks", "uninstall", "--scope", "user")
    assert removed.returncode == 0, removed.stderr
    code, checks = doctor(env, project)
    assert code == 1
    assert checks["hooks"]["status"] == "fail" and "clarity hooks install" in checks["hooks"]["fix"]
    assert checks["mcp"]["status"] == "fail"


def test_doctor_warns_when_claude_code_is_pointed_at_another_address(
    machine: tuple[dict[str, str], Path], shared_daemon: Daemon
) -> None:
    env, project = machine
    elsewhere = f"http://127.0.0.1:{free_port()}"
    moved = clarity(env, project, "hooks", "install", "--scope", "user", "--url", elsewhere)
    assert moved.returncode == 0, moved.stderr
    _, checks = doctor(env, project)
    mcp = checks["mcp (user)"]
    assert mcp["status"] == "warn" and f"registered at {elsewhere}/mcp" in mcp["detail"]
    assert f"the daemon is at {shared_daemon.url}/mcp" in mcp["detail"]
    assert mcp["fix"] == "clarity hooks install --scope user"
