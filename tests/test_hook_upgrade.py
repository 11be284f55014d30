"""Upgrading from the settings files Clarity wrote before its command-hook client moved.

Until issue 21, ``clarity hooks install --type command`` pointed every hook at
``<clarity>/mcp/hook_analyzer.py``; the client now lives at ``<clarity>/hooks/command_client.py``
and the old path is a stub that runs it. tests/fixtures/claude_settings/ holds settings files
exactly as the old code wrote them. Checked here: (a) their commands still work, end to end
against a running daemon; (b) ``clarity hooks install`` rewrites them to the new path in place,
without duplicating an entry or touching anyone else's hooks, and ``status`` recognises both
paths; (c) ``uninstall`` removes old-path entries too.

Until issue 25, a user-scope install registered the stdio shim (``clarity mcp``) as the MCP server,
a process Claude Code waited for at every session start; it is now the daemon's HTTP endpoint
without a header (the daemon asks Claude Code for its roots). (d) checks, on the state file as
the old install left it, that ``status`` flags the shim, ``install`` replaces it in place and
``uninstall`` removes it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

import clarity
from clarity.hooks.events import EVENTS
from clarity.integrations.claude_code import install, status, uninstall
from clarity.integrations.claude_entries import clarity_hook_type, shell_quote
from clarity.integrations.claude_files import state_file

from .daemon_util import Daemon, free_port

SETTINGS = Path(__file__).parent / "fixtures" / "claude_settings"
PAYLOADS = Path(__file__).parent / "fixtures" / "hook_payloads"
PACKAGE = Path(clarity.__file__).resolve().parent
OLD = "/mcp/hook_analyzer.py"
NEW = "/hooks/command_client.py"
FIXTURE_URL = "http://127.0.0.1:8765"  # what command_hooks_project_url.json was installed with


def _replace(data: Any, old: str, new: str) -> Any:
    if isinstance(data, dict):
        return {k: _replace(v, old, new) for k, v in data.items()}
    if isinstance(data, list):
        return [_replace(v, old, new) for v in data]
    return data.replace(old, new) if isinstance(data, str) else data


def fixture(name: str, client: str = OLD) -> dict[str, Any]:
    """A fixture with this interpreter and this clarity package in place of the placeholders,
    quoted as the install quoted them; ``client=NEW`` is what an install writes today."""
    data = json.loads((SETTINGS / name).read_text(encoding="utf-8"))
    data = _replace(data, "@PYTHON@", shell_quote(sys.executable)[1:-1])
    data = _replace(data, f"@CLARITY@{OLD}", shell_quote(f"{PACKAGE}{client}")[1:-1])
    assert "@" not in json.dumps(data)
    return data


def clarity_handlers(settings: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Event -> Clarity's handlers for it, for the events that have any."""
    found = {
        event: [h for group in groups for h in group.get("hooks", []) if clarity_hook_type(h)]
        for event, groups in settings.get("hooks", {}).items()
    }
    return {event: handlers for event, handlers in found.items() if handlers}


def write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def read(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME and Claude Code config dir, and no CLARITY_* from the developer's shell."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(home / ".claude"))
    for name in [n for n in os.environ if n.startswith("CLARITY_")]:
        monkeypatch.delenv(name)
    return home


def clarity_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The ``clarity`` command a user runs (as ``python -m clarity``), in the test's HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLARITY_")}
    return subprocess.run(
        [sys.executable, "-m", "clarity", *args], capture_output=True, text=True, env=env, timeout=120
    )


# --- (a) the old commands still work ------------------------------------------------------------


def run_hook(command: str, body: dict[str, Any], env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    """As Claude Code runs a command hook: through the shell, the event JSON on stdin."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLARITY_")}
    return subprocess.run(
        ["/bin/sh", "-c", command],
        input=json.dumps(body).encode(),
        capture_output=True,
        env={**clean, **env},
        timeout=60,
    )


@pytest.mark.parametrize("name", ["command_hooks_user.json", "command_hooks_project_url.json"])
def test_old_commands_still_reach_the_daemon(shared_daemon: Daemon, project: Path, name: str) -> None:
    """Every Clarity command in the old file runs (through the stub) and reaches the daemon: the
    prompt hook brings back a memory stored for the project. The user file has no --url, so
    CLARITY_URL names the daemon; the project file's baked --url is pointed at it."""
    marker = uuid.uuid4().hex[:8]
    shared_daemon.api(
        "POST",
        "/memories",
        str(project),
        json={"content": f"Grafana dashboards {marker} live in ops/grafana"},
    )
    settings = _replace(fixture(name), FIXTURE_URL, shared_daemon.url)
    env = {"CLARITY_URL": shared_daemon.url} if name == "command_hooks_user.json" else {}
    handlers = clarity_handlers(settings)
    assert sorted(handlers) == sorted(EVENTS)
    for event in EVENTS:
        [handler] = handlers[event]
        assert OLD in handler["command"]
        body = json.loads((PAYLOADS / f"{event}.json").read_text())
        body.update(cwd=str(project), session_id=f"s-upgrade-{marker}")
        if event == "UserPromptSubmit":
            body["prompt"] = "where do the grafana dashboards live?"
        run = run_hook(handler["command"], body, env)
        assert (run.returncode, run.stderr) == (0, b""), (event, run)
        reply = json.loads(run.stdout or b"{}")
        assert isinstance(reply, dict), (event, run.stdout)
        for attempt in range(3) if event == "UserPromptSubmit" else ():
            # The hook's own deadline is 3 s; on a loaded machine a first answer may come late
            # (the client then prints nothing), so ask again in a fresh session.
            if reply:
                break
            body["session_id"] = f"s-upgrade-{marker}-{attempt}"
            run = run_hook(handler["command"], body, env)
            assert (run.returncode, run.stderr) == (0, b""), (event, run)
            reply = json.loads(run.stdout or b"{}")
        if event == "UserPromptSubmit":
            context = reply["hookSpecificOutput"]["additionalContext"]
            assert f"Grafana dashboards {marker} live in ops/grafana" in context


def test_old_commands_with_the_daemon_down_are_silent(project: Path) -> None:
    settings = fixture("command_hooks_user.json")
    down = {"CLARITY_URL": f"http://127.0.0.1:{free_port()}"}
    for event, [handler] in clarity_handlers(settings).items():
        body = {**json.loads((PAYLOADS / f"{event}.json").read_text()), "cwd": str(project)}
        run = run_hook(handler["command"], body, down)
        assert (run.returncode, run.stdout, run.stderr) == (0, b"", b""), event


# --- (b) install rewrites them, status knows both -------------------------------------------------


def test_install_rewrites_old_entries_in_place(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real upgrade: `clarity hooks install --type command` over the old user file gives
    exactly the file a fresh install gives today, in the same order, foreign hooks untouched."""
    path = home / ".claude" / "settings.json"
    write(path, fixture("command_hooks_user.json"))
    before = status().scope("user")
    assert before.hooks == dict.fromkeys(EVENTS, "command") and before.hooks_complete

    done = clarity_cli("hooks", "install", "--type", "command", "--no-mcp")
    assert done.returncode == 0, done.stderr
    assert read(path) == fixture("command_hooks_user.json", client=NEW)
    assert OLD not in path.read_text()
    again = install("user", "command", no_mcp=True)
    assert not again.changed and again.files[0].path == path
    assert status().scope("user").hooks == dict.fromkeys(EVENTS, "command")
    # the same file as installing today on the settings from before Clarity
    fresh = home / "fresh" / "settings.json"
    write(fresh, json.loads((SETTINGS / "foreign_hooks_user.json").read_text()))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(fresh.parent))
    install("user", "command", no_mcp=True)
    assert read(fresh) == read(path)


def test_install_reports_old_entries_as_updated_not_added(home: Path, project: Path) -> None:
    path = project / ".claude" / "settings.json"
    write(path, fixture("command_hooks_project_url.json"))
    result = install("project", "command", project=project, no_mcp=True, base_url=FIXTURE_URL)
    [change] = result.files
    assert (change.added, change.removed, sorted(change.updated)) == ([], [], sorted(EVENTS))
    assert read(path) == fixture("command_hooks_project_url.json", client=NEW)


def test_switching_old_command_hooks_to_http_leaves_one_entry_per_event(home: Path) -> None:
    path = home / ".claude" / "settings.json"
    old = fixture("command_hooks_user.json")
    write(path, old)
    install("user", "http", no_mcp=True)
    now = read(path)
    for event, handlers in clarity_handlers(now).items():
        assert len(handlers) == 1, event
        kind = "command" if event == "SessionStart" else "http"
        assert clarity_hook_type(handlers[0]) == kind
        assert OLD not in json.dumps(handlers[0])
    assert now["hooks"]["PreToolUse"][0] == old["hooks"]["PreToolUse"][0]  # the foreign Bash hook
    assert now["hooks"]["Notification"] == old["hooks"]["Notification"]
    assert {k: v for k, v in now.items() if k != "hooks"} == {k: v for k, v in old.items() if k != "hooks"}


def test_status_recognises_old_and_new_paths_together(home: Path) -> None:
    """A file with some events on each path (a hand edit, or two installs of different ages)."""
    old, new = fixture("command_hooks_user.json"), fixture("command_hooks_user.json", client=NEW)
    mixed = {**old, "hooks": {e: (old if i % 2 else new)["hooks"][e] for i, e in enumerate(old["hooks"])}}
    path = home / ".claude" / "settings.json"
    write(path, mixed)
    assert status().scope("user").hooks == dict.fromkeys(EVENTS, "command")
    shown = clarity_cli("hooks", "status", "--json")
    assert shown.returncode == 0, shown.stderr
    [user] = [s for s in json.loads(shown.stdout)["scopes"] if s["scope"] == "user"]
    assert user["hooks"] == dict.fromkeys(EVENTS, "command") and user["hooks_complete"]
    install("user", "command", no_mcp=True)
    assert read(path) == new


# --- (c) uninstall removes them ---------------------------------------------------------------------


def test_uninstall_removes_old_path_entries(home: Path, project: Path) -> None:
    path = home / ".claude" / "settings.json"
    write(path, fixture("command_hooks_user.json"))
    done = clarity_cli("hooks", "uninstall", "--no-mcp")
    assert done.returncode == 0, done.stderr
    assert read(path) == json.loads((SETTINGS / "foreign_hooks_user.json").read_text())
    assert status().scope("user").hooks == {}

    in_project = project / ".claude" / "settings.json"
    write(in_project, fixture("command_hooks_project_url.json"))
    result = uninstall("project", project=project, no_mcp=True, base_url=FIXTURE_URL)
    assert sorted(result.files[0].removed) == sorted(EVENTS)
    assert read(in_project) == {}


# --- (d) the user-scope MCP server: the stdio shim of installs before issue 25 ------------------


def old_state() -> dict[str, Any]:
    """``~/.claude.json`` as Claude Code and the old ``clarity hooks install`` left it."""
    data = json.loads((SETTINGS / "stdio_mcp_user_state.json").read_text(encoding="utf-8"))
    data = _replace(data, "@BIN@", str(Path(sys.executable).absolute().parent))
    assert "@" not in json.dumps(data)
    return dict(data)


def test_status_flags_the_old_stdio_shim_and_install_replaces_it(home: Path) -> None:
    old = old_state()
    path = state_file()
    assert path == home / ".claude" / ".claude.json"
    write(path, old)
    user = status().scope("user")
    assert user.mcp == old["mcpServers"]["clarity"] and user.mcp_outdated
    shown = clarity_cli("hooks", "status")
    assert shown.returncode == 0, shown.stderr
    [line] = [ln for ln in shown.stdout.splitlines() if ln.strip().startswith("user ")]
    assert "clarity (stdio)" in line and "`clarity hooks install` replaces it" in line, shown.stdout
    as_json = clarity_cli("hooks", "status", "--json")
    [entry] = [s for s in json.loads(as_json.stdout)["scopes"] if s["scope"] == "user"]
    assert (entry["mcp_type"], entry["mcp_outdated"]) == ("stdio", True)

    done = clarity_cli("hooks", "install")
    assert done.returncode == 0, done.stderr
    assert f"user MCP {path}: updated MCP server 'clarity'" in done.stdout, done.stdout
    assert "is the daemon at http://127.0.0.1:8000/mcp" in done.stdout  # no stdio shim to start it
    now = read(path)
    assert now["mcpServers"] == {
        "github": old["mcpServers"]["github"],  # someone else's server, where it was
        "clarity": {"type": "http", "url": "http://127.0.0.1:8000/mcp"},
    }
    assert list(now["mcpServers"]) == ["github", "clarity"]
    assert {k: v for k, v in now.items() if k != "mcpServers"} == {
        k: v for k, v in old.items() if k != "mcpServers"
    }
    assert list(now) == list(old)
    assert not status().scope("user").mcp_outdated
    again = install("user")
    assert not again.changed


def test_uninstall_removes_the_old_stdio_shim(home: Path) -> None:
    old = old_state()
    write(state_file(), old)
    result = uninstall("user")
    [mcp] = [f for f in result.files if f.kind == "mcp"]
    assert mcp.removed == ["clarity"]
    now = read(state_file())
    assert now["mcpServers"] == {"github": old["mcpServers"]["github"]}
    assert {k: v for k, v in now.items() if k != "mcpServers"} == {
        k: v for k, v in old.items() if k != "mcpServers"
    }
    assert status().scope("user").mcp is None
