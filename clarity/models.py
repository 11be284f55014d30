"""The memory record: what the engine stores, what a caller may write into it, and every limit.

Every limit lives here, in one place, so the REST API, the MCP tools and the hooks reject the
same bad input with the same message (see ``config.describe_validation_error``). The requests
and results of ``MemoryService`` are in ``clarity.requests``; export pages and import batches in
``clarity.exchange``.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from clarity.config import describe_validation_error

MAX_CONTENT_CHARS = 20_000
MAX_QUERY_CHARS = 4_000
MAX_TAGS = 32
MAX_TAG_CHARS = 64
MAX_METADATA_BYTES = 8_192
MAX_METADATA_DEPTH = 6
MAX_RESULTS = 100
MAX_PAGE = 500
MAX_SESSION_ID_CHARS = 200
GLOBAL_SCOPE = "global"
SCOPE_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"

# -- limits of a stored record ------------------------------------------------------------------
# ``Memory`` is the schema of what the engine holds, checked on every write (store, import,
# restore, hooks) and again on every read. Counters are 31-bit (the engine turns an integer past
# 64 bits into a float that no read accepts) and saturate there. Text and lists may be longer
# than new input allows, because redaction markers lengthen text and earlier versions merged tags
# past MAX_TAGS; these limits bound what one read can cost, not what a caller may send.
MAX_COUNT = 2**31 - 1
MAX_STORED_CONTENT_CHARS = 5 * MAX_CONTENT_CHARS
MAX_STORED_TAGS = 4 * MAX_TAGS
MAX_STORED_TAG_CHARS = 4 * MAX_TAG_CHARS
MAX_STORED_METADATA_BYTES = 4 * MAX_METADATA_BYTES
MAX_STORED_SESSION_ID_CHARS = 4 * MAX_SESSION_ID_CHARS
MAX_HASH_CHARS = 128
MAX_VECTOR_DIMENSION = 8192  # embedding.dimension's upper limit
# Timestamps are epoch seconds in float indexes that sort, filter and weigh recency: a date
# outside these years is damage, and one far in the future would rank first forever.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
TIMESTAMP_FIELDS = ("created_at", "updated_at", "last_accessed_at", "superseded_at", "confirmed_at")
# A payload key beside the record's fields: the anchored paths, indexed, for per-file recall.
ANCHOR_PATHS = "anchor_paths"
MAX_PREVIOUS_VERSIONS = 5  # an updated memory keeps its last texts, newest first
MAX_SUPERSEDES = 16  # the older memories one memory replaced, kept by id
# Anchors (``clarity.memory.anchors``): at most five per memory, each at most 1 KB of JSON; a
# caller names one as ``src/cart.ts`` or ``src/cart.ts:12-30`` (a path of at most 512 characters).
MAX_ANCHORS = 5
MAX_ANCHOR_BYTES = 1_024
MAX_ANCHOR_SPEC_CHARS = 512 + 24


class MemoryType(StrEnum):
    fact = "fact"
    preference = "preference"
    decision = "decision"
    command = "command"
    error = "error"
    fix = "fix"
    observation = "observation"
    summary = "summary"
    note = "note"


class Source(StrEnum):
    manual = "manual"
    hook = "hook"
    import_ = "import"


Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TAG_CHARS)]
ScopeId = Annotated[str, StringConstraints(pattern=SCOPE_PATTERN)]
# Which scopes a read covers: the caller's project and global, its project, global, every scope, or one.
ScopeChoice = Literal["default", "project", "global", "all"] | ScopeId


def utcnow() -> datetime:
    return datetime.now(UTC)


def content_hash(content: str) -> str:
    """Whitespace- and case-insensitive, so trivially reformatted text counts as the same memory."""
    normalized = " ".join(content.split()).casefold()
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()


def _check_content(value: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise ValueError("must not be empty")
    if len(stripped) > MAX_CONTENT_CHARS:
        raise ValueError(f"must be at most {MAX_CONTENT_CHARS} characters (got {len(stripped)})")
    if "\x00" in stripped:
        raise ValueError("must not contain NUL characters")
    _check_unicode(stripped)
    return stripped


def _check_unicode(value: str, where: str = "") -> None:
    """A lone surrogate (JSON ``"\\ud800"``) is not text: no engine can store it as UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        at = f" at {where}" if where else ""
        raise ValueError(
            f"must be valid Unicode text{at} (lone surrogate {value[exc.start]!r} at position {exc.start})"
        ) from None


INT64 = 2**63


def _check_json_values(value: dict[str, Any]) -> None:
    """Walk metadata without recursion: depth, finite numbers, 64-bit integers, valid text.

    Qdrant payloads are JSON with 64-bit integers and finite doubles; anything else would be
    stored changed (a huge integer becomes a float, NaN becomes null) or not at all.
    """
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, path, level = stack.pop()
        if isinstance(item, dict | list):
            if level > MAX_METADATA_DEPTH:
                raise ValueError(
                    f"must be nested at most {MAX_METADATA_DEPTH} levels deep (deeper at {path.lstrip('.')})"
                )
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                child_path = f"{path}.{key}" if isinstance(item, dict) else f"{path}[{key}]"
                if isinstance(key, str):
                    _check_unicode(key, f"key {child_path.lstrip('.')!r}")
                stack.append((child, child_path, level + 1))
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not -INT64 <= item < INT64:
                raise ValueError(f"integers must fit in 64 bits (got {item} at {path.lstrip('.')})")
        elif isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                raise ValueError(f"numbers must be finite (got {item} at {path.lstrip('.')})")
        elif isinstance(item, str):
            _check_unicode(item, path.lstrip("."))


def _precheck_metadata(value: Any) -> Any:
    """Before pydantic's own JSON validation, which would recurse into a deep value and report
    a location hundreds of keys long."""
    if isinstance(value, dict):
        _check_json_values(value)
    return value


def _check_metadata(value: dict[str, Any], limit: int = MAX_METADATA_BYTES) -> dict[str, Any]:
    _check_json_values(value)
    size = len(json.dumps(value, ensure_ascii=False).encode("utf-8"))
    if size > limit:
        raise ValueError(f"must be at most {limit} bytes of JSON (got {size})")
    return value


def _check_stored_metadata(value: dict[str, Any]) -> dict[str, Any]:
    return _check_metadata(value, MAX_STORED_METADATA_BYTES)


def _counter(low: int) -> BeforeValidator:
    """Name the range before pydantic's int parsing, whose message for 1e30 says nothing of it."""

    def check(value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            whole = isinstance(value, int) or (math.isfinite(value) and value.is_integer())
            if not whole or not low <= value <= MAX_COUNT:
                raise ValueError(f"must be a whole number from {low} to {MAX_COUNT}")
        return value

    return BeforeValidator(check)


def _in_years(value: datetime | None) -> datetime | None:
    if value is not None and not EARLIEST.timestamp() <= value.timestamp() < LATEST.timestamp():
        raise ValueError(f"must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}")
    return value


def saturating_add(count: int, extra: int = 1) -> int:
    """Counters stop at MAX_COUNT instead of growing into a value no read accepts."""
    return min(count + extra, MAX_COUNT)


Count = Annotated[int, _counter(0), Field(ge=0, le=MAX_COUNT)]
Occurrences = Annotated[int, _counter(1), Field(ge=1, le=MAX_COUNT)]
Timestamp = Annotated[datetime, AfterValidator(_in_years)]
StoredTag = Annotated[str, StringConstraints(min_length=1, max_length=MAX_STORED_TAG_CHARS)]
Importance = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Vector = Annotated[
    list[Annotated[float, Field(allow_inf_nan=False)]],
    Field(min_length=1, max_length=MAX_VECTOR_DIMENSION),
]


def _dedupe_tags(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))


# What a caller names an anchor by: ``src/cart.ts`` or ``src/cart.ts:12-30``, at most five.
AnchorSpec = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ANCHOR_SPEC_CHARS)]
AnchorSpecs = Annotated[list[AnchorSpec], Field(max_length=MAX_ANCHORS)]


class CallerInput(BaseModel):
    """What a caller sends: an unknown field is refused by name, never silently dropped."""

    model_config = ConfigDict(extra="forbid")


class MemoryCreate(CallerInput):
    """What a caller may say about a new memory; the service fills in the rest."""

    content: str
    memory_type: MemoryType = MemoryType.fact
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] = Field(default_factory=list)
    importance: Importance = 0.5
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    scope: Literal["project", "global"] | ScopeId = "project"
    source: Source = Source.manual
    session_id: str | None = Field(None, max_length=MAX_SESSION_ID_CHARS)
    anchors: AnchorSpecs = Field(
        default_factory=list,
        description="files this memory is about, relative to the project: src/cart.ts or src/cart.ts:12-30",
        examples=[["src/cart.ts:12-30"]],
    )
    shared: bool = Field(
        False, description="share with the team (a project memory; one redaction flagged stays personal)"
    )

    _content = field_validator("content")(_check_content)
    _metadata = field_validator("metadata")(_check_metadata)
    _metadata_shape = field_validator("metadata", mode="before")(_precheck_metadata)
    _tags = field_validator("tags")(_dedupe_tags)


class MemoryPatch(CallerInput):
    content: str | None = None
    memory_type: MemoryType | None = None
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] | None = None
    importance: Importance | None = None
    metadata: dict[str, JsonValue] | None = None
    shared: bool | None = Field(
        None,
        description="true: share a project memory with the team (one that held a secret stays "
        "personal); false: withdraw it from the team and keep it here",
    )

    @field_validator("content")
    @classmethod
    def _content(cls, value: str | None) -> str | None:
        return None if value is None else _check_content(value)

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else _check_metadata(value)

    _metadata_shape = field_validator("metadata", mode="before")(_precheck_metadata)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _dedupe_tags(value)

    @field_validator("content", "memory_type", "tags", "importance", "metadata", "shared", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # An explicit null would be written into the stored memory and break it on the next read.
        if value is None:
            raise ValueError("must not be null; leave the key out to keep the current value")
        return value

    @model_validator(mode="after")
    def _something_to_change(self) -> MemoryPatch:
        if not self.model_fields_set - {"metadata"} and self.metadata is None:
            raise ValueError("give at least one of content, memory_type, tags, importance, metadata, shared")
        return self


class UnreadableMemory(ValueError):
    """A stored record that fails the record schema: written by an older version, or damaged.

    Reads leave it out and report it, so one bad record never fails a whole list, search, export
    or hook; only asking for it by id fails, with this message."""

    def __init__(self, memory_id: str, problems: list[str]) -> None:
        self.memory_id = memory_id
        self.problems = problems
        super().__init__(
            f"id: memory {memory_id} is stored but cannot be read ({'; '.join(problems)}); it was "
            f"written by an older version or damaged: delete it (`clarity delete {memory_id}`) or "
            "restore a backup"
        )


class PreviousVersion(BaseModel):
    """A text a memory had before ``update_memory`` changed it, and when it was last set."""

    content: Annotated[str, StringConstraints(min_length=1, max_length=MAX_STORED_CONTENT_CHARS)]
    updated_at: Timestamp


class Memory(BaseModel):
    """A stored memory. Its limits are the stored-record schema (see MAX_COUNT and below),
    checked whenever a record is built, whichever door it came through, and on every read."""

    id: str
    content: Annotated[str, StringConstraints(min_length=1, max_length=MAX_STORED_CONTENT_CHARS)]
    memory_type: MemoryType
    scope: ScopeId
    tags: Annotated[list[StoredTag], Field(max_length=MAX_STORED_TAGS)] = Field(default_factory=list)
    importance: Importance = 0.5
    source: Source = Source.manual
    session_id: str | None = Field(None, max_length=MAX_STORED_SESSION_ID_CHARS)
    created_at: Timestamp
    updated_at: Timestamp
    last_accessed_at: Timestamp | None = None
    access_count: Count = 0
    occurrences: Occurrences = Field(1, description="how many times this memory was stored or learned again")
    metadata: dict[str, Any] = Field(default_factory=dict)
    content_hash: str = Field(max_length=MAX_HASH_CHARS)
    # Facts that supersede (``clarity.memory.supersede``): set by the store, never by a caller's
    # patch. A superseded memory is kept as history and left out of hooks, search and lists.
    superseded_by: str | None = Field(None, description="the id of the newer memory that replaced this one")
    superseded_at: Timestamp | None = None
    supersede_reason: str | None = Field(
        None, max_length=MAX_HASH_CHARS * 4, description="the value it had and the value it has now"
    )
    supersedes: Annotated[list[str], Field(max_length=MAX_SUPERSEDES)] = Field(
        default_factory=list, description="the ids of the older memories this one replaced"
    )
    previous_versions: Annotated[list[PreviousVersion], Field(max_length=MAX_PREVIOUS_VERSIONS)] = Field(
        default_factory=list, description="texts before update_memory changed them, newest first"
    )
    # Set by the store from a caller's specs or a hook's event (``clarity.memory.anchoring``),
    # never by a patch; the JSON of ``clarity.memory.anchors.Anchor``, checked there on use.
    anchors: Annotated[list[dict[str, Any]], Field(max_length=MAX_ANCHORS)] = Field(
        default_factory=list, description="places in the code this memory is about, re-checked at recall"
    )
    confirmed_at: Timestamp | None = Field(None, description="when a user last said it is still true")
    # The team tier (``clarity.team``, docs/team.md): a shared memory goes to the team server
    # and comes back to every teammate's replica with its author, the team server's user name.
    shared: bool = Field(False, description="shared with the team (project memories only)")
    author: str | None = Field(None, max_length=64, description="who shared it: a team server user name")

    _metadata = field_validator("metadata")(_check_stored_metadata)
    _metadata_shape = field_validator("metadata", mode="before")(_precheck_metadata)

    @field_validator("anchors")
    @classmethod
    def _anchor_shape(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, anchor in enumerate(value):
            if not isinstance(anchor.get("path"), str) or len(json.dumps(anchor)) > MAX_ANCHOR_BYTES:
                raise ValueError(f"anchors[{i}]: needs a path, and at most {MAX_ANCHOR_BYTES} bytes of JSON")
        return value

    @field_validator("id")
    @classmethod
    def _uuid(cls, value: str) -> str:
        return parse_memory_id(value)

    def to_payload(self) -> dict[str, Any]:
        """Timestamps become epoch seconds: float indexes filter, sort and rescore on them in every engine."""
        payload = self.model_dump(mode="json", exclude={"id"})
        for key in TIMESTAMP_FIELDS:
            moment = getattr(self, key)
            payload[key] = moment.timestamp() if moment else None
        payload[ANCHOR_PATHS] = anchor_paths(self.anchors)
        return payload

    @classmethod
    def from_payload(cls, point_id: str, payload: dict[str, Any]) -> Memory:
        """The record the engine holds, checked against the schema; UnreadableMemory if it fails."""
        data = {**payload, "id": str(point_id)}
        for key in TIMESTAMP_FIELDS:
            value = data.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                if not math.isfinite(value) or not EARLIEST.timestamp() <= value < LATEST.timestamp():
                    raise UnreadableMemory(
                        str(point_id),
                        [f"{key}={value!r}: must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}"],
                    )
                data[key] = datetime.fromtimestamp(value, UTC)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise UnreadableMemory(str(point_id), describe_validation_error(exc)) from None


def anchor_paths(anchors: list[dict[str, Any]]) -> list[str]:
    """The distinct paths of ``anchors``, for the payload's ``anchor_paths`` (set with the anchors)."""
    return sorted({str(anchor.get("path")) for anchor in anchors if isinstance(anchor.get("path"), str)})


def new_memory_id() -> str:
    return str(uuid.uuid4())


def parse_memory_id(value: str) -> str:
    """Ids are UUIDs; anything else is a caller mistake worth naming, not a lookup miss."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValueError(f"id: {value!r} is not a memory id (expected a UUID)") from None


class MemoryRecord(Memory):
    """A whole memory arriving from outside (an import or a restore): the stored-record schema,
    plus the same limits as a new memory where a caller writes, and unknown fields refused."""

    model_config = ConfigDict(extra="forbid")

    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] = Field(default_factory=list)
    session_id: str | None = Field(None, max_length=MAX_SESSION_ID_CHARS)

    _content = field_validator("content")(_check_content)
    _metadata = field_validator("metadata")(_check_metadata)
