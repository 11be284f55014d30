"""Disk space for the embedded engine: a free-space floor under which writes are refused, and
file copies that take only the space their data needs.

Why a floor: Qdrant Edge memory-maps its files and creates them sparse (an empty shard is ~190 MB
of holes). Filling a hole through a mapping needs a free block *at that moment*; with none left the
kernel sends SIGBUS and the daemon dies with no chance to log. Refusing writes while free space is
under ``storage.min_free_bytes`` keeps the engine away from that edge: reads go on, writes get a
clear error (REST 507), and everything acknowledged stays on disk.

Why sparse copies: ``shutil.copy2`` writes every hole as zeros, so a backup or index build copied
the ~190 MB of holes of each shard as real blocks (a full disk, or the size cap evicting memories,
for a store holding a few MB).

Run as ``python -m clarity.store.space SHARD_DIR...`` it loads each shard and exits: the daemon's
start-up probe on a RAM-backed filesystem (``ram_backed``), where loading allocates.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sys
import threading
from pathlib import Path

log = logging.getLogger(__name__)

_BLOCK = 1 << 20
_ZEROS = bytes(_BLOCK)
RAM_FILESYSTEMS = frozenset({"tmpfs", "ramfs"})


class InsufficientStorage(RuntimeError):
    """A write refused because free space is under the floor: the answer is 507, not 500."""

    def __init__(self, path: Path, free: int, floor: int, action: str, needed: int = 0) -> None:
        self.path = path
        self.free_bytes = free
        self.floor = floor
        self.action = action
        self.needed = needed
        need = f" + {needed / 1e6:.1f} MB for this {action}" if needed else ""
        super().__init__(
            f"{action} refused: {path} has {free / 1e6:.1f} MB free, under the floor of "
            f"{floor / 1e6:.1f} MB{need} (storage.min_free_bytes); free disk space there (or lower "
            "storage.min_free_bytes) and retry. Reads are still served; nothing stored was lost"
        )

    def as_json(self) -> dict[str, object]:
        return {
            "error": str(self),
            "path": str(self.path),
            "free_bytes": self.free_bytes,
            "min_free_bytes": self.floor,
            "needed_bytes": self.needed,
            "fix": "free disk space on that filesystem, or lower storage.min_free_bytes",
        }


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on ``path``'s filesystem (what ``df`` shows)."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def allocated_bytes(path: Path) -> int:
    """Blocks really used under ``path`` (``du``), not apparent sizes: the engine's files are sparse."""
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
            except OSError:
                continue  # removed while walking
    return total


def apparent_bytes(path: Path) -> int:
    """The files' sizes with their holes (``du --apparent-size``)."""
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except OSError:
                continue
    return total


def build_room(shards: list[Path]) -> int:
    """Free space an index build from copies of ``shards`` takes at its peak. On a disk: the
    sparse copies and the shard built from them, about twice what the shards allocate (5,000
    memories: 21 MB allocated, 45 MB at the peak). On tmpfs every hole the build's child maps is
    allocated, so about the shards' apparent size (one 150-point shard: 210 MB at the peak)."""
    if shards and ram_backed(shards[0]):
        return sum(apparent_bytes(shard) for shard in shards)
    return 2 * sum(allocated_bytes(shard) for shard in shards)


class SpaceGuard:
    """The free-space floor of one filesystem. ``check`` costs one ``statvfs`` (~2 µs), so it runs
    before every write rather than on a timer that a fast writer could outrun."""

    def __init__(self, path: Path, floor: int) -> None:
        self.path = path
        self.floor = floor
        self._low = False
        self._lock = threading.Lock()

    def free_bytes(self) -> int:
        try:
            return free_bytes(self.path)
        except OSError:
            return sys.maxsize  # cannot tell (the directory is gone): let the write itself fail

    def has_room(self, needed: int = 0) -> bool:
        """Whether a write of ``needed`` bytes leaves the floor intact. Crossing the floor itself
        is logged once each way, not at every refused write; a refused large write (a build, a
        backup) is reported by its caller."""
        if not self.floor and not needed:
            return True
        room = self.free_bytes() - needed >= self.floor
        if not needed and room == self._low:
            with self._lock:
                if room == self._low:
                    self._low = not room
                    self._log_change(room)
        return room

    def check(self, action: str, needed: int = 0) -> None:
        if not self.has_room(needed):
            raise InsufficientStorage(self.path, self.free_bytes(), self.floor, action, needed)

    def _log_change(self, room: bool) -> None:
        free = self.free_bytes() / 1e6
        if room:
            log.info("storage %s has %.1f MB free again: writes are accepted", self.path, free)
        else:
            log.warning(
                "storage %s has %.1f MB free, under the floor of %.1f MB (storage.min_free_bytes): "
                "writes are refused until space is freed; reads are still served",
                self.path,
                free,
                self.floor / 1e6,
            )


def copy_sparse(source: str, destination: str) -> str:
    """``shutil.copy2`` that leaves holes and all-zero blocks unwritten, so a copy takes the space
    its data needs. A ``copy_function`` for ``shutil.copytree``."""
    with open(source, "rb") as src, open(destination, "wb") as dst:
        size = os.fstat(src.fileno()).st_size
        for start, end in _data_ranges(src.fileno(), size):
            offset = start
            while offset < end:
                block = os.pread(src.fileno(), min(_BLOCK, end - offset), offset)
                if not block:
                    break  # the file shrank while being copied
                if block != _ZEROS[: len(block)]:
                    os.pwrite(dst.fileno(), block, offset)
                offset += len(block)
        dst.truncate(size)
    shutil.copystat(source, destination)
    return destination


def _data_ranges(fd: int, size: int) -> list[tuple[int, int]]:
    """The file's data extents (SEEK_DATA/SEEK_HOLE); the whole file where those are unsupported."""
    if not hasattr(os, "SEEK_DATA"):
        return [(0, size)]
    ranges = []
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                break  # only a hole is left
            return [(0, size)]  # EINVAL: the filesystem cannot tell
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        ranges.append((start, end))
        offset = end
    return ranges


def filesystem_type(path: Path) -> str | None:
    """The type of the filesystem holding ``path`` (Linux ``/proc/self/mounts``; None elsewhere)."""
    try:
        mounts = Path("/proc/self/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    target = str(path.resolve())
    best, kind = "", None
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def ram_backed(path: Path) -> bool:
    """tmpfs and ramfs allocate a page when a hole is *read* through a mapping, so loading the
    engine (which maps its in-RAM files whole) allocates their full size there, unlike a disk."""
    return filesystem_type(path) in RAM_FILESYSTEMS


def _probe(paths: list[str]) -> None:
    from qdrant_edge import EdgeShard

    for path in paths:
        EdgeShard.load(path).close()  # no config: nothing is rewritten, only loaded


if __name__ == "__main__":
    _probe(sys.argv[1:])
