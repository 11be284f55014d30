"""Clarity as a Claude Code plugin, installed from this repository's marketplace.

The real Claude Code CLI, a throwaway HOME, the model scripted on loopback. No daemon runs at
first: the plugin's SessionStart step starts one (`clarity service start`, found through
CLARITY_BIN). Session one runs a failing test script and its fix; the hooks carry both to the
daemon, which learns the fix. Session two, in the same project, lists the plugin's memory tools
to the model, receives the fix as hook context, and a memory tool called by the model answers
for this project (the MCP entry sends the project directory as a header). Then the plugin and
its marketplace are removed, and no settings file under HOME mentions Clarity any more.

The plugin's hooks and MCP entry name the daemon's default address, 127.0.0.1:8000. Other
processes on a test machine may hold that port, so the marketplace is copied to a temp dir
with the port rewritten to a free one; nothing else changes.

The manifests are also checked without the CLI: hooks.json must say what `clarity hooks
install` writes (so the two ways of installing never drift apart), and `claude plugin
validate --strict` must pass on both manifests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from clarity.hooks.events import EVENTS
from clarity.integrations.claude_entries import (
    COMMAND_GRACE_SECONDS,
    COMMAND_ONLY_EVENTS,
    DEFAULT_BASE_URL,
    TIMEOUTS,
    hook_group,
)

from ..daemon_util import free_port
from .claude_cli import REPO_ROOT, claude_env, run_claude, run_claude_p
from .fake_anthropic import FakeAnthropic, all_text, tool_results
from .test_hooks_e2e import FIX, first_run_script, make_project

pytestmark = pytest.mark.e2e

MARKETPLACE = "alunai-clarity"
PLUGIN_ID = f"clarity@{MARKETPLACE}"
DEFAULT_HOSTPORT = "127.0.0.1:8000"
PLUGIN_FILES = ("plugin/.claude-plugin/plugin.json", "plugin/hooks/hooks.json")
TOOL_PREFIX = "mcp__plugin_clarity_clarity__"


def load(rel: str) -> Any:
    return json.loads((REPO_ROOT / rel).read_text(encoding="utf-8"))


# -- the manifests (no CLI needed) ---------------------------------------------------------------


HOOKS_DESCRIPTION = "Clarity: every event goes to the local daemon (http); SessionStart also starts the daemon if none answers."


def expected_plugin_hooks() -> dict[str, Any]:
    """plugin/hooks/hooks.json as it must be: the http hooks `clarity hooks install` writes with a
    token configured (Claude Code fills the token header only when CLARITY_TOKEN is set in its
    environment), and SessionStart as the plugin's own command hook."""
    saved = os.environ.get("CLARITY_TOKEN")
    os.environ["CLARITY_TOKEN"] = "set"
    try:
        hooks: dict[str, Any] = {}
        for event in EVENTS:
            if event in COMMAND_ONLY_EVENTS:
                command = (
                    'python3 "${CLAUDE_PLUGIN_ROOT}/scripts/session_start.py" '
                    f"--url={DEFAULT_BASE_URL} --timeout={TIMEOUTS[event]}"
                )
                handler = {
                    "type": "command",
                    "command": command,
                    "timeout": TIMEOUTS[event] + COMMAND_GRACE_SECONDS,
                }
                hooks[event] = [{"hooks": [handler]}]
            else:
                hooks[event] = [hook_group(event, "http", DEFAULT_BASE_URL)]
    finally:
        if saved is None:
            del os.environ["CLARITY_TOKEN"]
        else:
            os.environ["CLARITY_TOKEN"] = saved
    return {"description": HOOKS_DESCRIPTION, "hooks": hooks}


def test_plugin_hooks_match_clarity_hooks_install() -> None:
    assert load("plugin/hooks/hooks.json") == expected_plugin_hooks(), (
        "plugin/hooks/hooks.json differs from what `clarity hooks install` writes; "
        "regenerate it with `.venv/bin/python -m tests.e2e.test_plugin`"
    )


def test_plugin_mcp_entry_sends_the_project() -> None:
    manifest = load("plugin/.claude-plugin/plugin.json")
    entry = manifest["mcpServers"]["clarity"]
    assert entry["type"] == "http" and entry["url"] == f"{DEFAULT_BASE_URL}/mcp"
    assert entry["headers"]["X-Clarity-Project"] == "${CLAUDE_PROJECT_DIR}"
    market = load(".claude-plugin/marketplace.json")
    assert market["name"] == MARKETPLACE
    assert [(p["name"], p["source"]) for p in market["plugins"]] == [("clarity", "./plugin")]
    assert manifest["name"] == "clarity"


@pytest.mark.parametrize("path", [".", "plugin"])
def test_claude_plugin_validate_strict(claude_bin: str, tmp_path: Path, path: str) -> None:
    run = run_claude(
        ["plugin", "validate", "--strict", str(REPO_ROOT / path)], claude_env(tmp_path / "home"), REPO_ROOT
    )
    assert run.returncode == 0, run.describe()
    assert (
        "Validation passed" in run.stdout and "warning" not in run.stdout.split("Plugin directory checks")[0]
    )


# -- the session-start script on its own -----------------------------------------------------------


def session_start(
    env: dict[str, str], url: str, payload: dict[str, Any], timeout: float = 5
) -> tuple[str, float]:
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "plugin/scripts/session_start.py"),
            f"--url={url}",
            f"--timeout={timeout}",
        ],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout + 10,
        check=False,
    )
    assert result.returncode == 0 and result.stderr == "", result
    return result.stdout, time.monotonic() - started


def test_session_start_without_clarity_says_so_and_returns_at_once(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out, took = session_start(env, url, {"hook_event_name": "SessionStart", "cwd": str(tmp_path)})
    assert json.loads(out)["systemMessage"].startswith("Clarity: no daemon answers")
    assert took < 3
    out, _ = session_start({**env, "CLARITY_DISABLED": "1"}, url, {"hook_event_name": "SessionStart"})
    assert out == ""


def test_session_start_stays_within_its_budget_when_the_daemon_cannot_start(tmp_path: Path) -> None:
    # A `clarity` that never brings a daemon up: the hook gives up at its budget, quietly enough.
    fake = tmp_path / "clarity"
    fake.write_text("#!/bin/sh\nsleep 30\n")
    fake.chmod(0o755)
    url = f"http://127.0.0.1:{free_port()}"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CLARITY_BIN": str(fake)}
    out, took = session_start(env, url, {"hook_event_name": "SessionStart"}, timeout=2)
    assert "starting the daemon" in json.loads(out)["systemMessage"]
    assert took < 2.5, took


# -- the whole plugin in the real CLI --------------------------------------------------------------


def copy_marketplace(dest: Path, port: int) -> Path:
    """This repository's marketplace and plugin, with the daemon's port rewritten."""
    shutil.copytree(REPO_ROOT / ".claude-plugin", dest / ".claude-plugin")
    shutil.copytree(REPO_ROOT / "plugin", dest / "plugin")
    for rel in PLUGIN_FILES:
        path = dest / rel
        text = path.read_text(encoding="utf-8")
        assert DEFAULT_HOSTPORT in text, rel
        path.write_text(text.replace(DEFAULT_HOSTPORT, f"127.0.0.1:{port}"), encoding="utf-8")
    return dest


def clarity_mentions(home: Path) -> list[str]:
    """Settings files under HOME that still mention Clarity, with the matching lines."""
    found = []
    candidates = [
        home / ".claude.json",
        *(home / ".claude").glob("*.json"),
        *(home / ".claude" / "plugins").glob("*.json"),
    ]
    for path in candidates:
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            if "clarity" in text.lower():
                found.append(f"{path}: {text[:2000]}")
    return found


def stop_daemon(url: str, root: Path) -> None:
    info = json.loads((root / "clarity.lock").read_text() or "{}") if (root / "clarity.lock").exists() else {}
    pid = info.get("pid")
    if isinstance(pid, int):
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def wait_for_fix(url: str, project: Path, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = httpx.get(
            f"{url}/api/memories",
            params={"scope": "project", "memory_types": "fix"},
            headers={"X-Clarity-Project": str(project)},
            timeout=30,
        ).json()["memories"]
        if found:
            return dict(found[0])
        time.sleep(0.3)
    raise AssertionError("the fix was not learned")


def test_plugin_install_session_and_uninstall(claude_bin: str, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    market = copy_marketplace(tmp_path / "marketplace", port)
    home = tmp_path / "home"
    store = tmp_path / "store"
    project = make_project(tmp_path / "project")
    clarity = Path(sys.executable).parent / "clarity"
    assert clarity.exists(), clarity
    extra = {
        "CLARITY_BIN": str(clarity),
        "CLARITY_STORAGE__ROOT": str(store),
        "MEMORY_CONFIG_PATH": str(store / "config.json"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    env = claude_env(home, extra=extra)

    try:
        added = run_claude(["plugin", "marketplace", "add", str(market)], env, tmp_path)
        assert added.returncode == 0, added.describe()
        installed = run_claude(["plugin", "install", PLUGIN_ID], env, tmp_path)
        assert installed.returncode == 0, installed.describe()
        listed = run_claude(["plugin", "list"], env, tmp_path)
        assert PLUGIN_ID in listed.stdout, listed.describe()

        # Session one, no daemon yet: the plugin's SessionStart starts one in the background and
        # gives up waiting at its budget (a cold start takes longer on a loaded machine); the
        # session itself goes on unchanged.
        assert not httpx_ok(url)
        with FakeAnthropic([{"text": "Hello."}]) as fake:
            started = time.time()
            cold = run_claude_p(
                "hello",
                env=claude_env(home, fake.url, extra=extra),
                cwd=project,
                binary=claude_bin,
                timeout=180,
            )
            assert cold.ok and cold.result == "Hello.", cold.describe() + "\n" + fake.dump()
            cold_delay = fake.requests[0].time - started
        assert wait_healthy(url), f"the plugin's SessionStart did not start a daemon:\n{daemon_log(store)}"

        # Session two, daemon up: the hooks teach it the failure and its fix.
        with FakeAnthropic(first_run_script()) as fake:
            started = time.time()
            first = run_claude_p(
                "run the tests and fix what fails",
                env=claude_env(home, fake.url, extra=extra),
                cwd=project,
                binary=claude_bin,
                timeout=180,
            )
            assert first.ok, first.describe() + "\n" + fake.dump()
            outputs = [r["text"] for r in tool_results(fake.main_requests[-1])]
            assert any("all 12 tests passed" in text for text in outputs), fake.dump()
            warm_delay = fake.requests[0].time - started
        fix = wait_for_fix(url, project)
        assert "cp settings.example.ini settings.ini" in fix["content"]
        # The first model request waits for SessionStart: this is what a user waits for.
        print(f"\nfirst model request after {cold_delay:.2f}s with no daemon, {warm_delay:.2f}s with one up")
        assert cold_delay < 15

        # Session three: memory tools listed, the fix arrives as context, a tool answers for this project.
        script = [
            {"tool": f"{TOOL_PREFIX}retrieve_memory", "input": {"query": "settings.ini run-tests.sh fix"}},
            {"text": "It needed settings.ini."},
        ]
        with FakeAnthropic(script) as fake:
            second = run_claude_p(
                "the test script fails again; what fixed it last time?",
                env=claude_env(home, fake.url, extra=extra),
                cwd=project,
                binary=claude_bin,
                timeout=180,
            )
            assert second.ok, second.describe() + "\n" + fake.dump()
            request = fake.main_requests[0]
            tools = [t.get("name", "") for t in request.get("tools", [])]
            seen = all_text(request) + "\n" + "\n".join(tools)
            assert f"{TOOL_PREFIX}retrieve_memory" in seen, tools
            assert f"{TOOL_PREFIX}store_memory" in seen, tools
            assert "hook additional context" in seen, seen[-3000:]
            assert FIX.split(" && ")[0] in seen
            answer = "\n".join(r["text"] for r in tool_results(fake.main_requests[-1]))
            assert fix["id"] in answer, answer[-2000:]

        # Uninstall: nothing of Clarity left in Claude Code's settings.
        removed = run_claude(["plugin", "uninstall", PLUGIN_ID], env, tmp_path)
        assert removed.returncode == 0, removed.describe()
        gone = run_claude(["plugin", "marketplace", "remove", MARKETPLACE], env, tmp_path)
        assert gone.returncode == 0, gone.describe()
        assert clarity_mentions(home) == []
        # Claude Code keeps the plugin's cached copy for a while, marked for garbage collection.
        cached = [
            p.parent
            for p in (home / ".claude" / "plugins" / "cache").glob(f"{MARKETPLACE}/*/*/.claude-plugin")
        ]
        assert all((version / ".orphaned_at").exists() for version in cached), cached
    finally:
        stop_daemon(url, store)


def wait_healthy(url: str, timeout: float = 90) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx_ok(url):
            return True
        time.sleep(0.2)
    return False


def daemon_log(store: Path) -> str:
    log = store / "app-data" / "daemon.log"
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no daemon.log)"


def httpx_ok(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    target = REPO_ROOT / "plugin" / "hooks" / "hooks.json"
    target.write_text(json.dumps(expected_plugin_hooks(), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {target}")
