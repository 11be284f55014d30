"""Reading memories from where users come from, into plain ``MemoryCreate`` requests.

- The reference MCP ``memory`` server's ``memory.json``: JSON Lines of entities (with their
  observations) and relations, or the older single object ``{"entities": [...], "relations": [...]}``.
  Each observation becomes one fact about its entity; each relation one fact linking two.
- A directory of Markdown notes: one memory per note, or one per heading with ``split="heading"``.
Clarity's own export is read by ``clarity.lifecycle.transfer``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from clarity.config import describe_validation_error
from clarity.lifecycle.transfer import (
    TransferError,
    first_line,
    is_export,
    open_import,
    parse_json,
    read_text,
)
from clarity.models import MAX_CONTENT_CHARS, MemoryCreate, MemoryType, Source

Format = Literal["clarity", "memory-json", "markdown"]


class Parsed(BaseModel):
    """Requests ready to store, and what was skipped on the way, with the reason."""

    requests: list[MemoryCreate] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)


def check_source(path: Path) -> None:
    """An import reads a directory of notes or one regular file; anything else (a FIFO, a
    device, a socket) is refused before a byte is read."""
    if path.is_dir():
        return
    open_import(path).close()


def detect_format(path: Path) -> Format:
    check_source(path)
    if path.is_dir():
        return "markdown"
    if path.suffix.lower() in (".md", ".markdown"):
        return "markdown"
    if is_export(path):
        return "clarity"
    try:
        data = parse_json(first_line(path))
    except ValueError:
        data = None
    if isinstance(data, dict) and (data.get("type") in ("entity", "relation") or "entities" in data):
        return "memory-json"
    raise TransferError(
        f"{path}: format not recognised; expected a Clarity export (.jsonl), a memory server "
        "memory.json, or Markdown notes (a .md file or a directory of them)"
    )


def _request(content: str, where: str, parsed: Parsed, **fields: Any) -> None:
    try:
        parsed.requests.append(MemoryCreate(content=content, source=Source.import_, **fields))
    except ValidationError as exc:
        parsed.skipped.append(f"{where}: " + "; ".join(describe_validation_error(exc)))


def _tag(text: str) -> str:
    return re.sub(r"[^\w.-]+", "-", text.strip().lower()).strip("-")[:64] or "untitled"


def _items(path: Path, text: str) -> list[tuple[str, Any]]:
    """(where, item) for every entity and relation: the older single-object file, or JSON Lines."""
    stripped = text.strip()
    if stripped.startswith("{") and '"entities"' in stripped.split("\n", 1)[0]:
        try:
            graph = parse_json(stripped)
        except ValueError as exc:
            raise TransferError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(graph, dict):
            raise TransferError(f"{path}: expected a JSON object with entities and relations")
        items: list[tuple[str, Any]] = []
        for key, kind in (("entities", "entity"), ("relations", "relation")):
            listed = graph.get(key, [])
            if not isinstance(listed, list):
                raise TransferError(f"{path}: {key} must be a list, got {type(listed).__name__}")
            items += [
                (f"{key}[{i}]", {"type": kind, **entry} if isinstance(entry, dict) else entry)
                for i, entry in enumerate(listed)
            ]
        return items
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append((f"line {number}", parse_json(line)))
        except ValueError as exc:
            raise TransferError(f"{path}:{number}: not valid JSON ({exc})") from None
    return items


def _text(item: dict[str, Any], key: str) -> str:
    """A name-like field: text or a number; anything else (a list, an object) counts as absent."""
    value = item.get(key, "")
    return str(value).strip() if isinstance(value, str | int | float) and not isinstance(value, bool) else ""


def read_memory_json(path: Path, scope: str) -> Parsed:
    items = _items(path, read_text(path))
    parsed = Parsed()
    for where, item in items:
        if not isinstance(item, dict):
            parsed.skipped.append(f"{path} {where}: not an object")
        elif item.get("type") == "entity":
            name, kind = _text(item, "name"), _text(item, "entityType")
            observations = item.get("observations") or []
            if not name or not isinstance(observations, list):
                parsed.skipped.append(f"{path} {where}: entity without a name or observations list")
                continue
            label = f"{name} ({kind})" if kind else name
            for number, observation in enumerate(observations):
                if not isinstance(observation, str):
                    parsed.skipped.append(f"{path} {where}: observation {number} is not text")
                    continue
                _request(
                    f"{label}: {observation}",
                    f"{path} {where}",
                    parsed,
                    memory_type=MemoryType.fact,
                    tags=[_tag(name), *([_tag(kind)] if kind else [])],
                    metadata={"entity": name, "entity_type": kind, "imported_from": "mcp-memory"},
                    scope=scope,
                )
        elif item.get("type") == "relation":
            source, target, relation = (_text(item, k) for k in ("from", "to", "relationType"))
            if not (source and target and relation):
                parsed.skipped.append(f"{path} {where}: relation needs from, to and relationType")
                continue
            _request(
                f"{source} {relation} {target}",
                f"{path} {where}",
                parsed,
                memory_type=MemoryType.fact,
                tags=[_tag(source), _tag(target), "relation"],
                metadata={"relation": relation, "from": source, "to": target, "imported_from": "mcp-memory"},
                scope=scope,
            )
        else:
            given = item.get("type")
            shown = repr(given)[:40] if isinstance(given, str | int | float | None) else type(given).__name__
            parsed.skipped.append(f"{path} {where}: unknown item type {shown}")
    return parsed


_FRONT_MATTER = re.compile(r"\A---\s*\n(?P<body>.*?)\n---\s*\n", re.DOTALL)
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")


def front_matter(text: str) -> tuple[dict[str, str], str]:
    """A note's front matter as flat ``key: value`` pairs (one nested level as ``parent.key``,
    as Claude Code's ``metadata: type: ...``) and the text after it. Not a YAML parser: lists
    stay as their text, which is all the importers read."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    fields: dict[str, str] = {}
    parent = ""
    for line in match.group("body").splitlines():
        key, colon, value = line.partition(":")
        if not colon or not key.strip():
            continue
        nested = line[:1].isspace() and parent
        name = f"{parent}.{key.strip()}" if nested else key.strip()
        fields[name.lower()] = value.strip().strip("'\"")
        if not nested:
            parent = key.strip() if not value.strip() else ""
    return fields, text[match.end() :]


def front_matter_tags(fields: dict[str, str]) -> list[str]:
    return [_tag(t) for t in re.split(r"[,\[\]]", fields.get("tags", "")) if t.strip().strip("'\"")]


def _sections(text: str) -> Iterable[tuple[str | None, str]]:
    """(heading, text) per heading; a ``#`` line inside a fenced code block (a shell comment in
    a command example) is not a heading, and a heading with nothing under it is no section."""
    starts: list[tuple[int, str]] = []
    fence = ""
    offset = 0
    for line in text.splitlines(keepends=True):
        opened = _FENCE.match(line)
        if opened and (not fence or opened.group(1).startswith(fence)):
            fence = "" if fence else opened.group(1)[0] * 3
        elif not fence and (match := _HEADING.match(line.rstrip("\r\n"))):
            starts.append((offset, match.group(2)))
        offset += len(line)
    if not starts:
        yield None, text
        return
    if text[: starts[0][0]].strip():
        yield None, text[: starts[0][0]]
    for i, (begin, heading) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(text)
        piece = text[begin:end]
        if piece.partition("\n")[2].strip():
            yield heading, piece


def add_notes(
    parsed: Parsed,
    body: str,
    where: str,
    *,
    scope: str,
    split: Literal["note", "heading"],
    tags: list[str],
    metadata: dict[str, Any],
    memory_type: MemoryType = MemoryType.note,
    importance: float = 0.5,
    too_long: str = "import with --split heading",
) -> int:
    """One request per note, or per heading section; returns how many were added."""
    added = 0
    pieces = list(_sections(body)) if split == "heading" else [(None, body)]
    for heading, piece in pieces:
        if not piece.strip():
            continue
        if len(piece.strip()) > MAX_CONTENT_CHARS:
            parsed.skipped.append(
                f"{where}{' # ' + heading if heading else ''}: {len(piece.strip())} characters is over "
                f"the limit of {MAX_CONTENT_CHARS}; {too_long}"
            )
            continue
        before = len(parsed.requests)
        _request(
            piece,
            where,
            parsed,
            memory_type=memory_type,
            importance=importance,
            tags=list(dict.fromkeys(tags))[:32],
            metadata={**metadata, **({"heading": heading} if heading else {})},
            scope=scope,
        )
        added += len(parsed.requests) - before
    return added


def read_markdown(path: Path, scope: str, split: Literal["note", "heading"] = "note") -> Parsed:
    files = sorted(path.rglob("*.md")) if path.is_dir() else [path]
    if not files:
        raise TransferError(f"{path}: no .md files found")
    parsed = Parsed()
    for file in files:
        relative = str(file.relative_to(path)) if path.is_dir() else file.name
        try:
            text = read_text(file)
        except TransferError as exc:
            parsed.skipped.append(f"{relative}: cannot read ({str(exc).removeprefix(f'{file}: ')})")
            continue
        fields, body = front_matter(text)
        add_notes(
            parsed,
            body,
            relative,
            scope=scope,
            split=split,
            tags=[*front_matter_tags(fields), _tag(file.stem)],
            metadata={"path": relative, "imported_from": "markdown"},
        )
    return parsed
