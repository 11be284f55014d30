"""Capture the real hook payloads of the installed Claude Code into tests/fixtures/hook_payloads/.

Run it again after a Claude Code upgrade::

    .venv/bin/python -m tests.e2e.capture_hook_payloads            # rewrite the fixtures
    .venv/bin/python -m tests.e2e.capture_hook_payloads --out /tmp/x

One ``claude -p`` run in a throwaway project with command hooks on every event (each
appends its stdin to a log and returns an ``additionalContext``) and an ``http`` hook on
every event pointed at a loopback sink. The scripted model calls Bash with a failing
command, Bash with a succeeding one, Write, Edit, then answers with text. Temporary paths,
the session id, the prompt id and the port are replaced by stable placeholders.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from pathlib import Path
from typing import Any

from .claude_cli import (
    REPO_ROOT,
    claude_env,
    claude_version,
    find_claude,
    run_claude_p,
    write_project_settings,
)
from .fake_anthropic import FakeAnthropic
from .hook_capture import ALL_EVENTS, HookSink, merge_hooks, read_log, recorder_hooks

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "hook_payloads"

PLACE_PROJECT = "/home/user/project"
PLACE_HOME = "/home/user"
PLACE_SESSION = "00000000-0000-4000-8000-000000000000"
PLACE_PROMPT = "11111111-1111-4111-8111-111111111111"
PROMPT = "Please check the notes and update them"

TOOL_IDS = {
    "bash_fail": "toolu_01BashFailFixture000001",
    "bash_ok": "toolu_01BashOkFixture0000002",
    "write": "toolu_01WriteFixture00000003",
    "edit": "toolu_01EditFixture000000004",
}

CONTEXT_EVENTS = ("SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "PostToolUseFailure")


def _ctx(event: str, origin: str) -> dict[str, Any]:
    return {"hookSpecificOutput": {"hookEventName": event, "additionalContext": f"{origin}-CONTEXT-{event}"}}


def script_for(project: Path) -> list[dict[str, Any]]:
    notes = str(project / "notes.md")
    return [
        {
            "tool": "Bash",
            "id": TOOL_IDS["bash_fail"],
            "input": {"command": "ls /nonexistent-dir-xyz", "description": "List a missing directory"},
        },
        {
            "tool": "Bash",
            "id": TOOL_IDS["bash_ok"],
            "input": {"command": "echo ok", "description": "Print ok"},
        },
        {
            "tool": "Write",
            "id": TOOL_IDS["write"],
            "input": {"file_path": notes, "content": "# Notes\n\nfirst\n"},
        },
        {
            "tool": "Edit",
            "id": TOOL_IDS["edit"],
            "input": {"file_path": notes, "old_string": "first", "new_string": "second"},
        },
        {"text": "All done."},
    ]


def capture(workdir: Path, *, timeout: float = 180) -> dict[str, Any]:
    """Run the scenario in ``workdir``; return raw (un-normalised) captures."""
    project = workdir / "project"
    project.mkdir(parents=True, exist_ok=True)
    home = workdir / "home"
    cmd_hooks, log, _ = recorder_hooks(workdir / "hooks", replies={e: _ctx(e, "CMD") for e in CONTEXT_EVENTS})
    with (
        FakeAnthropic(script_for(project)) as fake,
        HookSink({e: _ctx(e, "HTTP") for e in CONTEXT_EVENTS}) as sink,
    ):
        write_project_settings(project, {"hooks": merge_hooks(cmd_hooks, sink.hooks(ALL_EVENTS, timeout=10))})
        env = claude_env(home, fake.url)
        run = run_claude_p(PROMPT, env=env, cwd=project, timeout=timeout)
        return {
            "run": run,
            "project": project,
            "home": home,
            "log": read_log(log),
            "posts": list(sink.posts),
            "sink_port": int(sink.url.rsplit(":", 1)[1]),
            "main_requests": fake.main_requests,
            "all_requests": [(r.method, r.path, r.kind) for r in fake.requests],
        }


def _slug(path: Path | str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "-", str(path))


def normaliser(raw: dict[str, Any]) -> Any:
    project, home = str(raw["project"]), str(raw["home"])
    session = raw["run"].session_id or ""
    prompt_ids = {e["payload"].get("prompt_id") for e in raw["log"] if isinstance(e["payload"], dict)} - {
        None
    }
    port = raw["sink_port"]
    pairs = [
        (project, PLACE_PROJECT),
        (_slug(project), _slug(PLACE_PROJECT)),
        (home, PLACE_HOME),
        (f"127.0.0.1:{port}", "127.0.0.1:PORT"),
    ]
    if session:
        pairs.append((session, PLACE_SESSION))
    pairs += [(str(pid), PLACE_PROMPT) for pid in prompt_ids]
    pairs.sort(key=lambda p: -len(p[0]))
    # per-session temp dir of Claude Code, e.g. /tmp/claude-0/<slug>/<session>/...
    extra = [
        (re.compile(r"/tmp/claude-\d+/"), "/tmp/claude-UID/"),
        (re.compile(r"/tmp/cc-socks/\d+\.sock"), "/tmp/cc-socks/PID.sock"),
        (re.compile(r"Today's date is \d{4}-\d{2}-\d{2}"), "Today's date is YYYY-MM-DD"),
    ]

    def fix(value: Any) -> Any:
        if isinstance(value, str):
            for old, new in pairs:
                value = value.replace(old, new)
            for pattern, new in extra:
                value = pattern.sub(new, value)
            return value
        if isinstance(value, list):
            return [fix(v) for v in value]
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        return value

    return fix


def _pick(
    log: list[dict[str, Any]], event: str, tool: str | None = None, tool_use_id: str | None = None
) -> dict[str, Any] | None:
    for entry in log:
        payload = entry["payload"]
        if entry["event"] != event or not isinstance(payload, dict):
            continue
        if tool and payload.get("tool_name") != tool:
            continue
        if tool_use_id and payload.get("tool_use_id") != tool_use_id:
            continue
        return entry
    return None


def _trim_request(body: dict[str, Any]) -> dict[str, Any]:
    """The messages of a model request, with Claude Code's long boilerplate shortened."""

    def short(text: str) -> str:
        if "# Environment" in text and len(text) > 600:
            head, _, rest = text.partition("# Environment")
            tail = rest[-400:]
            return (
                f"{head}# Environment\n[... {len(rest) - 400} chars of Claude Code boilerplate ...]\n{tail}"
            )
        if text.startswith("<system-reminder>\nAttribution"):
            return "<system-reminder>\nAttribution ... [Claude Code boilerplate]\n</system-reminder>\n"
        return text

    messages = []
    for message in body.get("messages", []):
        content = message["content"]
        if isinstance(content, str):
            content = short(content)
        else:
            content = [{**b, "text": short(b["text"])} if b.get("type") == "text" else b for b in content]
        messages.append({"role": message["role"], "content": content})
    return {
        "model": body.get("model"),
        "stream": body.get("stream"),
        "tools": [t.get("name") for t in body.get("tools", [])],
        "system": f"[{len(body.get('system') or [])} blocks of Claude Code's system prompt omitted]",
        "messages": messages,
    }


def _env_summary(env_by_event: dict[str, dict[str, str]]) -> dict[str, Any]:
    """CLAUDE* variables a command hook sees: those common to every event, then the differences."""
    if not env_by_event:
        return {}
    common_keys = set.intersection(*(set(env) for env in env_by_event.values()))
    first = next(iter(env_by_event.values()))
    common = {
        k: first[k]
        for k in sorted(common_keys)
        if all(env.get(k) == first[k] for env in env_by_event.values())
    }
    union = set().union(*(set(env) for env in env_by_event.values()))
    return {
        "note": "CLAUDE* environment variables of command hooks (the hook's cwd is the project directory)",
        "every_event": common,
        "only_some_events": {
            event: {k: env[k] for k in sorted(env) if k not in common}
            for event, env in env_by_event.items()
            if any(k not in common for k in env)
        },
        "absent": {
            event: sorted(union - set(env)) for event, env in env_by_event.items() if union - set(env)
        },
    }


def build_fixtures(raw: dict[str, Any]) -> dict[str, Any]:
    """File name -> JSON content."""
    fix = normaliser(raw)
    log = raw["log"]
    out: dict[str, Any] = {}
    wanted = {
        "SessionStart.json": ("SessionStart", None, None),
        "UserPromptSubmit.json": ("UserPromptSubmit", None, None),
        "PreToolUse.json": ("PreToolUse", "Bash", TOOL_IDS["bash_ok"]),
        "PostToolUse.json": ("PostToolUse", "Bash", TOOL_IDS["bash_ok"]),
        "PostToolUseFailure.json": ("PostToolUseFailure", "Bash", TOOL_IDS["bash_fail"]),
        "PreToolUse.Bash-failing.json": ("PreToolUse", "Bash", TOOL_IDS["bash_fail"]),
        "PreToolUse.Write.json": ("PreToolUse", "Write", None),
        "PostToolUse.Write.json": ("PostToolUse", "Write", None),
        "PreToolUse.Edit.json": ("PreToolUse", "Edit", None),
        "PostToolUse.Edit.json": ("PostToolUse", "Edit", None),
        "Stop.json": ("Stop", None, None),
        "SessionEnd.json": ("SessionEnd", None, None),
    }
    env_by_event: dict[str, Any] = {}
    for name, (event, tool, tuid) in wanted.items():
        entry = _pick(log, event, tool, tuid)
        if entry is None:
            continue
        out[name] = fix(entry["payload"])
        env = dict(entry["env"])
        if "CLAUDE_CODE_MESSAGING_TOKEN" in env:
            env["CLAUDE_CODE_MESSAGING_TOKEN"] = "<random per-session token>"
        if "CLAUDE_PID" in env:
            env["CLAUDE_PID"] = "<pid of claude>"
        env_by_event.setdefault(event, fix(dict(sorted(env.items()))))
    out["command_hook_env.json"] = _env_summary(env_by_event)

    posts = raw["posts"]
    if posts:
        first = posts[0]
        headers = dict(first.headers)
        if "content-length" in headers:
            headers["content-length"] = "<length of the body>"
        out["http_hook_request.json"] = fix(
            {
                "note": "what a type:http hook sends: one POST per event, body = the same JSON a command hook reads on stdin",
                "events_posted_in_order": [p.event for p in posts],
                "method": first.method,
                "path": first.path,
                "headers": headers,
                "body": first.body,
            }
        )
    mains = raw["main_requests"]
    if mains:
        out["model_request_with_context.json"] = fix(
            {
                "note": (
                    "messages of the last model request of the capture run: every hook returned "
                    "hookSpecificOutput.additionalContext '<CMD|HTTP>-CONTEXT-<Event>'"
                ),
                "request": _trim_request(mains[-1]),
            }
        )
    return out


def write_fixtures(files: dict[str, Any], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in sorted(files.items()):
        path = out_dir / name
        path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=FIXTURES)
    args = parser.parse_args(argv)
    if not find_claude():
        parser.error("claude binary not found (set CLAUDE_BIN)")
    with tempfile.TemporaryDirectory(prefix="clarity-hook-capture-") as tmp:
        raw = capture(Path(tmp))
        run = raw["run"]
        if not run.ok:
            print(run.describe())
            return 1
        files = build_fixtures(raw)
        for path in write_fixtures(files, args.out):
            print("wrote", path)
    print("claude", claude_version())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
