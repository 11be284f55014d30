"""Project identity: which scope a working directory's memories belong to.

A project is a repository, not a folder: every worktree of one repository shares an id, two
repositories whose folders share a name never do, and a moved clone keeps its id when its
origin is the same. Directories outside git get an id from their absolute path.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import subprocess
import threading
from pathlib import Path

from cachetools import TTLCache, cached

from clarity.models import GLOBAL_SCOPE

# Hooks ask for every tool call from many worker threads: keep answers ten minutes, and lock the
# cache (cachetools caches are not thread-safe on their own).
_cache: TTLCache[str, str] = TTLCache(maxsize=4096, ttl=600)
_cache_lock = threading.Lock()


def _git(cwd: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else None


def normalize_remote(url: str) -> str:
    """git@host:org/repo.git, ssh://git@host/org/repo and https://host/org/repo name one repo."""
    url = url.strip()
    url = re.sub(r"^[a-z+]+://", "", url)
    url = re.sub(r"^[^@/]+@", "", url)
    url = url.replace(":", "/", 1) if re.match(r"^[^/]+:[^/]", url) else url
    url = re.sub(r"\.git/?$", "", url).rstrip("/")
    return url.casefold()


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.casefold()).strip("-")
    return (slug or "project")[:40]


@cached(_cache, lock=_cache_lock)
def project_scope(cwd: str) -> str:
    """The scope id for a directory: ``<name>-<12 hex>``, stable across worktrees and moves."""
    path = Path(cwd).expanduser()
    with contextlib.suppress(OSError):
        path = path.resolve()
    if not path.is_dir():
        return GLOBAL_SCOPE
    top = _git(path, "rev-parse", "--show-toplevel")
    if top is None:
        identity, name = f"path:{path}", path.name
    else:
        origin = _git(path, "config", "--get", "remote.origin.url")
        common = _git(path, "rev-parse", "--path-format=absolute", "--git-common-dir")
        if origin:
            identity = f"origin:{normalize_remote(origin)}"
            name = normalize_remote(origin).rsplit("/", 1)[-1]
        else:
            common_dir = Path(common) if common else Path(top) / ".git"
            identity = f"gitdir:{common_dir}"
            name = (common_dir.parent if common_dir.name == ".git" else common_dir).name
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:12]
    return f"{_slug(name)}-{digest}"
