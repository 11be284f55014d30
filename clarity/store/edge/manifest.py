"""The embedded engine's manifest, checked against a schema before anything trusts it.

``manifest.json`` says which shard directories hold the store and what each one is. A start opens
exactly those, and the only directories it ever removes are ones the manifest records as the
engine's own leftovers (``retired``, ``reserved``) and the scratch copies of a build whose result
it reserved (``build-shard-N``, ``build-shard-N-sources`` for a reserved ``shard-N``), which are
never the only copy of anything. Everything else it does not name is moved aside into
``quarantine/``, never deleted, whatever its name.

Why a schema: read with ``.get()`` and defaults, ``{}`` or a manifest without ``segments`` read
as an empty store, and the clean-up that followed removed every shard. Now a manifest that does
not validate (a missing key, a wrong type, an unknown version, a shard listed twice) stops the
start with :class:`StoreDamaged`, naming the file, what is wrong and the fix; nothing is changed.

Version 2 adds ``retired``, ``reserved`` and ``dirty`` (see :class:`Manifest`); a version 1
manifest reads with those empty. Version 1 manifests written before ``merging`` existed (commit
578f3bd) lack it too: they read with none, which is what they meant (no merge in progress).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from clarity.json_text import parse_json

VERSION: Literal[2] = 2  # what this version writes
SUPPORTED_VERSIONS = (1, 2)
SHARD_PREFIX = "shard-"
MANIFEST = "manifest.json"  # in the engine's directory
ShardName = Annotated[str, StringConstraints(pattern=r"^shard-\d{5,}$")]
PointId = Annotated[
    str,
    StringConstraints(
        pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ),
]
RESTORE = "restore the store from a backup with `clarity restore BACKUP` (it keeps the current files aside)"


class StoreDamaged(RuntimeError):
    """The engine's files are not what its manifest says: the start stops and changes nothing."""


class Manifest(BaseModel):
    """The layout of the store (the package docstring, ``clarity/store/edge/__init__.py``, tells
    what each tier is)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    version: Literal[1, 2]
    next: int = Field(ge=1, description="number of the next shard name to hand out")
    active: ShardName
    sealing: ShardName | None
    segments: list[ShardName]
    merging: list[ShardName]
    tombstones: list[PointId]
    dimension: int = Field(ge=1)
    # Shards a swap retired: removed after a grace period, or by the next start if it came first.
    retired: list[ShardName] = Field(default_factory=list)
    # Names handed out for a shard not yet in the layout (a build's result, a new active shard):
    # a directory of that name, or a build's copies named after it, is half-made work.
    reserved: list[ShardName] = Field(default_factory=list)
    # Shards whose files may still hold text of deleted memories: each is rebuilt (purged).
    dirty: list[ShardName] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _older_version_1(cls, data: Any) -> Any:
        """Keys that version 1 gained over time are filled in only where an older writer left
        them out; version 2 always writes them, so there a missing one is damage."""
        if isinstance(data, dict) and data.get("version") == 1 and "merging" not in data:
            return {**data, "merging": []}
        return data

    @property
    def live(self) -> list[str]:
        return [self.active, *([self.sealing] if self.sealing else []), *self.segments]

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        live = self.live
        twice = sorted({name for name in live if live.count(name) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} listed more than once among active, sealing and segments")
        if not set(self.merging) <= set(self.segments):
            raise ValueError("merging names a shard that is not among the segments")
        if set(self.retired + self.reserved) & set(live):
            raise ValueError("a shard in use is also listed as retired or reserved")
        if not set(self.dirty) <= set(live):
            raise ValueError("dirty names a shard that is not in use")
        highest = max(int(name.removeprefix(SHARD_PREFIX)) for name in [*live, *self.retired, *self.reserved])
        if highest >= self.next:
            raise ValueError(f"next={self.next} is not above the highest shard number ({highest})")
        return self


def read_manifest(path: Path) -> Manifest | None:
    """The validated manifest, or None when there is none; :class:`StoreDamaged` otherwise."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreDamaged(f"{path} cannot be read ({exc.strerror}); nothing was changed") from None
    try:
        data = parse_json(raw)
    except ValueError as exc:  # a nesting bomb included: no manifest nests more than two levels
        raise damaged(path, f"it is not valid JSON ({exc})") from None
    version = data.get("version") if isinstance(data, dict) else None
    if type(version) is int and version not in SUPPORTED_VERSIONS:
        raise StoreDamaged(
            f"{path} has version {version}, which this Clarity does not read (it reads "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))}): a newer Clarity wrote it. Nothing was "
            f"changed; upgrade Clarity, or {RESTORE}"
        )
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        problems = _problems(exc)
        shown = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
        raise damaged(path, f"it does not describe a store: {shown}") from None


def _problems(error: ValidationError) -> list[str]:
    """One phrase per problem: the key and what is wrong with it."""
    found = []
    for item in error.errors(include_url=False):
        key = ".".join(str(part) for part in item["loc"])
        message = "required" if item["type"] == "missing" else item["msg"].removeprefix("Value error, ")
        found.append(f"{key}: {message}" if key else message)
    return found


def damaged(path: Path, problem: str) -> StoreDamaged:
    return StoreDamaged(
        f"{path} is damaged: {problem}. Nothing was changed and the shard directories are intact. "
        f"Put back a good copy of {path.name}, or {RESTORE}"
    )


def live_shards(directory: Path) -> set[str] | None:
    """The shard directories the manifest in ``directory`` lists, or None without a valid one.
    Disk accounting counts only these: retired shards linger for a grace period after a swap, and
    counted next to the segment merged from them they would look like twice the data."""
    try:
        manifest = read_manifest(directory / MANIFEST)
    except StoreDamaged:
        return None
    return set(manifest.live) if manifest is not None else None


def missing_shard(manifest_path: Path, shard: Path, role: str) -> StoreDamaged:
    """A shard the manifest names is gone: an error, never an empty shard in its place."""
    drop = (
        f"; to go on without the memories it held, remove {shard.name} from segments (and merging) "
        f"in {manifest_path}"
        if role == "segment"
        else ""
    )
    return StoreDamaged(
        f"{shard} is missing or holds no shard (no edge_config.json), but {manifest_path} lists it "
        f"as the {role} shard. Nothing was changed. Put the directory back, or {RESTORE}{drop}"
    )
