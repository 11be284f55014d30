"""Which memories each session has already been given: one memory reaches the model once per session.

Three hooks add memories to one conversation: the SessionStart brief, UserPromptSubmit context
and PreToolUse context. Without a shared record the same fix reached the model three times in one
turn (watched through Claude Code 2.1.330 with every request body logged). Here each session
(and each subagent, whose context is its own) keeps the ids it was given, each with a stamp of
the text it was given, so a memory comes again only once its text changed; a repeat that only
raised its occurrence count is not worth the tokens.

Hooks of one session run concurrently (parallel tool calls each fire PreToolUse), so choosing
what to give and recording it happen under one lock (``claim``): two hooks never both give the
same memory. The record is bounded (``MAX_SESSIONS`` sessions, least recently used dropped;
``MAX_IDS`` ids a session, oldest dropped); after SessionStart with source ``clear`` or
``compact`` the context was wiped, so the session starts afresh. A session that ends (SessionEnd)
is kept, first in line to be dropped: ``claude --resume`` brings the same session id back with
its whole transcript, earlier hook context included (seen through the real CLI: dropping the
record at SessionEnd gave the resumed session the same memory a second time).

A daemon restart (an upgrade, ``clarity restart``) keeps the record: ``close`` writes it to
``app-data/injected-memories.json`` and the next daemon reads it back (sessions idle for more than
``TTL`` are left out). Nothing is written on the request path. After a crash the record is lost
and a memory may reach a running session once more: a repeat, never a loss.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from clarity.atomic_file import write_atomically
from clarity.models import Memory

log = logging.getLogger(__name__)

FILE_NAME = "injected-memories.json"
MAX_SESSIONS = 1024
MAX_IDS = 512  # a session given more memories than this is given its oldest ones again, once
TTL = 24 * 3600.0  # a session idle this long is not kept across a restart

T = TypeVar("T")


def stamp(memory: Memory, note: str = "") -> str:
    """What the model was given of a memory: its kind and text (not its counts or times), and
    what its line said of its anchors ("may be out of date: ..."): a memory given while its code
    was as written is given again, flagged, once that code changes."""
    text = f"{memory.memory_type.value}\x00{memory.content}" + (f"\x00{note}" if note else "")
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def session_key(session_id: str, agent_id: str | None = None) -> str:
    """A subagent's context is its own: it is given memories apart from its session's."""
    return f"{session_id}\x00{agent_id}" if agent_id else session_id


class _Session:
    __slots__ = ("given", "seen")

    def __init__(self, given: OrderedDict[str, str] | None = None, seen: float | None = None) -> None:
        self.given: OrderedDict[str, str] = given if given is not None else OrderedDict()
        self.seen = seen if seen is not None else time.time()


class SessionBudget:
    """Thread-safe record of what each session was given."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._lock = threading.Lock()
        if path is not None:
            self._load(path)

    def claim(
        self,
        key: str,
        candidates: Sequence[T],
        memory_of: Callable[[T], Memory],
        render: Callable[[list[T]], tuple[str | None, list[T]]],
        note_of: Callable[[T], str] | None = None,
    ) -> tuple[str | None, list[T]]:
        """Render the candidates this session was not given yet (or given in another text, or
        with another ``note_of``) and record those the rendering kept. ``render`` (pure text
        work, microseconds) runs under the lock, so concurrent hooks of one session cannot give
        the same memory twice."""

        def stamped(item: T) -> str:
            return stamp(memory_of(item), note_of(item) if note_of is not None else "")

        with self._lock:
            session = self._session(key)
            fresh = [c for c in candidates if session.given.get(memory_of(c).id) != stamped(c)]
            text, kept = render(fresh) if fresh else (None, [])
            for item in kept:
                memory = memory_of(item)
                session.given.pop(memory.id, None)
                session.given[memory.id] = stamped(item)
            while len(session.given) > MAX_IDS:
                session.given.popitem(last=False)
            return text, kept

    def given(self, key: str, memories: Sequence[Memory]) -> None:
        """Record memories the session was shown another way (the note after "remember that")."""
        self.claim(key, memories, lambda m: m, lambda fresh: (None, fresh))

    def was_given(self, key: str, memory: Memory) -> bool:
        """Whether the session (``session_key``) was given this memory as it reads now."""
        with self._lock:
            session = self._sessions.get(key)
            return session is not None and session.given.get(memory.id) == stamp(memory)

    def reset(self, key: str) -> None:
        """The session's context was wiped (``/clear``, compaction): everything may come again."""
        with self._lock:
            self._sessions.pop(key, None)

    def end(self, session_id: str) -> None:
        """The session ended: its record (and its subagents') goes first when the bound is
        reached, but stays for a resume, which restores the transcript and its memories."""
        with self._lock:
            for key in [k for k in self._sessions if k.split("\x00", 1)[0] == session_id]:
                self._sessions.move_to_end(key, last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _session(self, key: str) -> _Session:
        session = self._sessions.pop(key, None) or _Session()
        session.seen = time.time()
        self._sessions[key] = session  # most recently used last
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session

    # -- across a restart ---------------------------------------------------------------------

    def save(self) -> None:
        """Write the record for the next daemon (at close; never fails the close)."""
        if self.path is None:
            return
        cutoff = time.time() - TTL
        with self._lock:
            data = {
                key: {"seen": s.seen, "given": list(s.given.items())}
                for key, s in self._sessions.items()
                if s.seen >= cutoff
            }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.path, json.dumps({"version": 1, "sessions": data}), mode=0o600)
        except OSError as exc:
            log.warning("the sessions' injected memories were not kept for the next start: %s", exc)

    def _load(self, path: Path) -> None:
        """Read what the last daemon kept, then remove the file (it describes that moment only).
        Anything unreadable is ignored: the cost is a memory given once more."""
        try:
            raw = json.loads(path.read_bytes())
            path.unlink()
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("ignoring %s: %s", path.name, exc)
            return
        sessions = raw.get("sessions") if isinstance(raw, dict) else None
        if not isinstance(sessions, dict):
            return
        cutoff = time.time() - TTL
        ordered = sorted(
            (
                (key, value)
                for key, value in sessions.items()
                if isinstance(value, dict) and isinstance(value.get("seen"), int | float)
            ),
            key=lambda item: item[1]["seen"],
        )
        for key, value in ordered[-MAX_SESSIONS:]:
            given = value.get("given")
            if value["seen"] < cutoff or not isinstance(given, list):
                continue
            pairs = [
                (p[0], p[1])
                for p in given[-MAX_IDS:]
                if isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)
            ]
            self._sessions[str(key)] = _Session(OrderedDict(pairs), float(value["seen"]))
