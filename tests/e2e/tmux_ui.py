"""Drive Claude Code's interactive UI in tmux, the model scripted on loopback.

`-p` mode prints failures on stderr; the interactive UI shows them in the conversation (a
"UserPromptSubmit hook failed" line under the prompt, "Stop hook failed" after the answer).
:class:`TmuxClaude` starts ``claude`` in a detached tmux session on its own socket, types into
it and reads the screen, so a test can check what a user would see::

    with TmuxClaude(binary, env, project, home) as ui:
        ui.wait_for("bypass permissions on")
        ui.send("say hello")
        ui.wait_for("hello from the scripted model")
        ui.exit()                       # /exit, then waits for the process to end
        assert "hook" not in ui.screen().lower()

What lets the UI start without dialogs (checked with 2.1.330): in ``~/.claude.json``
``hasCompletedOnboarding``, the project's ``hasTrustDialogAccepted``, the API key's last 20
characters in ``customApiKeyResponses.approved``, and ``bypassPermissionsModeAccepted`` (and
``skipDangerousModePermissionPrompt`` in the user settings, where a migration moves it).
After claude exits the pane stays open (the shell prints ``EXITED_MARK`` and sleeps), so what
Claude Code prints on its way out (a failed SessionEnd hook, for one) can still be read.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

EXITED_MARK = "CLAUDE-HAS-EXITED"


def tmux_available() -> bool:
    return shutil.which("tmux") is not None


def seed_state(home: Path, project: Path, api_key: str) -> None:
    """Merge what skips the first-run dialogs into ``HOME/.claude.json`` (kept if it exists:
    a plugin install writes it too)."""
    path = home / ".claude.json"
    state: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    state.update(
        hasCompletedOnboarding=True,
        theme="dark",
        bypassPermissionsModeAccepted=True,
        customApiKeyResponses={"approved": [api_key[-20:]], "rejected": []},
    )
    projects = state.setdefault("projects", {})
    for key in {str(project), str(project.resolve())}:
        projects.setdefault(key, {}).update(hasTrustDialogAccepted=True, hasCompletedProjectOnboarding=True)
    path.write_text(json.dumps(state, indent=2))
    # Claude Code moves the bypass consent into the user settings once (a migration recorded in
    # the state file, which a plugin install has already run): seed it there too.
    settings_path = home / ".claude" / "settings.json"
    settings: dict[str, Any] = json.loads(settings_path.read_text()) if settings_path.exists() else {}
    settings["skipDangerousModePermissionPrompt"] = True
    settings_path.parent.mkdir(parents=True, exist_ok=True)
    settings_path.write_text(json.dumps(settings, indent=2))


class TmuxClaude:
    """One interactive ``claude`` in a detached tmux session (its own tmux server socket)."""

    def __init__(
        self,
        binary: str,
        env: Mapping[str, str],
        project: Path,
        home: Path,
        *,
        args: tuple[str, ...] = ("--permission-mode", "bypassPermissions"),
        width: int = 140,
        height: int = 50,
    ) -> None:
        self.binary, self.project, self.home = binary, project, home
        self.env = {**env, "TERM": "xterm-256color"}
        self.env.pop("NO_COLOR", None)
        self.args, self.width, self.height = args, width, height
        self.socket = f"clarity-e2e-{os.getpid()}-{id(self):x}"

    def _tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=check, timeout=30
        )

    def __enter__(self) -> TmuxClaude:
        seed_state(self.home, self.project, self.env["ANTHROPIC_API_KEY"])
        assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        command = (
            f"env -i {assignments} {shlex.quote(self.binary)} {shlex.join(self.args)}; "
            f"echo {EXITED_MARK}; sleep 600"
        )
        self._tmux(
            "-f", "/dev/null", "new-session", "-d", "-s", "claude",
            "-x", str(self.width), "-y", str(self.height), "-c", str(self.project), command,
        )  # fmt: skip
        return self

    def __exit__(self, *exc: Any) -> None:
        self._tmux("kill-server", check=False)

    def screen(self) -> str:
        """Everything the pane shows, scrollback included."""
        return self._tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "claude").stdout

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} did not appear within {timeout} s; the screen:\n{screen}")
            time.sleep(0.2)

    def wait_until_idle(self, timeout: float = 30) -> str:
        """Wait until the turn is over (no "esc to interrupt" in the footer: no spinner, no hook
        still running) and return the screen."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if "esc to interrupt" not in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"the turn did not end within {timeout} s; the screen:\n{screen}")
            time.sleep(0.2)

    def send(self, text: str) -> None:
        """Type ``text`` and press Enter (separately: Enter typed with the text is pasted)."""
        self._tmux("send-keys", "-t", "claude", "-l", text)
        time.sleep(0.3)
        self._tmux("send-keys", "-t", "claude", "Enter")

    def exit(self, timeout: float = 30) -> str:
        """``/exit``, then wait for claude to end (its SessionEnd hooks included)."""
        self.send("/exit")
        return self.wait_for(EXITED_MARK, timeout)


__all__ = ["EXITED_MARK", "TmuxClaude", "seed_state", "tmux_available"]
