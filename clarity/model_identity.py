"""A dense model's identity: its name and a hash of its weights, wherever it is installed.

Stored vectors are only worth reusing when the same weights made them. A model loaded by path is
named by that path, which differs between two virtualenvs holding the very same package, so an
export written in one install was re-embedded in full by another. The identity is
``<name>@sha256:<16 hex>`` instead, and two identities match when their hashes do; the name is
only for people.

Hashing the 87 MB of the bundled model takes 70-90 ms (measured here with the file in the page
cache), so it is done at most once per weights file: the digest is kept in
``<storage>/app-data/cache`` keyed by the file's real path, size, mtime and inode (a hit: 0.3 ms),
and in memory for the process. The daemon works it out after the model loads, off the request path. Exports written
before identities named the model by its path; ``digest_of`` still reads those when the path is
a model directory on this machine, and otherwise gives None (the vectors are then recomputed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path

from clarity.atomic_file import write_atomically

log = logging.getLogger(__name__)

MARK = "@sha256:"
DIGEST_CHARS = 16
CACHE_FILE = "model-weights.json"
_CHUNK = 4 * 1024 * 1024
_MAX_CACHED_FILES = 64

_memo: dict[tuple[str, int, int, int], str] = {}
_lock = threading.Lock()


def identity(name: str, digest: str | None) -> str:
    """``name@sha256:digest``; just the name when there are no local weights to hash."""
    return f"{name}{MARK}{digest}" if digest else name


def digest_in(model: str) -> str | None:
    """The weights hash an identity carries, or None for an older name or path."""
    name, mark, digest = model.rpartition(MARK)
    if mark and name and len(digest) == DIGEST_CHARS and all(c in "0123456789abcdef" for c in digest):
        return digest
    return None


def local_directory(model: str) -> Path | None:
    """Where a model's files are on this machine: the directory it names, or for a hub name its
    snapshot in the local Hugging Face cache (never downloaded); None if neither."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if path.is_absolute() or model.count("/") != 1:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model, "config.json")
    except Exception:  # no hub library, an odd name: no local copy we can name
        return None
    return Path(found).parent if isinstance(found, str) else None


def weight_files(directory: Path) -> list[Path]:
    """The files whose bytes make the vectors: safetensors weights (else PyTorch ``.bin``) of the
    model directory and of every module directory ``modules.json`` names (a Dense layer's)."""
    folders = [directory]
    try:
        modules = json.loads((directory / "modules.json").read_text(encoding="utf-8"))
        for module in modules if isinstance(modules, list) else []:
            sub = module.get("path") if isinstance(module, dict) else None
            if (
                isinstance(sub, str)
                and sub
                and (directory / sub).resolve().is_relative_to(directory.resolve())
            ):
                folders.append(directory / sub)
    except (OSError, ValueError):
        pass
    files: list[Path] = []
    for folder in folders:
        found = sorted(p for p in folder.glob("*.safetensors") if p.is_file())
        files += found or sorted(p for p in folder.glob("pytorch_model*.bin") if p.is_file())
    return files


def weights_digest(directory: Path, cache_dir: Path | None = None) -> str | None:
    """The hash of a model directory's weights (each file's path inside it and its SHA-256), or
    None when it holds none. Each file is read once per (path, size, mtime, inode)."""
    files = weight_files(directory)
    if not files:
        return None
    cache = _Cache(cache_dir / CACHE_FILE if cache_dir else None)
    total = hashlib.sha256()
    for file in files:
        total.update(file.relative_to(directory).as_posix().encode("utf-8") + b"\0")
        total.update(cache.file_digest(file).encode("ascii"))
    cache.save()
    return total.hexdigest()[:DIGEST_CHARS]


def digest_of(model: str | None, cache_dir: Path | None = None) -> str | None:
    """The weights hash behind what an export or a batch names: carried by an identity, or read
    from the directory an older export's path names when that is a model on this machine."""
    if not model:
        return None
    carried = digest_in(model)
    if carried:
        return carried
    directory = local_directory(model)
    if directory is None or not any((directory / f).is_file() for f in ("config.json", "modules.json")):
        return None
    try:
        return weights_digest(directory, cache_dir)
    except OSError as exc:
        log.warning("cannot hash the weights at %s: %s", directory, exc)
        return None


def display_name(model: str, bundled: str | None = None) -> str:
    """The people-facing part: the hub name (from the Hugging Face cache layout too), the bundled
    model's name, else the directory's name."""
    if bundled:
        return bundled
    path = Path(model).expanduser()
    if not path.is_dir():
        return model
    for part in reversed(path.resolve().parts):
        if part.startswith("models--"):
            return part.removeprefix("models--").replace("--", "/", 1)
    generic = {"model", "models", "snapshot"}
    return path.name if path.name.lower() not in generic else f"{path.parent.name}/{path.name}"


class _Cache:
    """File digests keyed by (real path, size, mtime_ns, inode): in memory for the process, and
    in a small JSON file when a cache directory is given. A damaged cache file is ignored."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, dict[str, int | str]] = {}
        self.changed = False
        if path is not None:
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
                self.entries = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                self.entries = {}

    def file_digest(self, file: Path) -> str:
        real = os.path.realpath(file)
        info = os.stat(real)
        key = (real, info.st_size, info.st_mtime_ns, info.st_ino)
        with _lock:
            known = _memo.get(key)
        entry = self.entries.get(real)
        if known is None and isinstance(entry, dict):
            stamp = (entry.get("size"), entry.get("mtime_ns"), entry.get("ino"))
            if stamp == key[1:] and isinstance(entry.get("sha256"), str):
                known = str(entry["sha256"])
        if known is None:
            digest = hashlib.sha256()
            with open(real, "rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
            known = digest.hexdigest()
        with _lock:
            _memo[key] = known
        if entry != {"size": key[1], "mtime_ns": key[2], "ino": key[3], "sha256": known}:
            self.entries[real] = {"size": key[1], "mtime_ns": key[2], "ino": key[3], "sha256": known}
            self.changed = True
        return known

    def save(self) -> None:
        if self.path is None or not self.changed:
            return
        kept = dict(list(self.entries.items())[-_MAX_CACHED_FILES:])
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_atomically(self.path, json.dumps(kept, indent=1), mode=0o600)
        except OSError as exc:  # a read-only storage root: the digest is still right, only not kept
            log.warning("cannot keep model weight hashes in %s: %s", self.path, exc)
