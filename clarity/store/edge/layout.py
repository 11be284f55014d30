"""The embedded engine's layout: which shard directories hold the store, the role of each, and
the manifest that records them (``manifest.py`` checks it before anything trusts it).

A start reads the manifest, removes what the engine itself left half-done, moves every other
directory it does not name into ``quarantine/``, and opens exactly the shards it names. Every
change of roles after that is written to the manifest atomically and published to readers as one
:class:`View`, swapped as a whole. ``Layout.lock`` serialises everything that changes the store:
writes, seals, a build's swap, snapshots.

The sealing shard and the merging segments are *frozen*: immutable while copies of them are
combined and optimized in a child process (``builder.py``). Deletes that touch them meanwhile are
kept as tombstones (persisted in the manifest) and replayed on the result.

Files in the directory are left alone: the manifest and its temporary file are the engine's, and
anything else (a ``touches.jsonl`` of use counts from an older version, say) is ignored.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from qdrant_edge import EdgeConfig, EdgeShard

from clarity.atomic_file import write_atomically
from clarity.config import IndexParams
from clarity.store.base import StoreLocked
from clarity.store.edge.manifest import (
    MANIFEST,
    SHARD_PREFIX,
    VERSION,
    Manifest,
    StoreDamaged,
    missing_shard,
    read_manifest,
)
from clarity.store.edge.shard import Quantization, Shard, ensure_payload_indexes, shard_config
from clarity.store.space import copy_sparse

log = logging.getLogger(__name__)

QUARANTINE = "quarantine"  # where a start moves directories the manifest does not name


def build_copies(name: str) -> tuple[str, str]:
    """The scratch directories of the build whose result is the shard ``name`` (``builder.py``):
    the shard being built, and the copies of the shards it reads. Named after a reserved name, so
    a start knows them as the engine's own (``_settle_directory``)."""
    return f"build-{name}", f"build-{name}-sources"


@dataclass(frozen=True)
class View:
    """What readers see, swapped as a whole: a reader takes one view and never a half-changed layout."""

    shards: tuple[Shard, ...]  # active first, so the newest copy of a point wins
    frozen: frozenset[str]  # names of the shards a build is reading: the sealing one and merging ones
    tombstones: frozenset[str]

    def exclude(self, shard: Shard) -> frozenset[str] | None:
        return self.tombstones if self.tombstones and shard.name in self.frozen else None


class Layout:
    """The shards, their roles and the manifest; opened (and the directory settled) on creation."""

    active: Shard  # the shard every write goes to
    sealing: Shard | None  # a former active shard whose index is being built
    segments: list[Shard]  # indexed shards, and full active shards set aside during a build
    merging: list[Shard]  # segments being rebuilt together with the sealing shard (or on their own)
    view: View

    def __init__(
        self, directory: Path, dimension: int, index: IndexParams, quantization: Quantization
    ) -> None:
        self.directory = directory
        self.dimension = dimension
        self.index = index
        self.quantization: Quantization = quantization
        self.lock = threading.RLock()
        self.closed = False
        self.manifest_path = directory / MANIFEST
        manifest = self._read_manifest()
        self.next = manifest.next if manifest else 1
        self.tombstones: set[str] = set(manifest.tombstones) if manifest else set()
        # Shards whose files may still hold text of deleted memories, until a build rewrites them
        # (the purge, schedule.py); retired shards whose directories are still on disk; names
        # handed out for a shard not yet in the layout. All three are in the manifest, so a crash
        # loses none.
        self.dirty: set[str] = set(manifest.dirty) if manifest else set()
        self.retired: set[str] = set()
        self.reserved: set[str] = set()
        self.quarantined: Path | None = None
        self._settle_directory(manifest)
        if manifest is not None:  # what could not be removed stays listed, for the next start
            self.retired = {name for name in manifest.retired if (directory / name).exists()}
            self.reserved = {
                name
                for name in manifest.reserved
                if any((directory / entry).exists() for entry in (name, *build_copies(name)))
            }
        self._open_layout(manifest)
        self.save()
        self.publish()

    def _read_manifest(self) -> Manifest | None:
        """The validated manifest (manifest.py), after checking that every shard it names is
        there: a missing one stops the start (StoreDamaged) instead of coming back empty."""
        manifest = read_manifest(self.manifest_path)
        if manifest is None:
            if any(entry.name.startswith(SHARD_PREFIX) for entry in self.directory.iterdir()):
                raise StoreDamaged(
                    f"{self.manifest_path} is missing but shard directories exist; refusing to guess which "
                    "hold live data: restore it from a backup, or move the directory away to start empty"
                )
            return None
        if manifest.dimension != self.dimension:
            raise StoreDamaged(
                f"{self.manifest_path}: the store holds {manifest.dimension}-dimension vectors but "
                f"embedding.dimension is {self.dimension}. Nothing was changed; configure the model "
                "the store was made with, or export the memories and import them into a new store"
            )
        roles = [
            (manifest.active, "active"),
            *([(manifest.sealing, "sealing")] if manifest.sealing else []),
            *((name, "segment") for name in manifest.segments),
        ]
        for name, role in roles:
            if not (self.directory / name / "edge_config.json").is_file():
                raise missing_shard(self.manifest_path, self.directory / name, role)
        return manifest

    def _open_layout(self, manifest: Manifest | None) -> None:
        """Open the shards the manifest names (a new empty active shard for a new store). If one
        fails to open, the ones already open are closed again: they hold locks."""
        opened: list[Shard] = []

        def load(name: str) -> Shard:
            opened.append(self.open_shard(name))
            return opened[-1]

        try:
            if manifest is None:
                self.active = self.open_shard(self._new_name(), create=True)
                self.sealing, self.segments, self.merging = None, [], []
                return
            self.active = load(manifest.active)
            self.sealing = load(manifest.sealing) if manifest.sealing else None
            self.segments = [load(name) for name in manifest.segments]
            self.merging = [shard for shard in self.segments if shard.name in set(manifest.merging)]
        except BaseException:
            for shard in opened:
                shard.handle.close()
            raise

    def save(self) -> None:
        """Write the manifest from the in-memory layout, never read back while running. The lists
        that must name shards in use, or must not, are cut to what holds: a manifest that fails
        validation would stop the next start."""
        live = {
            self.active.name,
            *([self.sealing.name] if self.sealing else []),
            *(s.name for s in self.segments),
        }
        manifest = Manifest.model_construct(
            version=VERSION,
            next=self.next,
            active=self.active.name,
            sealing=self.sealing.name if self.sealing else None,
            segments=[shard.name for shard in self.segments],
            merging=[shard.name for shard in self.merging],
            tombstones=sorted(self.tombstones),
            dimension=self.dimension,
            retired=sorted(self.retired - live),
            reserved=sorted(self.reserved - live),
            dirty=sorted(self.dirty & live),
        )
        write_atomically(self.manifest_path, manifest.model_dump_json())

    def publish(self) -> None:
        """Called under the lock after every change of layout or tombstones."""
        shards = [self.active, *([self.sealing] if self.sealing else []), *self.segments]
        frozen = frozenset(shard.name for shard in self.frozen())
        self.view = View(tuple(shards), frozen, frozenset(self.tombstones))

    def frozen(self) -> list[Shard]:
        """What the running (or interrupted) build reads, oldest first: a point written twice is
        upserted last from its newest copy."""
        return [*self.merging, *([self.sealing] if self.sealing else [])]

    def mutable(self) -> list[Shard]:
        """Shards that take deletes and payload updates in place."""
        return [self.active, *(shard for shard in self.segments if shard not in self.merging)]

    def purge_pending(self) -> int:
        """Shard directories whose files may still hold the text of a deleted memory: dirty
        shards until their rebuild swaps in (waiting for deletes to pause, or being rebuilt),
        frozen shards holding tombstoned points until their build does, retired shards until
        their directories are gone. 0 means no file of the engine holds the text of a memory
        deleted so far."""
        frozen = len(self.frozen()) if self.tombstones else 0
        return len(self.dirty) + len(self.retired) + frozen

    def _settle_directory(self, manifest: Manifest | None) -> None:
        """Before any shard opens: remove what the engine itself left half-done, and move aside
        every other directory the manifest does not name.

        Removed, by exact name only: shards a swap retired (``retired``), names reserved for a
        shard that never joined the layout (``reserved``: a build's result or a new active shard
        a crash left before the manifest took it in), and the scratch copies of a build whose
        result's name is reserved (``build_copies``), which copy shards that stay listed until
        the swap. A name that merely looks like one of these was not recorded, so it is not the
        engine's to judge: like anything else it goes to ``quarantine/<time>/``, with a warning
        saying what to do. Files are left alone."""
        live = set(manifest.live) if manifest else set()
        own = set(manifest.retired + manifest.reserved) if manifest else set()
        own |= {copy for name in (manifest.reserved if manifest else []) for copy in build_copies(name)}
        strangers = []
        for entry in sorted(self.directory.iterdir()):
            if entry.name in live or entry.name == QUARANTINE or not entry.is_dir():
                continue
            if not entry.is_symlink() and entry.name in own:
                shutil.rmtree(entry, ignore_errors=True)
            else:
                strangers.append(entry)
        if strangers:
            self._quarantine(strangers)

    def _quarantine(self, entries: list[Path]) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.directory / QUARANTINE / stamp
        suffix = 0
        while target.exists():
            suffix += 1
            target = self.directory / QUARANTINE / f"{stamp}-{suffix}"
        target.mkdir(parents=True, mode=0o700)
        for entry in entries:
            os.replace(entry, target / entry.name)
        self.quarantined = target
        log.warning(
            "moved %s into %s: %s does not name them, so they are not part of the store (a shard left "
            "by an older version or another copy, or files put there by hand). Nothing was deleted. If "
            "one holds memories you need, stop Clarity and restore a backup; otherwise delete %s",
            ", ".join(entry.name for entry in entries),
            target,
            self.manifest_path,
            target,
        )

    def _new_name(self) -> str:
        name = f"{SHARD_PREFIX}{self.next:05d}"
        self.next += 1
        return name

    def reserve_name(self) -> str:
        """A new shard name, recorded as reserved before its directory exists: a crash before
        the shard joins the layout leaves a directory the next start knows to remove."""
        with self.lock:
            name = self._new_name()
            self.reserved.add(name)
            self.save()
            return name

    def fresh_shard(self) -> Shard:
        """A new empty shard under a reserved name (``reserve_name``); the caller adopts it."""
        return self.open_shard(self.reserve_name(), create=True)

    def adopt(self, shard: Shard) -> Shard:
        """A reserved shard joins the layout; the caller saves the manifest."""
        self.reserved.discard(shard.name)
        return shard

    def abandon(self, shard: Shard) -> None:
        """A fresh shard that could not join the layout. Its directory stays, under its reserved
        name: the manifest on disk may already name it (a write that failed only at its fsync),
        and if not, the next start removes it as a reserved leftover."""
        shard.handle.close()
        self.reserved.add(shard.name)

    def _config(self) -> EdgeConfig:
        index = self.index
        return shard_config(
            self.dimension,
            index.m,
            index.ef_construct,
            index.full_scan_threshold,
            quantization=self.quantization,
        )

    def open_shard(self, name: str, create: bool = False) -> Shard:
        """A shard that exists (``_read_manifest`` checked it), or a new one: never a new empty
        shard in place of one that went missing."""
        path = self.directory / name
        try:
            if create:
                handle = EdgeShard.create(str(path), self._config())
            else:
                # The current config, so a shard made by an older version adopts its settings
                # (max_search_threads). What it leaves unset, such as a sealed segment's
                # optimizer settings, is kept from the shard; its vectors must match.
                handle = EdgeShard.load(str(path), self._config())
            # Shards made by an older version may lack an index added since; create what is missing.
            ensure_payload_indexes(handle)
        except Exception as exc:
            if "WouldBlock" in str(exc) or "lock" in str(exc).lower():
                raise StoreLocked(
                    f"storage {path} is held by another process (another Clarity daemon?): {exc}"
                ) from exc
            raise
        return Shard(name, path, handle)

    def flush(self) -> None:
        with self.lock:
            for shard in self.view.shards:
                shard.handle.flush()

    def snapshot(self, destination: Path) -> None:
        """A consistent copy of the live shards and the manifest, for backups.

        Taken under the lock after a flush: no write lands half-way, and a build's swap (which
        also takes the lock) cannot retire a shard while it is being copied. Readers are not
        blocked; writers wait for the copy, about a second per 100k memories here.
        """
        destination.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self.lock:
            for shard in self.view.shards:
                shard.handle.flush()
                shutil.copytree(shard.path, destination / shard.name, copy_function=copy_sparse)
            shutil.copy2(self.manifest_path, destination / self.manifest_path.name)

    def close(self) -> None:
        """Flush and close every shard; the caller has set ``closed`` and stopped the builds."""
        with self.lock:
            for shard in self.view.shards:
                try:
                    shard.handle.flush()
                    shard.handle.close()
                except Exception as exc:  # closing is best effort; the WAL already holds the data
                    log.warning("closing shard %s: %s", shard.name, exc)
