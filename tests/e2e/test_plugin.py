"""Clarity as a Claude Code plugin, installed from this repository's marketplace.

The real Claude Code CLI, a fresh throwaway HOME, the model scripted on loopback. No daemon runs
at first: the plugin's SessionStart step starts one (`clarity service start`, found through
CLARITY_BIN) and the session does not wait for it. That first cold session runs a failing test
script and its fix; the daemon learns the fix (events that came before it answered were kept by
the plugin, clarity/hooks/spool.py). The test prints when the session's events came and when the
daemon first answered. Session two, in the same project, lists the plugin's memory tools to the
model, receives the fix as hook context, and a memory tool called by the model answers for this
project (the MCP entry sends the project directory as a header). Then the plugin and its
marketplace are removed, and no settings file under HOME mentions Clarity any more.

The plugin's hooks and MCP entry name the daemon's default address, 127.0.0.1:8000. Other
processes on a test machine may hold that port, so the marketplace is copied to a temp dir
with the port rewritten to a free one; nothing else changes.

The manifests are also checked without the CLI: hooks.json must run the silent hook client for
every event with the budgets `clarity hooks install` uses, and `claude plugin validate --strict`
must pass on both manifests.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from clarity.hooks.events import EVENTS
from clarity.integrations.claude_entries import (
    COMMAND_GRACE_SECONDS,
    DEFAULT_BASE_URL,
    TIMEOUTS,
    TOOL_EVENTS,
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


HOOKS_DESCRIPTION = (
    "Clarity: every event goes to the local daemon through scripts/hook.sh, which never fails "
    "visibly; SessionStart also starts the daemon (without waiting) when nothing listens."
)


# Claude Code 2.1.330 gives a plugin's SessionEnd hooks 1.5 s in all (its default for
# CLAUDE_CODE_SESSIONEND_HOOKS_TIMEOUT_MS), then cancels them and prints "SessionEnd hook [...]
# failed: Hook cancelled" on stderr: the script gives up after 1 s. The daemon answers
# SessionEnd at once (it learns after replying), so 1 s is plenty.
BUDGETS = {**TIMEOUTS, "SessionEnd": 1}


def expected_plugin_hooks() -> dict[str, Any]:
    """plugin/hooks/hooks.json as it must be: every event a command hook running hook.sh, with
    the budgets `clarity hooks install` gives each event but SessionEnd's (the script's
    --timeout, and one second more for Claude Code, so the script gives up quietly before it
    would be killed).

    Not http hooks: Claude Code shows the user every http hook that cannot connect (in the
    terminal, and SessionEnd's on stderr in -p mode), and runs none for SessionStart."""
    hooks: dict[str, Any] = {}
    for event in EVENTS:
        handler = {
            "type": "command",
            "command": f'sh "${{CLAUDE_PLUGIN_ROOT}}/scripts/hook.sh" {event} '
            f"--url={DEFAULT_BASE_URL} --timeout={BUDGETS[event]}",
            "timeout": BUDGETS[event] + COMMAND_GRACE_SECONDS,
        }
        group: dict[str, Any] = {"matcher": "*"} if event in TOOL_EVENTS else {}
        group["hooks"] = [handler]
        hooks[event] = [group]
    return {"description": HOOKS_DESCRIPTION, "hooks": hooks}


def test_plugin_hooks_run_the_silent_client_for_every_event() -> None:
    assert load("plugin/hooks/hooks.json") == expected_plugin_hooks(), (
        "plugin/hooks/hooks.json differs from what it must be; "
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


def install_plugin(home: Path, port: int, work: Path) -> None:
    """The plugin installed into ``home`` as a user installs it, for a daemon on ``port``."""
    market = copy_marketplace(work / f"marketplace-{port}", port)
    env = claude_env(home)
    for args in (["plugin", "marketplace", "add", str(market)], ["plugin", "install", PLUGIN_ID]):
        done = run_claude(args, env, work)
        assert done.returncode == 0, done.describe()


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


def real_clarity(store: Path) -> dict[str, str]:
    """Environment additions for sessions whose plugin starts the real daemon (this venv's
    `clarity`) on the storage root ``store``."""
    clarity = Path(sys.executable).parent / "clarity"
    assert clarity.exists(), clarity
    return {
        "CLARITY_BIN": str(clarity),
        "CLARITY_STORAGE__ROOT": str(store),
        "MEMORY_CONFIG_PATH": str(store / "config.json"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }


def test_plugin_install_session_and_uninstall(claude_bin: str, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    market = copy_marketplace(tmp_path / "marketplace", port)
    home = tmp_path / "home"
    store = tmp_path / "store"
    project = make_project(tmp_path / "project")
    extra = real_clarity(store)
    env = claude_env(home, extra=extra)

    try:
        added = run_claude(["plugin", "marketplace", "add", str(market)], env, tmp_path)
        assert added.returncode == 0, added.describe()
        installed = run_claude(["plugin", "install", PLUGIN_ID], env, tmp_path)
        assert installed.returncode == 0, installed.describe()
        listed = run_claude(["plugin", "list"], env, tmp_path)
        assert PLUGIN_ID in listed.stdout, listed.describe()

        # Session one, no daemon yet: the plugin's SessionStart starts one in the background and
        # does not wait for it. The scripted model runs a failing test script, then its fix; the
        # daemon comes up while (or after) they run, so their events may find nobody listening:
        # the plugin keeps them and the daemon learns them once it answers.
        assert not httpx_ok(url)
        with FakeAnthropic(first_run_script()) as fake:
            watch = Watch(url)
            watch.start()
            first = run_claude_p(
                "run the tests and fix what fails",
                env=claude_env(home, fake.url, extra=extra),
                cwd=project,
                binary=claude_bin,
                timeout=180,
            )
            assert first.ok, first.describe() + "\n" + fake.dump()
            requests = [r.time - watch.started for r in fake.requests if r.kind == "main"]
            outputs = [r["text"] for r in tool_results(fake.main_requests[-1])]
            assert any("all 12 tests passed" in text for text in outputs), fake.dump()
        watch.join(90)
        watch.stop.set()
        print(
            f"\ncold session: model requests at {', '.join(f'{t:.2f}' for t in requests)} s after spawn "
            f"(the failure's hook fires before the second, the fix's before the third), session over "
            f"at {first.duration:.2f} s; the daemon first answered at {when(watch.answered)}, ready at "
            f"{when(watch.ready)}"
        )
        assert watch.ready is not None, (
            f"the plugin's SessionStart did not start a daemon:\n{daemon_log(store)}"
        )
        fix = wait_for_fix(url, project, timeout=30)
        assert "./run-tests.sh" in fix["content"] and "cp settings.example.ini settings.ini" in fix["content"]

        # Session two: memory tools listed, the fix arrives as context, a tool answers for this project.
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
            assert f"id {fix['id'][:8]})" in answer, answer[-2000:]

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


class Watch(threading.Thread):
    """Polls a daemon's /readyz from now on: when it first answered, when it was ready (seconds)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.started = url, time.time()
        self.answered: float | None = None
        self.ready: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and self.ready is None:
            try:
                status = httpx.get(f"{self.url}/readyz", timeout=0.5).status_code
                now = time.time() - self.started
                self.answered = now if self.answered is None else self.answered
                self.ready = now if status == 200 else None
            except httpx.HTTPError:
                pass
            time.sleep(0.02)


def when(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.2f} s"


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
