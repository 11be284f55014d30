"""Project identity: which scope a working directory's memories belong to.

A project is a repository, not a folder:

* every worktree (and every sub-directory) of one repository shares an id;
* a repository with a remote is named by that remote's URL (``origin``, else the first remote
  by name), normalised so that the ssh and https spellings agree: a moved or re-cloned
  checkout keeps its memories;
* a repository without a remote is named by its common git directory, which all its worktrees
  share; two repositories whose folders have the same name never share an id;
* a directory outside git gets an id from its absolute (symlink-resolved) path.

Answers are cached for ten minutes per directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import subprocess
import threading
from pathlib import Path
from typing import Any

from cachetools import TTLCache, cached, keys

from clarity.models import GLOBAL_SCOPE

# Hooks ask for every tool call from many worker threads: keep answers ten minutes, and lock the
# cache (cachetools caches are not thread-safe on their own).
_cache: TTLCache[Any, str] = TTLCache(maxsize=4096, ttl=600)
_cache_lock = threading.Lock()

# Variables that would make git look at another repository than the one at ``cwd`` (a daemon
# started from inside a git hook inherits them).
_GIT_LOCATION_VARS = frozenset(
    {
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_COMMON_DIR",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_NAMESPACE",
        "GIT_PREFIX",
        "GIT_CEILING_DIRECTORIES",
        "GIT_DISCOVERY_ACROSS_FILESYSTEM",
        "GIT_CONFIG",
        "GIT_CONFIG_PARAMETERS",
        "GIT_CONFIG_COUNT",
    }
)


def _git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _GIT_LOCATION_VARS}
    env["GIT_OPTIONAL_LOCKS"] = "0"
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["LC_ALL"] = "C"
    return env


def _git(cwd: Path, *args: str) -> str | None:
    # safe.directory=*: a repository owned by another user (a bind mount in a container, a
    # checkout made by root) is only read here, never written, so git's ownership check would
    # only split one project into per-folder scopes.
    try:
        result = subprocess.run(
            ["git", "-c", "safe.directory=*", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
            env=_git_env(),
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


def _remote_url(path: Path) -> str | None:
    """The URL of ``origin``, else of the first remote by name, else None."""
    listing = _git(path, "config", "--get-regexp", r"^remote\..*\.url$")
    if not listing:
        return None
    urls: dict[str, str] = {}
    for line in listing.splitlines():
        key, _, value = line.partition(" ")
        name = key[len("remote.") : -len(".url")]
        if value.strip():
            urls.setdefault(name, value.strip())
    if not urls:
        return None
    return urls.get("origin") or urls[min(urls)]


def _identity(path: Path) -> tuple[str, str]:
    """(identity string, human name) for a resolved directory."""
    located = _git(path, "rev-parse", "--path-format=absolute", "--show-toplevel", "--git-common-dir")
    lines = located.splitlines() if located else []
    if len(lines) != 2:
        return f"path:{path}", path.name
    top, common = Path(lines[0]), Path(lines[1])
    remote = _remote_url(path)
    if remote:
        normalized = normalize_remote(remote)
        return f"origin:{normalized}", normalized.rsplit("/", 1)[-1]
    with contextlib.suppress(OSError):
        common = common.resolve()
    name = (common.parent if common.name == ".git" else common).name or top.name
    return f"gitdir:{common}", name


@cached(_cache, lock=_cache_lock)
def project_scope(cwd: str) -> str:
    """The scope id for a directory: ``<name>-<12 hex>``, stable across worktrees and moves."""
    try:  # "~nosuchuser/x", a 300-character component, a NUL: no directory, so no project
        path = Path(cwd).expanduser()
        with contextlib.suppress(OSError):
            path = path.resolve()
        if not path.is_dir():
            return GLOBAL_SCOPE
    except (OSError, RuntimeError, ValueError):
        return GLOBAL_SCOPE
    identity, name = _identity(path)
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:12]
    return f"{_slug(name)}-{digest}"


def known_project_scope(cwd: str) -> str | None:
    """The scope of ``cwd`` if it was worked out in the last ten minutes, else None: for the
    event loop, which must not wait on git (``project_scope`` may run it)."""
    with _cache_lock:
        return _cache.get(keys.hashkey(cwd))
