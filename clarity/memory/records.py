"""Records in and out of the engine: how a new memory is made, checked and read back.

Every write passes ``redacted``, so no field and no door (REST, MCP, hooks, imports) is missed;
every read passes ``RecordReader``, so one record that fails the schema never fails a whole read.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

from clarity.models import (
    GLOBAL_SCOPE,
    MAX_SESSION_ID_CHARS,
    MAX_TAG_CHARS,
    Memory,
    MemoryCreate,
    MemoryPatch,
    UnreadableMemory,
    content_hash,
    new_memory_id,
    parse_memory_id,
)
from clarity.redact import contains_secret, redact_record
from clarity.store.base import Hit, VectorStore

log = logging.getLogger(__name__)

_UNREADABLE_REMEMBERED = 10_000  # ids kept to log each unreadable record once


class MemoryNotFound(LookupError):
    def __init__(self, memory_id: str) -> None:
        super().__init__(f"id: no memory with id {memory_id}")
        self.memory_id = memory_id


class ScopeRequired(ValueError):
    """A project scope was asked for but the caller did not say which project it is in."""


_FACT_TOKEN = re.compile(r"[\w.\-/]*\d[\w.\-/]*")


def fact_tokens(text: str) -> set[str]:
    """Numbers, versions, codes and paths: two texts that differ in one of these state different facts."""
    return {token.strip(".-/").casefold() for token in _FACT_TOKEN.findall(text)} - {""}


def index_text(memory: Memory) -> str:
    """What the lexical index sees: the content plus tags, so a tag is as findable as a word."""
    return " ".join([memory.content, *memory.tags])


def resolve_scopes(scope: str, project: str | None) -> list[str] | None:
    """Turn a scope argument into the list of scopes to filter on (None means every scope)."""
    if scope == "all":
        return None
    if scope == "global":
        return [GLOBAL_SCOPE]
    if scope == "default":
        return [project, GLOBAL_SCOPE] if project else [GLOBAL_SCOPE]
    if scope == "project":
        return [_project(project)]
    return [scope]


def store_scope(scope: str, project: str | None) -> str:
    """The one scope a new memory is stored in."""
    return check_scope(_project(project) if scope == "project" else scope)


def _project(project: str | None) -> str:
    if not project:
        raise ScopeRequired(
            "scope: 'project' needs to know the caller's project (send X-Clarity-Project or use 'global')"
        )
    return project


def check_scope(scope: str) -> str:
    """A scope is an identifier, stored and shown in the clear: one that looks like a secret
    (a token pasted as a scope id, in a tool call or in X-Clarity-Project) is refused."""
    if contains_secret(scope):
        raise ValueError(
            "scope: looks like a secret; a scope is an identifier, stored and shown in the clear"
        )
    return scope


def new_memory(request: MemoryCreate, scope: str, content: str, now: datetime) -> Memory:
    """A memory as first stored, from a request ``redacted`` has already been through."""
    return Memory(
        id=new_memory_id(),
        content=content,
        memory_type=request.memory_type,
        scope=scope,
        tags=request.tags,
        importance=request.importance,
        source=request.source,
        session_id=request.session_id,
        created_at=now,
        updated_at=now,
        metadata=request.metadata,
        content_hash=content_hash(content),
    )


_Record = TypeVar("_Record", MemoryCreate, MemoryPatch, Memory)


def redacted(record: _Record) -> _Record:
    """``record`` with every string it stores redacted: the one place every write passes
    (store, store_many, put_memories, update), so no field and no door is missed, whatever
    fields a record gains. The full text is redacted before anything is cut to its input limit
    (a marker can be longer than the secret it replaces). A scope is an identifier, which a
    marker cannot replace: a whole record whose scope holds a secret is refused here (a new
    memory's scope is checked once resolved, in ``store_scope``)."""
    if isinstance(record, Memory):
        check_scope(record.scope)
    limits = {"tags": MAX_TAG_CHARS, "session_id": MAX_SESSION_ID_CHARS}
    clean = redact_record(record, skip=("id", "content_hash", "scope"), max_chars=limits)
    if isinstance(clean, Memory) and clean is not record:
        clean.content_hash = content_hash(clean.content)
    return clean


class RecordReader:
    """Memories from the engine's records. A stored record that fails the record schema (an older
    version's, or damaged) is left out, so one bad record never fails a whole read, and logged
    once per id (``len()`` counts them for ``stats().unreadable``)."""

    def __init__(self, store: VectorStore) -> None:
        self._store = store
        self._unreadable: set[str] = set()
        self._lock = threading.Lock()

    def read(self, hits: Sequence[Hit]) -> tuple[list[Memory], list[str]]:
        """The memories of ``hits``, and a line (id: problems) for each one left out."""
        memories: list[Memory] = []
        unreadable: list[str] = []
        for hit in hits:
            try:
                memories.append(Memory.from_payload(hit.id, hit.payload))
            except UnreadableMemory as exc:
                self.note(exc)
                unreadable.append(f"{exc.memory_id}: {'; '.join(exc.problems)}")
        return memories, unreadable

    def stored(self, memory_id: str) -> Memory:
        """One memory as the engine holds it: MemoryNotFound, or UnreadableMemory (noted) if it
        fails the schema."""
        memory_id = parse_memory_id(memory_id)
        hits = self._store.get([memory_id])
        if not hits:
            raise MemoryNotFound(memory_id)
        try:
            return Memory.from_payload(hits[0].id, hits[0].payload)
        except UnreadableMemory as exc:
            self.note(exc)
            raise

    def note(self, exc: UnreadableMemory) -> None:
        with self._lock:
            first = exc.memory_id not in self._unreadable
            if first and len(self._unreadable) < _UNREADABLE_REMEMBERED:
                self._unreadable.add(exc.memory_id)
        if first:
            log.warning("left out of reads: %s", exc)

    def __len__(self) -> int:
        return len(self._unreadable)
