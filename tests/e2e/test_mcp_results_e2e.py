"""What the model reads of Clarity's memory tools through the real Claude Code CLI: the compact
text of a store and a retrieve (not the record's JSON, nor the structured content beside it), the JSON with
``detail``, and tool definitions whose descriptions carry no indentation and whose input schemas
carry the limits."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from ..daemon_util import Daemon
from .claude_cli import claude_env, run_claude_p
from .fake_anthropic import FakeAnthropic, tool_results

pytestmark = pytest.mark.e2e


def _tool(body: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((tool for tool in body.get("tools") or [] if tool.get("name") == name), None)


def test_the_model_reads_compact_memories_and_the_limits(
    claude_bin: str, shared_daemon: Daemon, claude_home: Path, project_dir: Path
) -> None:
    # What `claude mcp add --scope user --transport http --header ...` writes.
    server = {
        "type": "http",
        "url": f"{shared_daemon.url}/mcp",
        "headers": {"X-Clarity-Project": str(project_dir)},
    }
    (claude_home / ".claude.json").write_text(json.dumps({"mcpServers": {"clarity": server}}))
    marker = f"ship{uuid.uuid4().hex[:8]}"
    question = {"query": f"how does {marker} ship"}
    script = [
        # Claude Code defers MCP tools: their definitions reach the model once ToolSearch loads them.
        {"tool": "ToolSearch", "input": {"query": "select:mcp__clarity__retrieve_memory"}},
        {
            "tool": "mcp__clarity__store_memory",
            "input": {"content": f"The {marker} service ships with ./ship.sh"},
        },
        {"tool": "mcp__clarity__retrieve_memory", "input": question},
        {"tool": "mcp__clarity__retrieve_memory", "input": {**question, "detail": True}},
        {"text": "done"},
    ]
    with FakeAnthropic(script) as fake:
        run = run_claude_p(
            "how do we ship?", env=claude_env(claude_home, fake.url), cwd=project_dir, binary=claude_bin
        )
        context = run.describe() + fake.dump()
        assert run.ok and run.result == "done", context
        stored, compact, detailed = (r["text"] for r in tool_results(fake.main_requests[-1])[-3:])
        short = stored.removeprefix("Stored fact ").split(" ", 1)[0]
        assert stored == f"Stored fact {short} for this project: The {marker} service ships with ./ship.sh"
        lines = compact.splitlines()
        assert lines[0].endswith(" best match first:"), compact  # other tests' global memories may match
        assert (
            f"- [fact] The {marker} service ships with ./ship.sh (just now; stored explicitly; id {short})"
        ) in lines, compact
        memory_id = json.loads(detailed)["results"][0]["memory"]["id"]
        assert memory_id.startswith(short), detailed
        retrieve = next(
            (tool for body in fake.main_requests if (tool := _tool(body, "mcp__clarity__retrieve_memory"))),
            None,
        )
        assert retrieve is not None, context
        assert not any(line.startswith(" ") for line in retrieve["description"].splitlines()), retrieve
        properties = retrieve["input_schema"]["properties"]
        assert (properties["limit"]["minimum"], properties["limit"]["maximum"]) == (1, 100), retrieve
        assert properties["query"]["maxLength"] == 4000 and properties["detail"]["type"] == "boolean", (
            retrieve
        )
    shared_daemon.api("DELETE", f"/memories/{memory_id}")
