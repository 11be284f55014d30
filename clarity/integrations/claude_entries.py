"""The hook and MCP entries Clarity writes into Claude Code's settings, and how it knows its own.

Clarity's entries carry no marker (Claude Code would keep it but nothing guarantees that), so
they are recognised by what they do: an ``http`` hook posting to ``/hooks/<Event>`` on a host of
this machine or on the configured Clarity base URL, or a ``command`` hook running the command
client (``clarity/hooks/command_client.py``, or ``clarity/mcp/hook_analyzer.py`` where it was
installed before the move: that old path is still recognised, so ``clarity hooks install``
rewrites such entries in place and ``uninstall`` and ``status`` see them); the MCP server is the
one named ``clarity``, whatever it runs (the stdio shim that user-scope installs registered
before issue 25 included: ``is_stdio_shim`` tells ``status`` it is due for replacement).

The shapes match what Claude Code 2.1.330 itself writes (``claude mcp add``) and accepts
(``claude doctor`` reports no invalid settings); see tests/test_claude_settings.py.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from clarity.hooks.command_client import EVENTS  # the stdlib list: no pydantic models on the CLI path
from clarity.http.loopback import LOOPBACK_HOSTS
from clarity.integrations.claude_files import JsonObject, Scope, SettingsError, project_dir

HookType = Literal["http", "command"]
HOOK_TYPES: tuple[HookType, ...] = ("http", "command")

# Only tool events match on anything useful (the tool name); the others would match on a
# source or reason, and Clarity wants every firing anyway.
TOOL_EVENTS = frozenset({"PreToolUse", "PostToolUse", "PostToolUseFailure"})
# Seconds Claude Code waits for the daemon per event: tool hooks sit on every tool call, the
# prompt hook on every prompt; the session hooks can afford more.
TIMEOUTS = {
    "SessionStart": 5,
    "UserPromptSubmit": 3,
    "PreToolUse": 2,
    "PostToolUse": 2,
    "PostToolUseFailure": 2,
    "Stop": 5,
    "SessionEnd": 5,
}
# Claude Code 2.1.330 skips http hooks on SessionStart ("HTTP hooks are not supported for
# SessionStart"), so that one is always a command hook.
COMMAND_ONLY_EVENTS = frozenset({"SessionStart"})
# A command hook gets this much longer than its client's own deadline, so the client
# gives up quietly before Claude Code has to kill it.
COMMAND_GRACE_SECONDS = 1

MCP_NAME = "clarity"
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
COMMAND_CLIENT = Path(__file__).resolve().parent.parent / "hooks" / "command_client.py"
# What a command hook of Clarity's runs: the client where it is now, and where installs before
# it moved put it (clarity/mcp/hook_analyzer.py, now a stub running the client).
CLIENT_MARKS = ("clarity/hooks/command_client.py", "hook_analyzer.py")
TOKEN_ENV = "CLARITY_TOKEN"
DISABLED_ENV = "CLARITY_DISABLED"
# Hosts a hook URL may name to reach a daemon on this machine: loopback, and the unspecified
# address 0.0.0.0, which connects locally and which a --url copied from a 0.0.0.0 bind can carry.
LOCAL_HOOK_HOSTS = LOOPBACK_HOSTS | {"0.0.0.0"}


def resolve_base_url(base_url: str | None = None) -> str:
    """The daemon's base URL, by the same rules as the command client: explicit, ``CLARITY_URL``,
    else loopback on ``CLARITY_SERVER__PORT`` (8000)."""
    url = base_url or os.environ.get("CLARITY_URL")
    if not url:
        url = f"http://127.0.0.1:{os.environ.get('CLARITY_SERVER__PORT') or 8000}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"not an http(s) URL for the Clarity daemon: {url!r}")
    return url.rstrip("/")


def clarity_executable() -> str:
    """The ``clarity`` command of the installing environment (service files run it).

    Beside ``sys.executable`` first (a venv's bin/ without resolving its python symlink), so
    the shim runs in the environment that installed it even when that is not on PATH."""
    bin_dir = Path(sys.executable).absolute().parent
    for name in ("clarity", "clarity.exe"):
        candidate = bin_dir / name
        if candidate.exists():
            return str(candidate)
    return shutil.which("clarity") or str(bin_dir / "clarity")


# ---------------------------------------------------------------------------------------------
# The entries Clarity writes


def _token_configured() -> bool:
    return bool(os.environ.get(TOKEN_ENV))


def shell_quote(value: str) -> str:
    """Double-quote a path for the shell Claude Code runs command hooks with."""
    escaped = "".join("\\" + ch if ch in '"\\$`' else ch for ch in value)
    return f'"{escaped}"'


def client_command(event: str, base_url: str) -> str:
    """``"<python>" -S "<command_client.py>" --timeout=N [--url=BASE]``.

    ``-S`` skips ``site``: the client is stdlib-only, and a venv's .pth hooks (editable
    installs, setuptools' distutils shim) cost ~20 ms of interpreter start-up here. ``--timeout`` gives the
    daemon the same budget as an http hook for this event; ``--url`` is only baked in when the
    base differs from the default, so ``CLARITY_URL`` at run time still applies otherwise."""
    parts = [
        shell_quote(sys.executable),
        "-S",
        shell_quote(str(COMMAND_CLIENT)),
        f"--timeout={TIMEOUTS[event]}",
    ]
    if base_url != DEFAULT_BASE_URL:
        parts.append(shell_quote(f"--url={base_url}"))
    return " ".join(parts)


def hook_handler(event: str, hook_type: HookType, base_url: str) -> JsonObject:
    if hook_type == "command" or event in COMMAND_ONLY_EVENTS:
        return {
            "type": "command",
            "command": client_command(event, base_url),
            "timeout": TIMEOUTS[event] + COMMAND_GRACE_SECONDS,
        }
    handler: JsonObject = {"type": "http", "url": f"{base_url}/hooks/{event}", "timeout": TIMEOUTS[event]}
    # Claude Code fills $VAR in http hook headers only for variables listed in allowedEnvVars:
    # CLARITY_DISABLED=1 in a session's environment reaches the daemon this way, and the token
    # itself never lands in the settings file.
    headers = {"X-Clarity-Disabled": f"${DISABLED_ENV}"}
    allowed = [DISABLED_ENV]
    if _token_configured():
        headers["Authorization"] = f"Bearer ${TOKEN_ENV}"
        allowed.append(TOKEN_ENV)
    handler["headers"] = headers
    handler["allowedEnvVars"] = allowed
    return handler


def hook_group(event: str, hook_type: HookType, base_url: str) -> JsonObject:
    group: JsonObject = {}
    if event in TOOL_EVENTS:
        group["matcher"] = "*"
    group["hooks"] = [hook_handler(event, hook_type, base_url)]
    return group


def mcp_entry(scope: Scope, project: Path, base_url: str) -> JsonObject:
    """The daemon's streamable HTTP endpoint in every scope. Project and local: told the project
    by a header. User: no header, as one entry serves every project; the daemon asks Claude Code
    for its MCP roots instead (``clarity/mcp/roots.py``). Installs before issue 25 registered the
    stdio shim in user scope, which Claude Code waited for at every session start (+3 s); an
    install replaces it (the server is recognised by its name, ``clarity``)."""
    headers = {} if scope == "user" else {"X-Clarity-Project": str(project_dir(project))}
    if _token_configured():
        headers["Authorization"] = f"Bearer ${{{TOKEN_ENV}}}"  # expanded by Claude Code at run time
    entry: JsonObject = {"type": "http", "url": f"{base_url}/mcp"}
    if headers:
        entry["headers"] = headers
    return entry


# ---------------------------------------------------------------------------------------------
# Recognising Clarity's entries


def is_stdio_shim(entry: Any) -> bool:
    """An MCP entry that runs ``clarity mcp`` over stdio (``type`` may be left out: stdio is
    Claude Code's default), as user-scope installs wrote it before issue 25."""
    if not isinstance(entry, dict) or entry.get("type", "stdio") != "stdio":
        return False
    command, args = entry.get("command"), entry.get("args")
    return (
        isinstance(command, str)
        and Path(command).name in ("clarity", "clarity.exe")
        and isinstance(args, list)
        and args[:1] == ["mcp"]
    )


def clarity_hook_type(handler: Any, base_url: str | None = None) -> str | None:
    """``"http"`` or ``"command"`` when ``handler`` is one of Clarity's hooks, else None."""
    if not isinstance(handler, dict):
        return None
    if handler.get("type") == "command":
        command = handler.get("command")
        if isinstance(command, str) and any(mark in command for mark in CLIENT_MARKS):
            return "command"
        return None
    if handler.get("type") == "http":
        url = handler.get("url")
        return "http" if isinstance(url, str) and _is_clarity_hook_url(url, base_url) else None
    return None


def _is_clarity_hook_url(url: str, base_url: str | None) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    head, _, event = parts.path.rpartition("/")
    if event not in EVENTS or not head.endswith("/hooks"):
        return False
    if parts.hostname in LOCAL_HOOK_HOSTS:
        return True
    bases = {b for b in (base_url, os.environ.get("CLARITY_URL")) if b}
    return any(url.startswith(b.rstrip("/") + "/hooks/") for b in bases)
