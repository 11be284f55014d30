"""Run the real Claude Code CLI in an isolated, offline environment.

Typical use in a test::

    from tests.e2e.claude_cli import find_claude, claude_env, run_claude_p

    with FakeAnthropic(script) as server:
        env = claude_env(tmp_path / "home", base_url=server.url)
        result = run_claude_p("do it", env=env, cwd=project_dir)
        assert result.ok, result.stderr
        assert result.result == "done"

What keeps the CLI offline and non-interactive (checked with Claude Code 2.1.330):

* a throwaway ``HOME`` (Claude Code keeps ``~/.claude.json`` and ``~/.claude/`` there);
* ``ANTHROPIC_BASE_URL`` pointing at the fake server and ``ANTHROPIC_API_KEY=dummy``;
* ``IS_SANDBOX=1``: as root, bypassPermissions / --dangerously-skip-permissions is refused
  without it;
* ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`` (no telemetry, error reporting, update
  checks, feedback surveys), ``DISABLE_AUTOUPDATER=1``, ``DISABLE_TELEMETRY=1``,
  ``DISABLE_ERROR_REPORTING=1``;
* ``-p`` (print mode) skips the onboarding and folder-trust dialogs, so no pre-seeded
  ``.claude.json`` is needed; stdin is /dev/null so nothing can block on input.

The environment is built from scratch (not inherited) so that a developer's own
``ANTHROPIC_*`` / ``CLAUDE_*`` variables, or those of a Claude Code session the tests run
inside, never leak into the run.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
PINNED_VERSION = "2.1.330"
DEV_FALLBACK = Path("/tmp/cc/node_modules/.bin/claude")
# Where ANTHROPIC_BASE_URL points when a run needs no model (mcp list, doctor): a loopback
# port nothing listens on. Without any ANTHROPIC_BASE_URL, `claude doctor` / `claude mcp list`
# try api.anthropic.com and take 6-18 s here; with it they take well under a second.
NO_MODEL_URL = "http://127.0.0.1:9"

# Inherited from the parent environment when set: locale, CA bundles, tmp dir.
_PASSTHROUGH = (
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
)


def find_claude() -> str | None:
    """Path of the claude binary, or None.

    Order: ``$CLAUDE_BIN``; ``node_modules/.bin/claude`` at the repo root (or the platform
    package's binary beside it); the dev fallback ``/tmp/cc/node_modules/.bin/claude``;
    ``claude`` on PATH. Node is not involved at run time: since 2.1.x the npm package ships a
    native executable (node is only used by its postinstall script).
    """
    env_bin = os.environ.get("CLAUDE_BIN")
    if env_bin:
        path = Path(env_bin)
        return str(path) if path.exists() else shutil.which(env_bin)
    candidates = []
    for root in (REPO_ROOT, DEV_FALLBACK.parents[2]):
        modules = root / "node_modules"
        candidates.append(modules / ".bin" / "claude")
        # the native binary itself, in case npm skipped the postinstall that copies it over
        # the bin/claude.exe placeholder (npm >= 11 warns about unapproved install scripts)
        candidates += sorted((modules / "@anthropic-ai").glob("claude-code-linux-*/claude"))
    for candidate in candidates:
        if _is_native(candidate):
            return str(candidate)
    return shutil.which("claude")


def _is_native(path: Path) -> bool:
    """An executable that is the real (large, native) Claude Code binary, not the npm stub."""
    try:
        return path.is_file() and os.access(path, os.X_OK) and path.stat().st_size > 1_000_000
    except OSError:
        return False


def claude_version(binary: str | None = None) -> str | None:
    binary = binary or find_claude()
    if not binary:
        return None
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().split(" ")[0] or None


def claude_env(
    home: str | os.PathLike[str],
    base_url: str | None = None,
    *,
    api_key: str = "dummy",
    extra: Mapping[str, str] | None = None,
    user_settings: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """A clean environment for one Claude Code run with ``home`` as a throwaway HOME.

    ``base_url`` is the fake Messages API (``FakeAnthropic.url``); without it the CLI gets
    :data:`NO_MODEL_URL`, which is fine for ``claude mcp list`` / ``claude doctor`` and keeps
    them off the internet. ``user_settings`` is written to ``HOME/.claude/settings.json``
    (e.g. ``{"enableAllProjectMcpServers": True}``: project ``.mcp.json`` servers stay
    "Pending approval" unless this is set at user level; the same key in the project's own
    settings is ignored).
    """
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    if user_settings is not None:
        write_user_settings(home, user_settings)
    env: dict[str, str] = {k: os.environ[k] for k in _PASSTHROUGH if k in os.environ}
    env.setdefault("LANG", "C.UTF-8")
    env.update(
        {
            "HOME": str(home),
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "SHELL": shutil.which("bash") or "/bin/bash",
            "TERM": "dumb",
            "USER": os.environ.get("USER", "root"),
            "IS_SANDBOX": "1",
            "ANTHROPIC_API_KEY": api_key,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "DISABLE_BUG_COMMAND": "1",
            "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1",
            "NO_COLOR": "1",
        }
    )
    env["ANTHROPIC_BASE_URL"] = base_url or NO_MODEL_URL
    if extra:
        env.update(extra)
    return env


@dataclass
class ClaudeRun:
    """Outcome of one CLI invocation."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    duration: float
    json: Any = None  # parsed stdout when it is JSON (``--output-format json``)
    timed_out: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.is_error

    @property
    def is_error(self) -> bool:
        return bool(isinstance(self.json, dict) and self.json.get("is_error"))

    @property
    def result(self) -> str | None:
        """The final assistant text of a ``-p --output-format json`` run."""
        return self.json.get("result") if isinstance(self.json, dict) else None

    @property
    def session_id(self) -> str | None:
        return self.json.get("session_id") if isinstance(self.json, dict) else None

    def describe(self) -> str:
        """Everything useful for an assertion message."""
        return (
            f"$ {shlex.join(self.args)}\nrc={self.returncode} timed_out={self.timed_out} "
            f"duration={self.duration:.1f}s\n--- stdout ---\n{self.stdout[-4000:]}\n"
            f"--- stderr ---\n{self.stderr[-4000:]}"
        )


def run_claude(
    args: Sequence[str],
    env: Mapping[str, str],
    cwd: str | os.PathLike[str],
    *,
    timeout: float = 120,
    binary: str | None = None,
    input: str | None = None,
    tty: bool = False,
) -> ClaudeRun:
    """Run ``claude ARGS`` (e.g. ``["mcp", "list"]``) and capture its output.

    stdin is /dev/null unless ``input`` is given. With ``tty=True`` the command runs under
    ``script -qec`` (util-linux) so it sees a pseudo-terminal; its output then arrives on
    stdout with terminal escapes and CRLF line ends.
    """
    binary = binary or find_claude()
    if not binary:
        raise FileNotFoundError("claude binary not found (set CLAUDE_BIN or npm install it)")
    argv = [binary, *args]
    run_argv = argv
    if tty:
        script_bin = shutil.which("script")
        if not script_bin:
            raise FileNotFoundError("`script` (util-linux) is needed for tty=True")
        run_argv = [script_bin, "-qec", shlex.join(argv), "/dev/null"]
    start = time.monotonic()
    try:
        proc = subprocess.run(
            run_argv,
            env=dict(env),
            cwd=str(cwd),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            errors="replace",
        )
        rc, out, err, timed_out = proc.returncode, proc.stdout, proc.stderr, False
    except subprocess.TimeoutExpired as exc:
        rc = -1
        out = exc.stdout.decode("utf-8", "replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode("utf-8", "replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        timed_out = True
    duration = time.monotonic() - start
    parsed: Any = None
    text = out.strip()
    if text.startswith(("{", "[")):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
    return ClaudeRun(argv, rc, out, err, duration, parsed, timed_out)


def run_claude_p(
    prompt: str,
    *,
    env: Mapping[str, str],
    cwd: str | os.PathLike[str],
    timeout: float = 120,
    extra_args: Sequence[str] = (),
    binary: str | None = None,
) -> ClaudeRun:
    """``claude -p PROMPT --permission-mode bypassPermissions --output-format json`` in ``cwd``."""
    args = [
        "-p",
        prompt,
        "--permission-mode",
        "bypassPermissions",
        "--output-format",
        "json",
        *extra_args,
    ]
    return run_claude(args, env, cwd, timeout=timeout, binary=binary)


def write_user_settings(home: str | os.PathLike[str], settings: Mapping[str, Any]) -> Path:
    """Write ``HOME/.claude/settings.json`` of a throwaway HOME."""
    path = Path(home) / ".claude" / "settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2))
    return path


def write_project_settings(project: str | os.PathLike[str], settings: Mapping[str, Any]) -> Path:
    """Write ``PROJECT/.claude/settings.json`` (hooks, permissions, env ...)."""
    path = Path(project) / ".claude" / "settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2))
    return path


__all__ = [
    "DEV_FALLBACK",
    "NO_MODEL_URL",
    "PINNED_VERSION",
    "REPO_ROOT",
    "ClaudeRun",
    "claude_env",
    "claude_version",
    "find_claude",
    "run_claude",
    "run_claude_p",
    "write_project_settings",
    "write_user_settings",
]
