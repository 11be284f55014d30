"""Project identity: which scope a working directory's memories belong to.

A project is a repository, not a folder:

* every worktree (and every sub-directory) of one repository shares an id;
* a repository with a remote is named by that remote's URL (``origin``, else the first remote
  by name), normalised so that the ssh and https spellings agree: a moved or re-cloned
  checkout keeps its memories;
* a repository without a remote is named by its common git directory, which all its worktrees
  share; two repositories whose folders have the same name never share an id;
* a directory outside git gets an id from its absolute (symlink-resolved) path.

Answers are cached for ten minutes per directory. The same lookup gives the project's root (the
worktree's top level, or the directory itself outside git), which anchored memories are checked
against (``clarity.memory.anchors``); the last root seen for each scope is kept, so a caller that
names only a scope (the dashboard, a REST client sending a scope id) can be checked too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
import threading
from pathlib import Path
from typing import Any

from cachetools import LRUCache, TTLCache, cached, keys

from clarity.atomic_file import write_atomically
from clarity.models import GLOBAL_SCOPE

# Hooks ask for every tool call from many worker threads: keep answers ten minutes, and lock the
# cache (cachetools caches are not thread-safe on their own).
_cache: TTLCache[Any, tuple[str, Path | None]] = TTLCache(maxsize=4096, ttl=600)
_cache_lock = threading.Lock()
# scope -> the root last seen for it: a few hundred projects at most on one machine. Kept in a
# file (``remember_roots``) so that a restarted daemon can check anchors before the first hook.
_roots: LRUCache[str, Path] = LRUCache(maxsize=1024)
_roots_file: Path | None = None
MAX_ROOTS_FILE_BYTES = 1_000_000

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


def has_remote(path: Path) -> bool:
    """Whether the repository at ``path`` has a remote (the one git run ``_remote_url`` makes)."""
    return _remote_url(path) is not None


def _identity(path: Path) -> tuple[str, str, Path]:
    """(identity string, human name, root) for a resolved directory."""
    located = _git(path, "rev-parse", "--path-format=absolute", "--show-toplevel", "--git-common-dir")
    lines = located.splitlines() if located else []
    if len(lines) != 2:
        return f"path:{path}", path.name, path
    top, common = Path(lines[0]), Path(lines[1])
    remote = _remote_url(path)
    if remote:
        normalized = normalize_remote(remote)
        return f"origin:{normalized}", normalized.rsplit("/", 1)[-1], top
    with contextlib.suppress(OSError):
        common = common.resolve()
    name = (common.parent if common.name == ".git" else common).name or top.name
    return f"gitdir:{common}", name, top


@cached(_cache, lock=_cache_lock)
def _located(cwd: str) -> tuple[str, Path | None]:
    try:  # "~nosuchuser/x", a 300-character component, a NUL: no directory, so no project
        path = Path(cwd).expanduser()
        with contextlib.suppress(OSError):
            path = path.resolve()
        if not path.is_dir():
            return GLOBAL_SCOPE, None
    except (OSError, RuntimeError, ValueError):
        return GLOBAL_SCOPE, None
    identity, name, root = _identity(path)
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:12]
    scope = f"{_slug(name)}-{digest}"
    with _cache_lock:
        changed = _roots.get(scope) != root
        _roots[scope] = root
        target = _roots_file
        listing = {key: str(value) for key, value in _roots.items()} if changed and target else None
    if listing is not None and target is not None:
        with contextlib.suppress(OSError):  # a full disk: the roots are learned again from hooks
            write_atomically(target, json.dumps(listing, sort_keys=True), mode=0o600)
    return scope, root


def project_scope(cwd: str) -> str:
    """The scope id for a directory: ``<name>-<12 hex>``, stable across worktrees and moves."""
    return _located(cwd)[0]


def project_root(cwd: str) -> Path | None:
    """The top level of the worktree holding ``cwd`` (the directory itself outside git); None
    for a path that is not a directory."""
    return _located(cwd)[1]


def known_root(scope: str) -> Path | None:
    """The root last seen for ``scope`` by this process (any worktree of it), or None."""
    with _cache_lock:
        return _roots.get(scope)


def remember_roots(path: Path) -> None:
    """Keep the roots seen in ``path`` from now on, and take back those it holds that are still
    directories (a damaged or foreign file is ignored: the roots are learned again from hooks)."""
    global _roots_file
    try:
        text = path.read_text(encoding="utf-8") if path.stat().st_size <= MAX_ROOTS_FILE_BYTES else "{}"
        saved = json.loads(text)
    except (OSError, ValueError):
        saved = {}
    with _cache_lock:
        _roots_file = path
        if isinstance(saved, dict):
            for scope, root in saved.items():
                if isinstance(scope, str) and isinstance(root, str) and scope not in _roots:
                    with contextlib.suppress(OSError, ValueError):
                        if Path(root).is_dir():
                            _roots[scope] = Path(root)


def known_roots() -> dict[str, Path]:
    """Every scope this process has seen a root for (those ``remember_roots`` read back included)."""
    with _cache_lock:
        return dict(_roots.items())


def known_project_scope(cwd: str) -> str | None:
    """The scope of ``cwd`` if it was worked out in the last ten minutes, else None: for the
    event loop, which must not wait on git (``project_scope`` may run it)."""
    with _cache_lock:
        found = _cache.get(keys.hashkey(cwd))
    return found[0] if found else None
