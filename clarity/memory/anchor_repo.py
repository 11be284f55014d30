"""The repository side of anchors: a path made safe (inside the working tree, a regular text file
under a size cap), the commit checked out (read from ``.git`` without running git), renames since
a commit (git, run off the hot path), and the project files a memory's text mentions.

``repo_root`` is the top of the working tree (where ``.git`` is); every path an anchor keeps is
relative to it, with ``/`` separators.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import subprocess
from pathlib import Path

MAX_FILE_BYTES = 2 * 1024 * 1024  # larger files are generated or data, not code a note is about
MAX_PATH_CHARS = 512
_SNIFF_BYTES = 8_000  # git's binary test: a NUL byte in the first 8,000 bytes
_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
# paths_in_text: how many words may look like paths, how many of those are looked up on disk
MAX_MENTIONS = 5
MAX_PROBES = 20
_PART = r"(?!\.\.?(?:/|$|:))[\w.@+-]+"  # a path component, not . or ..
_LOOKS_LIKE_PATH = re.compile(rf"^(?:\./)?(?:{_PART}/)*{_PART}(?::\d+(?:-\d+)?)?$")
_LINE_SUFFIX = re.compile(r":\d+(?:-\d+)?$")


class AnchorRefused(ValueError):
    """A path or a range that cannot be anchored; the message names the field and the limit."""


def inside(root: Path, path: str) -> tuple[str, Path]:
    """(repository-relative POSIX path, resolved file) for ``path``, relative to ``root`` or
    absolute inside it; symlinks are resolved first, so one pointing out of the tree is refused.
    ``root`` must be resolved already."""
    if len(path) > MAX_PATH_CHARS:
        raise AnchorRefused(f"anchor path: {len(path)} characters is over the limit of {MAX_PATH_CHARS}")
    try:
        resolved = (root / path).resolve(strict=True)
    except FileNotFoundError:
        raise AnchorRefused(f"anchor path: {path!r} does not exist in the project") from None
    except (OSError, RuntimeError, ValueError) as error:
        raise AnchorRefused(f"anchor path: {path!r} cannot be read ({error})") from None
    if not resolved.is_relative_to(root) or resolved == root:
        raise AnchorRefused(f"anchor path: {path!r} is outside the project {root.name!r}")
    return resolved.relative_to(root).as_posix(), resolved


def read_text(file: Path, info: os.stat_result) -> str:
    """The file's text, refused when it is not a regular file, over ``MAX_FILE_BYTES``, binary
    (a NUL byte early on) or not UTF-8."""
    if not stat.S_ISREG(info.st_mode):
        raise AnchorRefused(f"anchor path: {file.name!r} is not a regular file")
    if info.st_size > MAX_FILE_BYTES:
        raise AnchorRefused(
            f"anchor path: {file.name!r} is {info.st_size / 2**20:.1f} MB, over the limit of "
            f"{MAX_FILE_BYTES // 2**20} MB"
        )
    try:
        data = file.read_bytes()
    except OSError as error:
        raise AnchorRefused(f"anchor path: {file.name!r} cannot be read ({error.strerror})") from None
    if b"\0" in data[:_SNIFF_BYTES]:
        raise AnchorRefused(f"anchor path: {file.name!r} is a binary file")
    try:
        return data[:MAX_FILE_BYTES].decode("utf-8")
    except UnicodeDecodeError:
        raise AnchorRefused(f"anchor path: {file.name!r} is not UTF-8 text") from None


def git_dirs(root: Path) -> tuple[Path, Path] | None:
    """(this worktree's git dir, the common git dir) for ``root``; None outside git."""
    dot = root / ".git"
    if dot.is_dir():
        return dot, dot
    try:
        pointer = dot.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not pointer.startswith("gitdir:"):
        return None
    git_dir = (root / pointer.removeprefix("gitdir:").strip()).resolve()
    common = git_dir
    with contextlib.suppress(OSError, UnicodeDecodeError):
        common = (git_dir / (git_dir / "commondir").read_text(encoding="utf-8").strip()).resolve()
    return git_dir, common


def head_commit(root: Path) -> str | None:
    """The commit checked out in ``root``, read from ``.git`` (HEAD, the loose ref, packed-refs):
    tens of microseconds where ``git rev-parse HEAD`` costs milliseconds (scripts/bench/anchors.py);
    None outside git, on an unborn branch or on anything unexpected."""
    dirs = git_dirs(root)
    if dirs is None:
        return None
    git_dir, common = dirs
    try:
        head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not head.startswith("ref:"):
        return head if _SHA.match(head) else None
    ref = head.removeprefix("ref:").strip()
    for base in (git_dir, common):
        with contextlib.suppress(OSError, UnicodeDecodeError, ValueError):
            sha = (base / ref).read_text(encoding="utf-8").strip()
            if _SHA.match(sha):
                return sha
    with contextlib.suppress(OSError, UnicodeDecodeError):
        for line in (common / "packed-refs").read_text(encoding="utf-8").splitlines():
            sha, _, name = line.partition(" ")
            if name == ref and _SHA.match(sha):
                return sha
    return None


def rename_map(root: Path, since: str, timeout: float = 5.0) -> dict[str, str]:
    """Old path -> new path for the files renamed between commit ``since`` and the working tree
    (committed, staged or ``git mv``-ed; a rename git sees as at least 50% similar). One git run of
    several milliseconds: for a background refresh keyed by HEAD, never for a check's hot path.
    Empty outside git, for an unknown commit or when git fails."""
    if not _SHA.match(since):
        return {}
    try:
        result = subprocess.run(
            ["git", "-C", str(root), "diff", "-M", "--name-status", "--diff-filter=R", "-z", since, "--"],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    if result.returncode != 0:
        return {}
    fields = result.stdout.decode("utf-8", "replace").split("\0")
    renames: dict[str, str] = {}
    for i in range(0, len(fields) - 2, 3):  # R<score>, old, new
        if fields[i].startswith("R"):
            renames[fields[i + 1]] = fields[i + 2]
    return renames


def paths_in_text(repo_root: str | os.PathLike[str], text: str, limit: int = MAX_MENTIONS) -> list[str]:
    """The project files ``text`` mentions (``src/cart.ts``, ``./scripts/x.sh``,
    ``clarity/foo.py:12-30``, an absolute path inside the project), as anchor specs that
    ``parse_anchor_spec`` reads: at most ``limit``, in order of mention. Only words that look like
    a path with a ``/`` or an extension are looked up, at most ``MAX_PROBES`` of them, one
    ``stat`` each; no directory is walked. A line suffix is kept as written (the caller's capture
    refuses one past the end of the file)."""
    root = Path(repo_root).resolve()
    found: list[str] = []
    probes = 0
    for word in text.split():
        if len(found) >= limit or probes >= MAX_PROBES:
            break
        word = word.strip("`'\"()[]{}<>,;!?").rstrip(".:")
        if "://" in word or len(word) > MAX_PATH_CHARS:
            continue
        if word.startswith("/"):
            prefix = root.as_posix() + "/"
            if not word.startswith(prefix):
                continue
            word = word[len(prefix) :]
        if not _LOOKS_LIKE_PATH.match(word):
            continue
        bare = _LINE_SUFFIX.sub("", word).removeprefix("./")
        if "/" not in bare and "." not in bare.lstrip("."):
            continue
        probes += 1
        try:
            relative, resolved = inside(root, bare)
        except AnchorRefused:
            continue
        if resolved.is_file():
            spec = relative + word[len(_LINE_SUFFIX.sub("", word)) :]
            if spec not in found:
                found.append(spec)
    return found
