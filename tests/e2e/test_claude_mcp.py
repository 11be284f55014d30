"""The real Claude Code CLI sees Clarity as a connected MCP server, over HTTP and over stdio."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from ..daemon_util import Daemon
from .claude_cli import claude_env, run_claude

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
