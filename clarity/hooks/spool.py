"""Hook events the plugin kept while no daemon answered, learned once one does.

The plugin's first session after install or a reboot starts the daemon and does not wait for
it (Claude Code would hold the first model request as long). Measured with the real CLI and the
scripted model (tests/e2e/test_plugin.py, five runs): that session's tool events came 0.7-2.3 s
after `claude` was spawned and the daemon first answered at 1.8-3.3 s, 0.5-1 s after the session
was over, so they found nobody listening.
plugin/scripts/hook.sh (the plugin) and clarity/hooks/command_client.py (hooks installed by
``clarity hooks install``) keep each learning event that finds nobody listening, or a daemon that
does not answer, in
``<root>/app-data/pending-hooks.jsonl`` (the payload as Claude Code sent it, one object a
line, the file private to its user, appends stop at 8 MB).

The daemon takes the file over (renames it first, so an event appended meanwhile starts a new
file and is never lost or read twice) and queues each event for the learner as if it had just
arrived, in order. It looks when it starts and before each hook call it handles (one ``stat``),
so kept events are queued before the live events of the same session that follow them.
Anything unreadable is skipped: a kept event is worth learning, never worth an error.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from clarity.hooks.events import HookEvent
from clarity.json_text import parse_json

log = logging.getLogger(__name__)

PENDING_FILE = "pending-hooks.jsonl"
# What hook.sh keeps: the events whose work is learning (their reply is {} whatever happens).
KEPT_EVENTS = frozenset({"PostToolUse", "PostToolUseFailure", "Stop", "SessionEnd"})
MAX_BYTES = 8 * 1_048_576  # hook.sh stops appending there; read no more than that
MAX_EVENTS = 1000  # the learner's queue holds this many by default


class PendingEvents:
    """``app-data/pending-hooks.jsonl``: taken over and handed to ``submit`` event by event."""

    def __init__(self, app_data: Path, submit: Callable[[HookEvent], None]) -> None:
        self.path = app_data / PENDING_FILE
        self.submit = submit
        self._lock = threading.Lock()

    def take(self) -> int:
        """Queue every kept event, oldest first; the number queued. Costs one ``stat`` when
        there is nothing (the common case: this runs before every hook call)."""
        if not self.path.exists():
            return 0
        with self._lock:
            claimed = self.path.with_name(f"{PENDING_FILE}.{os.getpid()}.{time.monotonic_ns()}")
            try:
                os.replace(self.path, claimed)
            except FileNotFoundError:  # another call took it first
                return 0
            try:
                with claimed.open("rb") as handle:
                    lines = handle.read(MAX_BYTES).splitlines()
            except OSError as exc:
                log.warning("could not read hook events kept while no daemon answered: %s", exc)
                return 0
            finally:
                claimed.unlink(missing_ok=True)
        queued = 0
        for line in lines[:MAX_EVENTS]:
            event = _event(line)
            if event is not None:
                self.submit(event)
                queued += 1
        if queued:
            log.info("learning from %d hook events kept while no daemon answered", queued)
        return queued


def _event(line: bytes) -> HookEvent | None:
    """One kept line as an event, or None (not JSON, not an event, not one to learn from)."""
    try:
        event = HookEvent.model_validate(parse_json(line))
    except (ValueError, ValidationError):
        return None
    return event if event.hook_event_name in KEPT_EVENTS else None


__all__ = ["KEPT_EVENTS", "MAX_BYTES", "PENDING_FILE", "PendingEvents"]
