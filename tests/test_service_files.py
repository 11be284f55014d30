"""`clarity service install|uninstall|status`: the generated systemd unit and launchd plist.

HOME is a temp dir and `systemctl` / `launchctl` are stand-ins on PATH that only log their
arguments: nothing is enabled on the machine running the tests. The unit is checked with
`systemd-analyze verify --user` where it exists, the plist with plistlib (and `plutil -lint`
on macOS).
"""

from __future__ import annotations

import json
import os
import plistlib
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clarity.cli import app, service

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    for key in list(os.environ):
        if key.startswith("CLARITY_") or key in ("MEMORY_CONFIG_PATH", "QDRANT_URL", "QDRANT_API_KEY"):
            monkeypatch.delenv(key)
    # Stand-ins for the service managers: log argv, succeed.
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    log = tmp_path / "manager.log"
    for name in ("systemctl", "launchctl"):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\necho active\n')
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    # Nothing answers on this port, so `status` never reports some other daemon.
    monkeypatch.setenv("CLARITY_SERVER__PORT", "9")
    return home


def manager_calls(home: Path) -> list[str]:
    log = home.parent / "manager.log"
    return log.read_text().splitlines() if log.exists() else []


def invoke(*args: str) -> str:
    result = runner.invoke(app, ["service", *args])
    assert result.exit_code == 0, result.output
    return str(result.output)


def systemd_verify(unit: Path, home: Path) -> str | None:
    """Warnings of `systemd-analyze verify --user` (empty when clean), None when unavailable."""
    if shutil.which("systemd-analyze") is None:
        return None
    runtime = home.parent / "xdg-runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    result = subprocess.run(
        ["systemd-analyze", "verify", "--user", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    if "Failed to initialize manager" in result.stderr:
        return None
    return (result.stdout + result.stderr).strip()


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, f"not a unit line: {line!r}"
        current.setdefault(key, []).append(value)
    return sections


def test_systemd_unit_runs_this_clarity_and_passes_verify(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLARITY_STORAGE__ROOT", str(home / "store"))
    monkeypatch.setenv("CLARITY_TOKEN", "do-not-write-me")
    monkeypatch.setenv("QDRANT_API_KEY", "nor-me")
    output = invoke("install", "--kind", "systemd", "--no-enable", "--port", "8123")
    unit = home / ".config" / "systemd" / "user" / "clarity.service"
    assert unit.exists(), output
    assert "systemctl --user enable --now clarity.service" in output
    assert manager_calls(home) == []  # --no-enable touches no service manager

    text = unit.read_text()
    assert "do-not-write-me" not in text and "nor-me" not in text
    sections = parse_unit(text)
    assert set(sections) == {"Unit", "Service", "Install"}
    exec_start = sections["Service"]["ExecStart"][0]
    executable = service.clarity_executable()
    assert Path(executable).is_absolute() and os.access(executable, os.X_OK)
    assert exec_start == f'"{executable}" "serve" "--port" "8123"'
    env = sections["Service"]["Environment"]
    assert '"HF_HUB_OFFLINE=1"' in env
    assert f'"CLARITY_STORAGE__ROOT={home / "store"}"' in env
    assert sections["Service"]["Restart"] == ["on-failure"]
    assert sections["Install"]["WantedBy"] == ["default.target"]

    warnings = systemd_verify(unit, home)
    if warnings is not None:
        assert warnings == "", warnings


def test_systemd_quoting_survives_spaces_and_percent(home: Path) -> None:
    odd = home / "my tools" / "100%" / "clarity"
    odd.parent.mkdir(parents=True)
    odd.write_text("#!/bin/sh\n")
    odd.chmod(0o755)
    unit = home / ".config" / "systemd" / "user" / "clarity.service"
    unit.parent.mkdir(parents=True)
    unit.write_text(service.systemd_unit([str(odd), "serve"], {"CLARITY_X": 'a "b" 50%'}))
    assert f'ExecStart="{home}/my tools/100%%/clarity" "serve"' in unit.read_text()
    warnings = systemd_verify(unit, home)
    if warnings is None:
        pytest.skip("systemd-analyze is not available")
    assert warnings == "", warnings
    assert service._installed_args(service.Kind.systemd, unit) == [str(odd), "serve"]


def test_xdg_config_home_is_honoured(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "cfg"))
    invoke("install", "--kind", "systemd", "--no-enable")
    assert (home / "cfg" / "systemd" / "user" / "clarity.service").exists()


def test_systemd_install_enables_and_uninstall_disables(home: Path) -> None:
    invoke("install", "--kind", "systemd")
    assert manager_calls(home) == [
        "systemctl --user daemon-reload",
        "systemctl --user enable --now clarity.service",
    ]
    unit = home / ".config" / "systemd" / "user" / "clarity.service"
    assert unit.exists()
    invoke("uninstall", "--kind", "systemd")
    assert not unit.exists()
    assert manager_calls(home)[2:] == [
        "systemctl --user disable --now clarity.service",
        "systemctl --user daemon-reload",
    ]
    assert "no Clarity service file" in invoke("uninstall", "--kind", "systemd")


def test_install_reports_a_failing_service_manager(home: Path) -> None:
    failing = home.parent / "fake-bin" / "systemctl"
    failing.write_text("#!/bin/sh\necho 'Failed to connect to bus' >&2\nexit 1\n")
    result = runner.invoke(app, ["service", "install", "--kind", "systemd"])
    assert result.exit_code == 1
    assert "Failed to connect to bus" in result.output
    assert (home / ".config" / "systemd" / "user" / "clarity.service").exists()


def test_status_tells_current_stale_and_missing_executable(home: Path) -> None:
    def status() -> dict:
        return dict(json.loads(invoke("status", "--kind", "systemd", "--json")))

    before = status()
    assert before["installed"] is False and before["daemon_running"] is False
    invoke("install", "--kind", "systemd", "--no-enable")
    now = status()
    assert now["installed"] and now["current"] and now["executable_exists"]
    assert now["executable"] == service.clarity_executable()
    assert now["manager"] == {"is-enabled": "active", "is-active": "active"}  # the stand-in's answer

    unit = Path(now["path"])
    unit.write_text(unit.read_text().replace(now["executable"], "/nonexistent/venv/bin/clarity"))
    stale = status()
    assert stale["current"] is False and stale["executable_exists"] is False
    text = invoke("status", "--kind", "systemd")
    assert "no longer exists" in text


def test_launchd_plist(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLARITY_TOKEN", "do-not-write-me")
    monkeypatch.setenv("MEMORY_CONFIG_PATH", str(home / "cfg.json"))
    invoke("install", "--kind", "launchd", "--no-enable")
    path = home / "Library" / "LaunchAgents" / "com.alunai.clarity.plist"
    raw = path.read_bytes()
    assert b"do-not-write-me" not in raw
    plist = plistlib.loads(raw)
    assert plist["Label"] == "com.alunai.clarity"
    assert plist["ProgramArguments"] == [service.clarity_executable(), "serve"]
    assert Path(plist["ProgramArguments"][0]).is_absolute()
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["EnvironmentVariables"]["MEMORY_CONFIG_PATH"] == str(home / "cfg.json")
    assert plist["EnvironmentVariables"]["HF_HUB_OFFLINE"] == "1"
    assert plist["StandardErrorPath"] == str(home / ".claude" / "alunai-clarity" / "app-data" / "service.log")
    if shutil.which("plutil"):
        subprocess.run(["plutil", "-lint", str(path)], check=True, capture_output=True, timeout=30)

    status = json.loads(invoke("status", "--kind", "launchd", "--json"))
    assert status["installed"] and status["current"] and status["executable_exists"]
    assert status["manager"] == {"loaded": "yes"}


def test_launchd_install_and_uninstall_use_bootstrap_and_bootout(home: Path) -> None:
    invoke("install", "--kind", "launchd")
    path = home / "Library" / "LaunchAgents" / "com.alunai.clarity.plist"
    uid = os.getuid()
    assert manager_calls(home) == [f"launchctl bootstrap gui/{uid} {path}"]
    invoke("install", "--kind", "launchd")  # again: unload the old one first
    assert manager_calls(home)[1:] == [
        f"launchctl bootout gui/{uid}/com.alunai.clarity",
        f"launchctl bootstrap gui/{uid} {path}",
    ]
    invoke("uninstall", "--kind", "launchd")
    assert not path.exists()
    assert manager_calls(home)[-1] == f"launchctl bootout gui/{uid}/com.alunai.clarity"


def test_default_kind_follows_the_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service.sys, "platform", "darwin")
    assert service.default_kind() is service.Kind.launchd
    monkeypatch.setattr(service.sys, "platform", "linux")
    assert service.default_kind() is service.Kind.systemd
