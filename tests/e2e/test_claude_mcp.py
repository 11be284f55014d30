"""The real Claude Code CLI sees Clarity as a connected MCP server, over HTTP and over stdio; and,
registered over HTTP without the project header (the user-scope install), its MCP roots put each
memory in the project Claude Code runs in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from clarity.models import GLOBAL_SCOPE

from ..daemon_util import Daemon
from .claude_cli import claude_env, run_claude, run_claude_p
from .fake_anthropic import FakeAnthropic, tool_results

pytestmark = pytest.mark.e2e


def test_claude_mcp_list_reports_clarity_connected(
    claude_bin: str, shared_daemon: Daemon, claude_home: Path, project_dir: Path
) -> None:
    env = claude_env(claude_home)
    add_http = run_claude(
        [
            "mcp",
            "add",
            "--transport",
            "http",
            "clarity",
            f"{shared_daemon.url}/mcp",
            "--header",
            f"X-Clarity-Project: {project_dir}",
        ],
        env=env,
        cwd=project_dir,
    )
    assert add_http.returncode == 0, add_http.describe()
    shim_env = [
        f"{k}={v}" for k, v in shared_daemon.env().items() if k.startswith(("CLARITY_", "MEMORY_", "HF_"))
    ]
    add_stdio = run_claude(
        [
            "mcp",
            "add",
            "clarity-stdio",
            *[arg for pair in shim_env for arg in ("-e", pair)],
            "--",
            sys.executable,
            "-m",
            "clarity",
            "mcp",
        ],
        env={**env, "PYTHONPATH": os.pathsep.join(sys.path)},
        cwd=project_dir,
    )
    assert add_stdio.returncode == 0, add_stdio.describe()
    listed = run_claude(["mcp", "list"], env=env, cwd=project_dir, timeout=120)
    lines = {line.split(":", 1)[0]: line for line in listed.stdout.splitlines() if ":" in line}
    assert "Connected" in lines.get("clarity", ""), listed.describe()
    assert "Connected" in lines.get("clarity-stdio", ""), listed.describe()


def _reply(text: str, context: str) -> dict[str, Any]:
    try:
        return dict(json.loads(text))
    except ValueError:
        raise AssertionError(f"not a tool result: {text!r}\n{context}") from None


def test_claude_code_roots_put_memories_in_its_project(
    claude_bin: str, shared_daemon: Daemon, tmp_path: Path
) -> None:
    """`clarity hooks install` in user scope registers the daemon over HTTP with no header: one
    entry for every project. Claude Code runs in two projects; the scripted model stores and
    retrieves through the MCP tools; each memory lands in the scope of the directory Claude Code
    runs in (the daemon asks Claude Code for its roots), not in global."""
    home = tmp_path / "home"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CLARITY_", "CLAUDE_"))}
    installed = subprocess.run(
        [sys.executable, "-m", "clarity", "hooks", "install", "--scope", "user", "--url", shared_daemon.url],
        env={**clean, "HOME": str(home)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert installed.returncode == 0, installed.stderr
    entry = json.loads((home / ".claude.json").read_text())["mcpServers"]["clarity"]
    assert entry == {"type": "http", "url": f"{shared_daemon.url}/mcp"}

    scopes: set[str] = set()
    for name in ("alpha", "beta"):
        project = tmp_path / name
        project.mkdir()
        subprocess.run(["git", "init", "-q", str(project)], check=True)
        marker = f"{name}{uuid.uuid4().hex[:8]}"
        script = [
            {
                "tool": "mcp__clarity__store_memory",
                "input": {"content": f"The {marker} service ships with ./ship.sh", "detail": True},
            },
            {
                "tool": "mcp__clarity__retrieve_memory",
                "input": {"query": f"how does {marker} ship", "detail": True},
            },
            {"text": "done"},
        ]
        with FakeAnthropic(script) as fake:
            run = run_claude_p(
                "remember how we ship",
                env=claude_env(home, fake.url),
                cwd=project,
                binary=claude_bin,
                timeout=180,
            )
            context = run.describe() + fake.dump()
            assert run.ok and run.result == "done", context
            stored, found = (_reply(r["text"], context) for r in tool_results(fake.main_requests[-1]))
        expected = shared_daemon.api("GET", "/memories", str(project), params={"scope": "project"}).json()
        assert stored["id"] in [m["id"] for m in expected["memories"]], (stored, expected)
        assert stored["memory"]["scope"] != GLOBAL_SCOPE and "note" not in stored, stored
        assert found["scopes"] == [stored["memory"]["scope"], GLOBAL_SCOPE], found
        assert found["results"][0]["memory"]["id"] == stored["id"]
        scopes.add(stored["memory"]["scope"])
    assert len(scopes) == 2  # one user-scope entry, two projects
