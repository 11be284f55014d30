"""``memory_stats`` as the model gets it: the daemon's figures with no absolute path in them.

The service's ``Stats`` name the store's directory and the model's files by absolute path (twice
for the store: ``location`` and ``index.location``), which tells a model nothing it can act on,
costs characters, and puts the user's name and the machine's layout into every transcript that
shows the result. Here each path is home-relative (``~/.claude/alunai-clarity/qdrant``) or, out
of the home directory, only its last part (``…/qdrant``); a model loaded from a directory is
named as people name it (``model_identity.display_name``). URLs (a Qdrant server) stay as
they are.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

from clarity.model_identity import display_name
from clarity.requests import Stats
from clarity.text import ELLIPSIS

# An absolute POSIX path inside a value or a message: a "/" that follows no word character, dot,
# tilde, colon or slash (so "a/b", "~/x" and a URL's "//host/path" are left alone).
_PATH = re.compile(r"(?<![\w.~:/-])/[^\s'\"(),;]+")


def shown_path(path: str, home: Path | None = None) -> str:
    """``~/rest`` under the home directory, else ``…/last-part``."""
    home_text = str(home or Path.home()).rstrip("/")
    if home_text and (path == home_text or path.startswith(home_text + "/")):
        return "~" + path[len(home_text) :]
    return f"{ELLIPSIS}/{PurePosixPath(path).name}" if PurePosixPath(path).name else ELLIPSIS


def without_paths(value: Any, home: Path | None = None) -> Any:
    """``value`` (JSON: dicts, lists, text) with every absolute path in its text shortened."""
    if isinstance(value, str):
        return _PATH.sub(lambda found: shown_path(found.group(), home), value)
    if isinstance(value, dict):
        return {key: without_paths(item, home) for key, item in value.items()}
    if isinstance(value, list):
        return [without_paths(item, home) for item in value]
    return value


def public_stats(stats: Stats, home: Path | None = None) -> Stats:
    data = stats.model_dump(mode="json")
    data["model"] = display_name(stats.model)
    return Stats.model_validate(without_paths(data, home))
