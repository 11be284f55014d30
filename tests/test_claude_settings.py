"""Installing Clarity into Claude Code's settings: real files in a throwaway HOME and project.

The unit tests pin down the merge rules (keep everything else, idempotent, clean uninstall,
refuse unreadable files); the e2e tests hand the result to the real Claude Code CLI, which is
the only judge of whether the shapes are right.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from clarity.cli.hooks import hooks_app
from clarity.integrations import claude_entries as entries
from clarity.integrations import claude_files as files
from clarity.integrations.claude_code import EVENTS, SettingsError, install, status, uninstall

SCOPES = ("user", "project", "local")
TOKEN = "test-token-value-123"

# A settings file as a user who already runs another tool's hooks might have it.
ORIGINAL_SETTINGS: dict[str, Any] = {
    "$schema": "https://json.schemastore.org/claude-code-settings.json",
    "permissions": {"allow": ["Bash(npm run test:*)", "Read(~/.zshrc)"], "deny": ["Read(./.env)"]},
    "env": {"FOO": "bar", "GREETING": "héllo wörld ✓"},
    "hooks": {
        "PreToolUse": [
            {
                "matcher": "Bash",
                "hooks": [{"type": "command", "command": "/usr/local/bin/guard.sh", "timeout": 10}],
            }
        ],
        "Notification": [{"hooks": [{"type": "command", "command": "notify-send 'Claude needs you'"}]}],
        "Stop": [{"hooks": [{"type": "http", "url": "http://127.0.0.1:3000/notify", "timeout": 5}]}],
    },
    "model": "opus",
    "statusLine": {"type": "command", "command": "~/.claude/statusline.sh"},
}
# Claude Code's state file (~/.claude.json) with another server and another project.
ORIGINAL_STATE: dict[str, Any] = {
    "numStartups": 12,
    "mcpServers": {"github": {"type": "stdio", "command": "gh-mcp", "args": [], "env": {"X": "1"}}},
    "projects": {
        "/some/other/project": {
            "allowedTools": [],
            "mcpServers": {"db": {"type": "http", "url": "http://localhost:9999/mcp"}},
        }
    },
    "userID": "abc",
}
ORIGINAL_MCP_JSON: dict[str, Any] = {
    "mcpServers": {"docs": {"type": "http", "url": "https://docs.example/mcp"}}
}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("CLAUDE_CONFIG_DIR", "CLARITY_URL", "CLARITY_TOKEN", "CLARITY_SERVER__PORT"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def project(tmp_path: Path, home: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    return project


def read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def files_of(scope: str, project: Path) -> tuple[Path, Path]:
    return files.settings_path(scope, project), files.mcp_path(scope, project)  # type: ignore[arg-type]


def seed(scope: str, project: Path) -> dict[Path, Any]:
    """Write realistic pre-existing files for ``scope``; returns path -> original content."""
    settings, mcp = files_of(scope, project)
    originals = {
        settings: ORIGINAL_SETTINGS,
        mcp: ORIGINAL_MCP_JSON if scope == "project" else ORIGINAL_STATE,
    }
    for path, data in originals.items():
        write(path, data)
    return originals


def clarity_handlers(settings: dict[str, Any], event: str) -> list[dict[str, Any]]:
    return [
        h
        for group in settings.get("hooks", {}).get(event, [])
        for h in group.get("hooks", [])
        if entries.clarity_hook_type(h)
    ]


def mcp_entry(scope: str, project: Path) -> Any:
    data = read(files.mcp_path(scope, project))  # type: ignore[arg-type]
    if scope == "local":
        data = data["projects"][files.local_project_key(project)]
    return data["mcpServers"].get("clarity")


# --- install ---------------------------------------------------------------------------------


@pytest.mark.parametrize("hook_type", [None, "http"], ids=["default", "http"])
@pytest.mark.parametrize("scope", SCOPES)
def test_install_keeps_everything_else(scope: str, hook_type: str | None, project: Path) -> None:
    originals = seed(scope, project)
    settings_file, mcp_file = files_of(scope, project)

    if hook_type is None:  # command hooks: silent when the daemon is down
        result = install(scope, project=project)  # type: ignore[arg-type]
    else:
        result = install(scope, hook_type, project=project)  # type: ignore[arg-type]

    assert result.changed
    assert {f.path for f in result.files} == {settings_file, mcp_file}
    hooks_change = next(f for f in result.files if f.kind == "hooks")
    assert hooks_change.added == list(EVENTS)
    settings = read(settings_file)
    # every other key unchanged, in the same order
    assert list(settings) == list(ORIGINAL_SETTINGS)
    for key in ORIGINAL_SETTINGS:
        if key != "hooks":
            assert settings[key] == ORIGINAL_SETTINGS[key]
    # the other tools' hooks stay first, Clarity's come after them
    assert settings["hooks"]["PreToolUse"][0] == ORIGINAL_SETTINGS["hooks"]["PreToolUse"][0]
    assert settings["hooks"]["Notification"] == ORIGINAL_SETTINGS["hooks"]["Notification"]
    assert settings["hooks"]["Stop"][0] == ORIGINAL_SETTINGS["hooks"]["Stop"][0]
    assert list(settings["hooks"])[:3] == ["PreToolUse", "Notification", "Stop"]
    for event in EVENTS:
        [handler] = clarity_handlers(settings, event)
        # Claude Code runs no http hooks for SessionStart
        if hook_type is None or event == "SessionStart":
            assert handler == {
                "type": "command",
                "command": entries.client_command(event, "http://127.0.0.1:8000"),
                "timeout": entries.TIMEOUTS[event] + 1,
            }
            assert "clarity/hooks/command_client.py" in handler["command"]
        else:
            assert handler == {
                "type": "http",
                "url": f"http://127.0.0.1:8000/hooks/{event}",
                "timeout": entries.TIMEOUTS[event],
                # CLARITY_DISABLED=1 in a session's environment reaches the daemon as this header
                "headers": {"X-Clarity-Disabled": "$CLARITY_DISABLED"},
                "allowedEnvVars": ["CLARITY_DISABLED"],
            }
    for event in ("PreToolUse", "PostToolUse", "PostToolUseFailure"):
        assert settings["hooks"][event][-1]["matcher"] == "*"
    for event in ("SessionStart", "UserPromptSubmit", "Stop", "SessionEnd"):
        assert "matcher" not in settings["hooks"][event][-1]
    # file layout: 2-space indent, trailing newline, non-ASCII kept as is
    text = settings_file.read_text(encoding="utf-8")
    assert text.endswith("}\n") and '\n  "permissions": {' in text and "héllo wörld ✓" in text

    # the MCP side keeps the other servers and projects
    mcp_data = read(mcp_file)
    original_mcp = originals[mcp_file]
    assert list(mcp_data) == list(original_mcp)
    for key, value in original_mcp.items():
        if key not in ("mcpServers", "projects"):
            assert mcp_data[key] == value
    if scope == "project":
        assert mcp_data["mcpServers"]["docs"] == ORIGINAL_MCP_JSON["mcpServers"]["docs"]
    else:
        assert mcp_data["mcpServers"]["github"] == ORIGINAL_STATE["mcpServers"]["github"]
        assert (
            mcp_data["projects"]["/some/other/project"] == ORIGINAL_STATE["projects"]["/some/other/project"]
        )


def test_mcp_entries_match_what_claude_mcp_add_writes(project: Path, home: Path) -> None:
    """The shapes `claude mcp add` (2.1.330) writes for each scope, checked by hand with the CLI.
    User scope is HTTP without a header (`claude mcp add --scope user --transport http clarity URL`
    writes exactly this): one entry for every project, the daemon asks Claude Code for its roots;
    no stdio process for Claude Code to wait for at session start."""
    for scope in SCOPES:
        install(scope, project=project)  # type: ignore[arg-type]
    assert mcp_entry("user", project) == {"type": "http", "url": "http://127.0.0.1:8000/mcp"}
    http = {
        "type": "http",
        "url": "http://127.0.0.1:8000/mcp",
        "headers": {"X-Clarity-Project": str(project.resolve())},
    }
    assert mcp_entry("project", project) == http
    assert mcp_entry("local", project) == http
    assert list(read(home / ".claude.json")["projects"]) == [str(project.resolve())]


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("hook_type", ["http", "command"])
def test_second_install_is_byte_identical(scope: str, hook_type: str, project: Path) -> None:
    seed(scope, project)
    install(scope, hook_type, project=project)  # type: ignore[arg-type]
    paths = files_of(scope, project)
    before = {p: p.read_bytes() for p in paths}
    mtimes = {p: p.stat().st_mtime_ns for p in paths}

    again = install(scope, hook_type, project=project)  # type: ignore[arg-type]

    assert not again.changed
    assert all(not (f.added or f.updated or f.removed) for f in again.files)
    assert {p: p.read_bytes() for p in paths} == before
    assert {p: p.stat().st_mtime_ns for p in paths} == mtimes  # not even rewritten


def test_install_creates_missing_files_and_dirs(project: Path, home: Path) -> None:
    result = install("project", project=project)
    assert all(f.created for f in result.files)
    assert (project / ".claude" / "settings.json").is_file()
    assert (project / ".mcp.json").is_file()
    assert not (home / ".claude.json").exists()  # project scope leaves the state file alone


def test_switching_type_replaces_clarity_entries_in_place(project: Path) -> None:
    seed("user", project)
    install("user", "http", project=project)
    result = install("user", "command", project=project)
    change = next(f for f in result.files if f.kind == "hooks")
    # SessionStart was a command hook already
    assert change.updated == [e for e in EVENTS if e != "SessionStart"] and not change.added
    settings = read(files.settings_path("user", project))
    assert settings["hooks"]["PreToolUse"][0] == ORIGINAL_SETTINGS["hooks"]["PreToolUse"][0]
    for event in EVENTS:
        [handler] = clarity_handlers(settings, event)
        assert handler["type"] == "command"
        assert handler["timeout"] == entries.TIMEOUTS[event] + 1
        assert f"--timeout={entries.TIMEOUTS[event]}" in handler["command"]
        assert len(settings["hooks"][event]) == len(ORIGINAL_SETTINGS["hooks"].get(event, [])) + 1


def test_command_hooks_run_the_analyzer(project: Path, tmp_path: Path) -> None:
    """The command string Claude Code would run, run through a shell, reaches the daemon."""
    received: list[tuple[str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            body = b'{"hookSpecificOutput": {"hookEventName": "SessionStart", "additionalContext": "hi"}}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        install("local", "command", project=project, base_url=base, no_mcp=True)
        [handler] = clarity_handlers(read(files.settings_path("local", project)), "SessionStart")
        assert handler["command"].startswith(f'"{sys.executable}" -S "{entries.COMMAND_CLIENT}"')
        assert f'"--url={base}"' in handler["command"]
        payload = b'{"hook_event_name": "SessionStart", "cwd": "/x", "session_id": "s"}'
        proc = subprocess.run(
            ["/bin/sh", "-c", handler["command"]], input=payload, capture_output=True, timeout=10
        )
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 0 and proc.stderr == b""
    assert json.loads(proc.stdout)["hookSpecificOutput"]["additionalContext"] == "hi"
    assert received == [("/hooks/SessionStart", payload)]


def test_shell_quoting_survives_odd_paths() -> None:
    for value in ('/opt/my tools/py"thon', "/tmp/$HOME/`x`/a\\b"):
        out = subprocess.run(
            ["/bin/sh", "-c", f"printf %s {entries.shell_quote(value)}"], capture_output=True, text=True
        )
        assert out.stdout == value


def test_token_adds_headers_but_never_the_token(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLARITY_TOKEN", TOKEN)
    for scope in SCOPES:
        install(scope, project=project)  # type: ignore[arg-type]
    settings = read(files.settings_path("project", project))
    for event in EVENTS:
        [handler] = clarity_handlers(settings, event)
        if handler["type"] == "http":
            assert handler["headers"] == {
                "X-Clarity-Disabled": "$CLARITY_DISABLED",
                "Authorization": "Bearer $CLARITY_TOKEN",
            }
            assert handler["allowedEnvVars"] == ["CLARITY_DISABLED", "CLARITY_TOKEN"]
        else:
            assert "headers" not in handler
    for scope in SCOPES:
        assert mcp_entry(scope, project)["headers"]["Authorization"] == "Bearer ${CLARITY_TOKEN}"
    assert mcp_entry("user", project)["headers"] == {"Authorization": "Bearer ${CLARITY_TOKEN}"}
    for path in {p for scope in SCOPES for p in files_of(scope, project)}:
        assert TOKEN not in path.read_text()


def test_custom_base_url(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = "http://10.1.2.3:9000"
    install("user", "http", project=project, base_url=base)
    settings = read(files.settings_path("user", project))
    [ups] = [h for g in settings["hooks"]["UserPromptSubmit"] for h in g["hooks"]]
    assert ups["url"] == f"{base}/hooks/UserPromptSubmit"
    [session] = [h for g in settings["hooks"]["SessionStart"] for h in g["hooks"]]
    assert f'"--url={base}"' in session["command"]
    # a non-loopback hook is Clarity's only for the base it was installed with
    assert status(project).scope("user").hooks == {"SessionStart": "command"}
    assert len(status(project, base_url=base).scope("user").hooks) == len(EVENTS)
    monkeypatch.setenv("CLARITY_URL", base)
    assert len(status(project).scope("user").hooks) == len(EVENTS)
    uninstall("user", project=project)
    assert "hooks" not in read(files.settings_path("user", project))


def test_clarity_url_and_port_from_environment(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLARITY_SERVER__PORT", "8123")
    install("user", project=project, no_mcp=True)
    hooks = read(files.settings_path("user", project))["hooks"]
    for event in EVENTS:
        assert '"--url=http://127.0.0.1:8123"' in hooks[event][0]["hooks"][0]["command"]
    install("user", "http", project=project, no_mcp=True)
    hooks = read(files.settings_path("user", project))["hooks"]
    assert hooks["Stop"][0]["hooks"][0]["url"] == "http://127.0.0.1:8123/hooks/Stop"


def test_claude_config_dir(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    config = tmp_path / "cfg"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    install("user", project=project)
    install("local", project=project)
    assert (config / "settings.json").is_file()
    assert set(read(config / ".claude.json")) == {"mcpServers", "projects"}
    assert not (home / ".claude").exists() and not (home / ".claude.json").exists()


def test_local_scope_uses_the_git_root_like_claude_code(project: Path, home: Path) -> None:
    """`claude mcp add -s local` run in a sub-directory files the server under the repo root."""
    (project / ".git").mkdir()
    sub = project / "src" / "pkg"
    sub.mkdir(parents=True)
    install("local", project=sub)
    assert list(read(home / ".claude.json")["projects"]) == [str(project.resolve())]
    assert (sub / ".claude" / "settings.local.json").is_file()  # settings are read from the cwd
    assert status(sub).scope("local").mcp_registered


def test_symlinked_settings_are_written_through(project: Path, home: Path, tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "claude-settings.json"
    write(real, ORIGINAL_SETTINGS)
    link = home / ".claude" / "settings.json"
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    install("user", project=project, no_mcp=True)
    assert link.is_symlink()
    assert len(status(project).scope("user").hooks) == len(EVENTS)
    assert read(real)["model"] == "opus"


def test_state_file_permissions(project: Path, home: Path) -> None:
    install("user", project=project)
    assert stat.S_IMODE((home / ".claude.json").stat().st_mode) == 0o600
    os.chmod(home / ".claude.json", 0o640)
    uninstall("user", project=project)
    assert stat.S_IMODE((home / ".claude.json").stat().st_mode) == 0o640


# --- uninstall -------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("hook_type", ["http", "command"])
def test_uninstall_restores_the_original(scope: str, hook_type: str, project: Path) -> None:
    originals = seed(scope, project)
    install(scope, hook_type, project=project)  # type: ignore[arg-type]

    result = uninstall(scope, project=project)  # type: ignore[arg-type]

    assert result.changed
    hooks_change = next(f for f in result.files if f.kind == "hooks")
    assert sorted(hooks_change.removed) == sorted(EVENTS)
    for path, original in originals.items():
        restored = read(path)
        assert restored == original
        assert json.dumps(restored) == json.dumps(original)  # same key order too
    again = uninstall(scope, project=project)  # type: ignore[arg-type]
    assert not again.changed


def test_uninstall_from_scratch_leaves_empty_objects(project: Path) -> None:
    install("project", project=project)
    uninstall("project", project=project)
    assert read(project / ".claude" / "settings.json") == {}
    assert read(project / ".mcp.json") == {}


def test_uninstall_touches_nothing_when_not_installed(project: Path, home: Path) -> None:
    result = uninstall("user", project=project)
    assert not result.changed
    assert not (home / ".claude").exists() and not (home / ".claude.json").exists()


def test_uninstall_keeps_clarity_like_but_foreign_hooks(project: Path) -> None:
    foreign = {
        "hooks": {
            "Stop": [
                {
                    "hooks": [
                        {"type": "http", "url": "https://hooks.example.com/hooks/Stop"},  # not loopback
                        {"type": "http", "url": "http://127.0.0.1:3000/notify/Stop"},  # not /hooks/
                        {"type": "command", "command": "my-analyzer.py"},
                    ]
                }
            ]
        }
    }
    write(files.settings_path("user", project), foreign)
    install("user", project=project, no_mcp=True)
    assert len(read(files.settings_path("user", project))["hooks"]["Stop"]) == 2
    uninstall("user", project=project, no_mcp=True)
    assert read(files.settings_path("user", project)) == foreign


def test_uninstall_no_mcp_keeps_the_server(project: Path) -> None:
    install("local", project=project)
    uninstall("local", project=project, no_mcp=True)
    report = status(project).scope("local")
    assert report.hooks == {} and report.mcp_registered


# --- status ----------------------------------------------------------------------------------


def test_status_follows_install_and_uninstall(project: Path) -> None:
    before = status(project)
    assert not before.installed
    assert [s.scope for s in before.scopes] == list(SCOPES)

    install("project", "command", project=project)
    install("user", "http", project=project, no_mcp=True)
    report = status(project)
    user, proj, local = (report.scope(s) for s in SCOPES)  # type: ignore[arg-type]
    assert user.hooks == {e: ("command" if e == "SessionStart" else "http") for e in EVENTS}
    assert not user.mcp_registered
    assert proj.hooks == dict.fromkeys(EVENTS, "command") and proj.hooks_complete
    assert proj.mcp_registered and proj.mcp == mcp_entry("project", project)
    assert local.hooks == {} and not local.mcp_registered
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["scopes"][1]["settings_path"] == str(project.resolve() / ".claude" / "settings.json")
    assert data["scopes"][1]["mcp_type"] == "http"

    uninstall("project", project=project)
    uninstall("user", project=project)
    assert not status(project).installed


# --- files Clarity must not touch --------------------------------------------------------------


@pytest.mark.parametrize("which", ["settings", "state", "mcp.json"])
def test_invalid_json_is_refused_and_left_alone(which: str, project: Path, home: Path) -> None:
    scope = {"settings": "user", "state": "local", "mcp.json": "project"}[which]
    settings_file, mcp_file = files_of(scope, project)
    broken = settings_file if which == "settings" else mcp_file
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_bytes(b'{"permissions": {"allow": [}, // oops\n')

    with pytest.raises(SettingsError) as info:
        install(scope, project=project)  # type: ignore[arg-type]

    assert str(broken) in str(info.value) and "not valid JSON" in str(info.value)
    assert broken.read_bytes() == b'{"permissions": {"allow": [}, // oops\n'
    other = mcp_file if broken == settings_file else settings_file
    assert not other.exists()  # nothing written when any file is unreadable
    with pytest.raises(SettingsError):
        uninstall(scope, project=project)  # type: ignore[arg-type]
    assert status(project).scope(scope).error  # type: ignore[arg-type]


@pytest.mark.parametrize("content", [[1, 2], {"hooks": []}, {"hooks": {"Stop": {}}}])
def test_wrongly_shaped_settings_are_refused(content: Any, project: Path) -> None:
    path = files.settings_path("user", project)
    write(path, content)
    before = path.read_bytes()
    with pytest.raises(SettingsError, match=re.escape(str(path))):
        install("user", project=project, no_mcp=True)
    assert path.read_bytes() == before


# --- the CLI ---------------------------------------------------------------------------------


def test_cli_install_uninstall_status(project: Path, home: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(hooks_app, ["install", "--project", str(project)])
    assert first.exit_code == 0, first.output
    assert f"user settings {home / '.claude' / 'settings.json'}: added 7 hooks" in first.output
    assert f"user MCP {home / '.claude.json'}: added MCP server 'clarity'" in first.output

    second = runner.invoke(hooks_app, ["install", "--project", str(project)])
    assert second.exit_code == 0
    assert second.output.count("already installed, nothing changed") == 2

    as_json = runner.invoke(hooks_app, ["status", "--json", "--project", str(project)])
    assert as_json.exit_code == 0
    assert len(json.loads(as_json.output)["scopes"][0]["hooks"]) == 7

    table = runner.invoke(hooks_app, ["status", "--project", str(project)])
    assert table.exit_code == 0 and "7/7" in table.output

    assert "7/7: 7 command" in table.output  # command hooks by default: silent when the daemon is down
    http = runner.invoke(
        hooks_app, ["install", "--scope", "local", "--type", "http", "--no-mcp", "--project", str(project)]
    )
    assert http.exit_code == 0 and "local settings" in http.output and "MCP" not in http.output
    assert "Claude Code shows every http hook as failed" in http.output
    assert "different" in runner.invoke(hooks_app, ["status", "--project", str(project)]).output

    gone = runner.invoke(hooks_app, ["uninstall", "--project", str(project)])
    assert gone.exit_code == 0 and "removed 7 hooks" in gone.output


def test_cli_warns_about_conflicting_mcp_scopes(project: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(hooks_app, ["install", "--project", str(project)]).exit_code == 0
    local = runner.invoke(hooks_app, ["install", "--scope", "local", "--project", str(project)])
    assert local.exit_code == 0
    assert "MCP server 'clarity' is registered in user and local scope" in local.output


def test_cli_takes_the_port_from_clarity_config(project: Path) -> None:
    """Without --url or CLARITY_URL the hooks point where `clarity serve` will listen."""
    Path(os.environ["MEMORY_CONFIG_PATH"]).write_text(json.dumps({"server": {"port": 9123}}))
    result = CliRunner().invoke(hooks_app, ["install", "--project", str(project), "--no-mcp"])
    assert result.exit_code == 0, result.output
    hooks = read(files.settings_path("user", project))["hooks"]
    assert '"--url=http://127.0.0.1:9123"' in hooks["Stop"][0]["hooks"][0]["command"]
    assert '"--url=http://127.0.0.1:9123"' in hooks["SessionStart"][0]["hooks"][0]["command"]
    explicit = CliRunner().invoke(
        hooks_app, ["install", "--project", str(project), "--no-mcp", "--url", "http://127.0.0.1:7000"]
    )
    assert explicit.exit_code == 0 and "updated 7 hooks" in explicit.output


def test_cli_writes_the_url_of_the_daemon_in_the_lock_file(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stub_daemon: str
) -> None:
    """A daemon started on another port than the configured one (its URL is in the storage
    root's lock file, and it holds the lock and answers) is where the hooks must point, as every
    other client command finds it; --url still wins, and a lock left by a dead daemon does not."""
    import fcntl

    root = tmp_path / "root"
    root.mkdir()
    monkeypatch.setenv("CLARITY_STORAGE__ROOT", str(root))
    lock = root / "clarity.lock"
    lock.write_text(json.dumps({"pid": os.getpid(), "url": stub_daemon}))
    runner = CliRunner()

    def stop_url() -> str:
        hooks = read(files.settings_path("user", project))["hooks"]
        return str(hooks["Stop"][0]["hooks"][0]["url"])

    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the running daemon holds its lock
        found = runner.invoke(hooks_app, ["install", "--type", "http", "--no-mcp", "--project", str(project)])
        assert found.exit_code == 0, found.output
        assert stop_url() == f"{stub_daemon}/hooks/Stop"
        named = runner.invoke(
            hooks_app,
            [
                "install",
                "--type",
                "http",
                "--no-mcp",
                "--project",
                str(project),
                "--url",
                "http://127.0.0.1:7001",
            ],
        )
        assert named.exit_code == 0, named.output
        assert stop_url() == "http://127.0.0.1:7001/hooks/Stop"
    # lock released: a stale lock file names no daemon, the configured address is used
    stale = runner.invoke(hooks_app, ["install", "--type", "http", "--no-mcp", "--project", str(project)])
    assert stale.exit_code == 0, stale.output
    assert stop_url() == "http://127.0.0.1:8000/hooks/Stop"


def test_cli_reports_bad_settings_in_one_line(project: Path, home: Path) -> None:
    path = home / ".claude" / "settings.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    runner = CliRunner()
    for args in (["install"], ["uninstall"], ["status"]):
        result = runner.invoke(hooks_app, [*args, "--project", str(project)])
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit)  # no traceback
        assert str(path) in result.output
    assert path.read_text() == "{not json"


# --- the real Claude Code CLI ----------------------------------------------------------------


@pytest.fixture(scope="module")
def claude_bin() -> str:
    from tests.e2e.claude_cli import PINNED_VERSION, find_claude

    binary = find_claude()
    if not binary:
        pytest.skip(f"Claude Code CLI not found (npm install @anthropic-ai/claude-code@{PINNED_VERSION})")
    return binary


@pytest.fixture
def stub_daemon() -> Iterator[str]:
    """Answers /healthz so that `clarity mcp` (spawned by `claude mcp list`) finds a daemon and
    does not start a real one; everything else is a 404."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            ok = self.path == "/healthz"
            body = b'{"status": "ok"}' if ok else b"{}"
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def invalid_settings_report(doctor_stdout: str) -> str | None:
    """The "Invalid settings" section of `claude doctor`, or None when it has none."""
    start = doctor_stdout.find("Invalid settings")
    if start < 0:
        return None
    end = doctor_stdout.find("\n\n", start)
    return doctor_stdout[start : end if end > 0 else None]


def _claude_env(home: Path, base_url: str, **extra: str) -> dict[str, str]:
    from tests.e2e.claude_cli import claude_env

    port = base_url.rsplit(":", 1)[1]
    return claude_env(home, extra={"CLARITY_SERVER__PORT": port, **extra})


@pytest.mark.e2e
def test_doctor_flags_a_broken_hook_entry(
    claude_bin: str, project: Path, home: Path, stub_daemon: str
) -> None:
    """The negative case, so that the positive one below can fail."""
    from tests.e2e.claude_cli import run_claude

    install("project", project=project, base_url=stub_daemon, no_mcp=True)
    path = files.settings_path("project", project)
    data = read(path)
    data["hooks"]["Stop"][0]["hooks"][0]["timeout"] = "5"  # seconds as a string: invalid
    write(path, data)
    run = run_claude(["doctor"], _claude_env(home, stub_daemon), project, binary=claude_bin, timeout=120)
    report = invalid_settings_report(run.stdout)
    assert report is not None, run.describe()
    assert str(path) in report and "hooks.Stop.0.hooks.0" in report


@pytest.mark.e2e
@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("with_token", [False, True], ids=["no-token", "token"])
def test_claude_accepts_the_installed_settings(
    claude_bin: str,
    scope: str,
    with_token: bool,
    project: Path,
    home: Path,
    stub_daemon: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.e2e.claude_cli import run_claude

    extra = {"CLARITY_TOKEN": TOKEN} if with_token else {}
    for name, value in extra.items():
        monkeypatch.setenv(name, value)
    write(files.settings_path(scope, project), ORIGINAL_SETTINGS)  # type: ignore[arg-type]
    # both hook types in one run: http (plus the SessionStart command) here, command hooks in
    # another scope's file, so doctor sees every shape Clarity writes
    install(scope, "http", project=project, base_url=stub_daemon)  # type: ignore[arg-type]
    other = "local" if scope != "local" else "project"
    install(other, "command", project=project, base_url=stub_daemon, no_mcp=True)  # type: ignore[arg-type]
    env = _claude_env(home, stub_daemon, **extra)

    doctor = run_claude(["doctor"], env, project, binary=claude_bin, timeout=120)
    assert doctor.returncode == 0, doctor.describe()
    assert "Claude Code doctor" in doctor.stdout, doctor.describe()
    assert invalid_settings_report(doctor.stdout) is None, doctor.describe()

    listing = run_claude(["mcp", "list"], env, project, binary=claude_bin, timeout=120)
    assert listing.returncode == 0, listing.describe()
    [line] = [ln for ln in listing.stdout.splitlines() if ln.startswith("clarity:")]
    assert f"{stub_daemon}/mcp (HTTP)" in line, listing.describe()
    assert "MCP config diagnostics" not in listing.stdout, listing.describe()


@pytest.mark.e2e
@pytest.mark.parametrize("hook_type", ["http", "command"])
def test_installed_hooks_fire_in_a_real_run(
    claude_bin: str, hook_type: str, project: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole `claude -p` run with Clarity's settings: every event reaches /hooks/<Event> with
    the token, and the daemon's context reaches the model."""
    from tests.e2e.claude_cli import claude_env, run_claude_p
    from tests.e2e.fake_anthropic import FakeAnthropic, all_text
    from tests.e2e.hook_capture import HookSink

    monkeypatch.setenv("CLARITY_TOKEN", TOKEN)

    def ctx(event: str) -> dict[str, Any]:
        return {"hookSpecificOutput": {"hookEventName": event, "additionalContext": f"CTX-{event}"}}

    replies = {e: ctx(e) for e in ("SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse")}
    script = [{"tool": "Bash", "input": {"command": "echo hi", "description": "say hi"}}, {"text": "done"}]
    with HookSink(replies) as sink, FakeAnthropic(script) as fake:
        install("project", hook_type, project=project, base_url=sink.url, no_mcp=True)  # type: ignore[arg-type]
        env = claude_env(home, fake.url, extra={"CLARITY_TOKEN": TOKEN})
        run = run_claude_p("go", env=env, cwd=project, binary=claude_bin)
        assert run.ok and run.result == "done", run.describe() + fake.dump()
        text = all_text(fake.main_requests[-1])
        posts = list(sink.posts)
    fired = {p.event for p in posts}
    assert fired == {"SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "Stop", "SessionEnd"}
    for post in posts:
        assert post.path == f"/hooks/{post.event}"
        assert post.headers.get("authorization") == f"Bearer {TOKEN}"
    for event in ("SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse"):
        assert f"CTX-{event}" in text, event
