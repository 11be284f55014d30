"""Claude Code's own memory files, found where Claude Code keeps them, read as import requests.

What `clarity import --from claude-code` brings in, and into which scope:

* ``<config>/CLAUDE.md`` (``$CLAUDE_CONFIG_DIR`` or ``~/.claude``): the user's instructions -> ``global``;
* from the project directory up to its repository's top level: ``CLAUDE.md``,
  ``.claude/CLAUDE.md``, ``CLAUDE.local.md`` and ``AGENTS.md`` -> the project's scope;
* auto memory, ``<config>/projects/<key>/memory/*.md`` -> the project's scope. Claude Code
  2.1.330 keys it by the repository's main worktree (every worktree and sub-directory shares
  it), else by the project directory: every character but ``[A-Za-z0-9]`` becomes ``-``, and a
  key over 200 characters is cut there and ends in ``-`` plus a base-36 hash of the path
  (``project_key``). An ``autoMemoryDirectory`` in the user's or the project's local settings
  moves it, and is honoured too.

Instruction files become one memory per heading section, auto memory one per file (Claude Code
writes one fact per file, with ``name``/``description``/``type`` front matter); the lines of
``MEMORY.md`` that only index the other files are left out. Every memory has source ``import``
and names its file in ``metadata.path``. Importing again stores nothing new (the service's
content-hash dedup); a record of each file's hash at its last import (``app-data``) lets
``clarity doctor`` say when a file has not been imported yet.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from clarity.atomic_file import write_atomically
from clarity.config import SettingsModel
from clarity.integrations.claude_files import config_dir
from clarity.lifecycle.importers import Parsed, add_notes, front_matter, front_matter_tags
from clarity.lifecycle.transfer import TransferError, read_text
from clarity.models import GLOBAL_SCOPE, MemoryType
from clarity.project import project_scope

RECORD_FILE = "claude-code-import.json"
INSTRUCTION_FILES = ("CLAUDE.md", ".claude/CLAUDE.md", "CLAUDE.local.md", "AGENTS.md")
# Claude Code's auto memory types, as Clarity's memory types.
AUTO_TYPES = {
    "user": MemoryType.preference,
    "feedback": MemoryType.preference,
    "project": MemoryType.fact,
    "reference": MemoryType.fact,
}
IMPORTANCE = 0.7  # Claude Code puts these in every session: worth keeping past the retention cap
_KEY_LIMIT = 200
_INDEX_LINE = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s*\[[^\]]*\]\((?P<target>[^)\s#]+)(?:#[^)]*)?\)")


@dataclass(frozen=True)
class MemoryFile:
    path: Path
    kind: str  # "CLAUDE.md (user)", "AGENTS.md", "auto memory"...
    scope: str


def _js_hash(text: str) -> int:
    """Claude Code's string hash (Java's ``hashCode`` over UTF-16 code units, 32-bit signed)."""
    value = 0
    for unit in _utf16_units(text):
        value = (value * 31 + unit) & 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _utf16_units(text: str) -> list[int]:
    raw = text.encode("utf-16-le", "surrogatepass")
    return [int.from_bytes(raw[i : i + 2], "little") for i in range(0, len(raw), 2)]


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out


def project_key(path: str) -> str:
    """The directory name Claude Code gives a project under ``<config>/projects``."""
    # JavaScript replaces each UTF-16 code unit: a character outside the BMP becomes two dashes.
    key = "".join(c if c.isascii() and c.isalnum() else "-" * (1 + (ord(c) > 0xFFFF)) for c in path)
    if len(key) <= _KEY_LIMIT:
        return key
    return f"{key[:_KEY_LIMIT]}-{_base36(abs(_js_hash(path)))}"


def repository_roots(project: Path) -> tuple[Path | None, Path | None]:
    """(the top of the repository holding ``project``, its main worktree's top) as Claude Code
    finds them: the nearest ``.git`` above, and for a linked worktree the checkout its common
    git directory belongs to. (None, None) outside git."""
    for top in (project, *project.parents):
        dot_git = top / ".git"
        if dot_git.is_dir() and not dot_git.is_symlink():
            return top, top
        if dot_git.is_file():
            try:
                pointer = dot_git.read_text(encoding="utf-8").strip()
                git_dir = (top / pointer.removeprefix("gitdir:").strip()).resolve()
                common = (git_dir / (git_dir / "commondir").read_text(encoding="utf-8").strip()).resolve()
            except (OSError, ValueError):
                return top, top
            return top, common.parent if common.name == ".git" else top
    return None, None


def _settings_dir(path: Path) -> Path | None:
    """``autoMemoryDirectory`` from a settings file, with ``~/`` expanded, or None."""
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("autoMemoryDirectory")
    except (OSError, ValueError, AttributeError):
        return None
    return Path(value).expanduser() if isinstance(value, str) and value.strip() else None


def auto_memory_dirs(project: Path) -> list[Path]:
    """Where Claude Code keeps auto memory for ``project``: a configured directory (local
    settings, then the user's; Claude Code ignores one in checked-in project settings), and the
    default under ``<config>/projects`` keyed by the main worktree, the repository's top or the
    directory itself (older versions keyed by the directory). Only those that exist."""
    top, main = repository_roots(project)
    configured = [
        _settings_dir((top or project) / ".claude" / "settings.local.json"),
        _settings_dir(config_dir() / "settings.json"),
    ]
    keyed = [config_dir() / "projects" / project_key(str(p)) / "memory" for p in (main, top, project) if p]
    found: list[Path] = []
    for candidate in [*(c for c in configured if c is not None), *keyed]:
        if candidate.is_dir() and candidate.resolve() not in [f.resolve() for f in found]:
            found.append(candidate)
    return found


def find_files(project: Path) -> list[MemoryFile]:
    """Every Claude Code memory file for ``project`` (a resolved directory), user files first."""
    scope = project_scope(str(project))
    top, _ = repository_roots(project)
    folders = [project]
    if top is not None and top != project:
        folders += [p for p in project.parents if p.is_relative_to(top)]
    candidates = [MemoryFile(config_dir() / "CLAUDE.md", "CLAUDE.md (user)", GLOBAL_SCOPE)]
    for folder in folders:
        for name in INSTRUCTION_FILES:
            kind = {"AGENTS.md": "AGENTS.md", "CLAUDE.local.md": "CLAUDE.local.md"}.get(
                name, "CLAUDE.md (project)"
            )
            candidates.append(MemoryFile(folder / name, kind, scope))
    for directory in auto_memory_dirs(project):
        candidates += [MemoryFile(p, "auto memory", scope) for p in sorted(directory.glob("*.md"))]
    files: list[MemoryFile] = []
    seen: set[Path] = set()
    for candidate in candidates:
        if candidate.path.is_file() and candidate.path.resolve() not in seen:
            seen.add(candidate.path.resolve())
            files.append(candidate)
    return files


def _without_index_lines(text: str, directory: Path) -> str:
    """MEMORY.md without the lines that only link to another file in its directory."""
    kept = []
    for line in text.splitlines(keepends=True):
        match = _INDEX_LINE.match(line)
        if match and (directory / match.group("target")).is_file():
            continue
        kept.append(line)
    return "".join(kept)


def read_file(file: MemoryFile) -> Parsed:
    """The requests one file makes; what cannot be used is in ``skipped`` with the reason."""
    parsed = Parsed()
    where = str(file.path)
    try:
        text = read_text(file.path)
    except TransferError as exc:
        parsed.skipped.append(str(exc))
        return parsed
    fields, body = front_matter(text)
    metadata: dict[str, str] = {"path": where, "kind": file.kind, "imported_from": "claude-code"}
    tags = ["claude-code", *front_matter_tags(fields)]
    if file.kind != "auto memory":
        add_notes(
            parsed,
            body,
            where,
            scope=file.scope,
            split="heading",
            tags=[*tags, "claude-md" if file.kind.startswith("CLAUDE") else "agents-md"],
            metadata=metadata,
            importance=IMPORTANCE,
            too_long="split that section under more headings",
        )
        return parsed
    split: Literal["note", "heading"] = "note"
    if file.path.name == "MEMORY.md":
        body = _without_index_lines(body, file.path.parent)
        split = "heading"
    else:
        description = fields.get("description", "")
        if description and description not in body:
            body = f"{description}\n\n{body}"
    claude_type = fields.get("type") or fields.get("metadata.type") or ""
    name = fields.get("name") or file.path.stem
    add_notes(
        parsed,
        body,
        where,
        scope=file.scope,
        split=split,
        tags=[*tags, "auto-memory", *([claude_type] if claude_type in AUTO_TYPES else [])],
        metadata={**metadata, "name": name, **({"type": claude_type} if claude_type else {})},
        memory_type=AUTO_TYPES.get(claude_type, MemoryType.note),
        importance=IMPORTANCE,
        too_long="split the file",
    )
    return parsed


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _record_path(settings: SettingsModel) -> Path:
    return settings.storage.app_data_dir / RECORD_FILE


def imported(settings: SettingsModel) -> dict[str, str]:
    """Each file's hash at its last import, by path (empty when never imported or unreadable)."""
    try:
        files = json.loads(_record_path(settings).read_text(encoding="utf-8")).get("files", {})
    except (OSError, ValueError, AttributeError):
        return {}
    if not isinstance(files, dict):
        return {}
    return {k: str(v.get("sha256")) for k, v in files.items() if isinstance(v, dict)}


def record_import(settings: SettingsModel, files: list[MemoryFile]) -> None:
    """Note the files just imported, with their hashes, for ``clarity doctor``."""
    path = _record_path(settings)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        known = record.get("files") if isinstance(record, dict) else None
    except (OSError, ValueError):
        known = None
    known = known if isinstance(known, dict) else {}
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for file in files:
        with_hash = {"sha256": file_hash(file.path), "scope": file.scope, "imported_at": now}
        known[str(file.path)] = with_hash
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomically(path, json.dumps({"files": known}, indent=1), mode=0o600)


def not_imported(settings: SettingsModel, project: Path) -> tuple[list[MemoryFile], list[MemoryFile]]:
    """(every memory file found for ``project``, those new or changed since their last import)."""
    files = find_files(project)
    done = imported(settings)
    pending = []
    for file in files:
        try:
            if done.get(str(file.path)) != file_hash(file.path):
                pending.append(file)
        except OSError:
            continue
    return files, pending
