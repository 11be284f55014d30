"""What text an anchor covers and how to recognise it again: normalised lines, their hash, a
symbol's block, the same lines found elsewhere in a file, and a rough size of a change.

The anchored text is hashed, never stored (a memory's payload is small and may be shared; code
may hold secrets). To say how much changed without the old text, an anchor keeps a sketch: the
16 smallest 32-bit hashes of its distinct lines (a bottom-k sample); comparing it with the same
sample of the current text estimates the share of distinct lines that differ (exact for blocks
of 16 distinct lines or fewer). Line hashes are CRC-32: a few hundred nanoseconds a line, and
every match they suggest is confirmed with the blake2b hash of the whole block.

Symbols are found by a regular expression over definition keywords (Python ``def``/``class``,
JavaScript/TypeScript ``function``/``class``/``const``/``let``/``interface``/``type``, Go
``func``/``type``, Rust ``fn``/``struct``/``enum``/``trait``/``impl``) or an assignment at
column 0 (a Python constant), not by a parser. Limits:
methods written without a keyword (a JavaScript ``name() {``) are not found; a Python block ends
at the first line indented no deeper than its ``def`` (decorators above it are included); other
blocks end where their braces balance, or, for a definition without braces, at its ``;`` or the
next blank line; braces inside strings and comments are counted too; every block stops after
``MAX_BLOCK_LINES``.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Sequence

SKETCH_LINES = 16
MAX_BLOCK_LINES = 2_000
# A moved range is looked for at the lines whose first line matches, nearest first; a range
# that starts with a line repeated everywhere ("}", a blank line) stops being followed here.
MAX_MOVE_WINDOWS = 200

_MODIFIERS = r"(?:(?:export|default|pub(?:\([^)]*\))?|async|static|public|private|protected|unsafe|extern|abstract|declare)\s+)*"
_KEYWORDS = r"(?:def|class|function\*?|fn|func(?:\s*\([^)]*\))?|const|let|var|struct|enum|trait|interface|type|impl|mod)"
_PYTHON_HEADER = re.compile(r"\s*(?:async\s+)?(?:def|class)\b")


def split_lines(text: str) -> list[str]:
    """The file's lines without line endings or trailing blanks (a CRLF checkout, an editor that
    strips trailing spaces: the same code); a final newline adds no empty line."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if " \n" in text or "\t\n" in text or text.endswith((" ", "\t")):  # rare: skip a call a line
        lines = [line.rstrip() for line in lines]
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def digest(lines: Sequence[str]) -> str:
    """blake2b-128 of the lines joined: 32 hex characters."""
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def line_hash(line: str) -> int:
    """CRC-32 of a line without its indentation (for the first-line index and the sketch)."""
    return zlib.crc32(line.strip().encode("utf-8", "surrogatepass"))


def sketch(lines: Sequence[str]) -> str:
    """The ``SKETCH_LINES`` smallest hashes of the distinct non-blank lines, 8 hex characters each."""
    crc = zlib.crc32  # inlined line_hash: this runs over every line of a changed file
    smallest = sorted({crc(s.encode("utf-8", "surrogatepass")) for line in lines if (s := line.strip())})
    smallest = smallest[:SKETCH_LINES]
    return "".join(f"{value:08x}" for value in smallest)


def change_share(old_sketch: str, lines: Sequence[str]) -> float:
    """Estimated share (0..1) of distinct lines that differ between the anchored text, known by
    its sketch, and ``lines``: one minus the bottom-k estimate of their Jaccard similarity."""
    old = {int(old_sketch[i : i + 8], 16) for i in range(0, len(old_sketch), 8)}
    current = sketch(lines)
    new = {int(current[i : i + 8], 16) for i in range(0, len(current), 8)}
    union = sorted(old | new)[:SKETCH_LINES]
    if not union:
        return 0.0
    both = sum(1 for value in union if value in old and value in new)
    return round(1 - both / len(union), 2)


def find_window(lines: Sequence[str], head: int, text_hash: str, span: int, near: int) -> int | None:
    """The 0-based start of ``span`` lines hashing to ``text_hash`` whose first line hashes to
    ``head``, the one nearest ``near`` first; None when the text is nowhere in ``lines``."""
    crc = zlib.crc32  # inlined line_hash, as in sketch
    starts = [
        i
        for i, line in enumerate(lines[: len(lines) - span + 1])
        if crc(line.strip().encode("utf-8", "surrogatepass")) == head
    ]
    starts.sort(key=lambda i: abs(i - near))
    for start in starts[:MAX_MOVE_WINDOWS]:
        if digest(lines[start : start + span]) == text_hash:
            return start
    return None


def find_symbol(lines: Sequence[str], name: str, near: int = 0) -> tuple[int, int] | None:
    """(start, end), 0-based and end exclusive, of the block defining ``name``, the definition
    nearest line ``near`` when there are several; None when nothing defines it."""
    escaped = re.escape(name)
    pattern = re.compile(
        rf"[ \t]*{_MODIFIERS}{_KEYWORDS}\s+{escaped}(?![\w$])|(?P<assign>{escaped})\s*(?::[^=\n]*)?=(?!=)"
    )
    found = []
    for number in _lines_naming(lines, name):  # the name is rare; trying the pattern at every line is not
        match = pattern.match(lines[number])
        if match:
            found.append((number, bool(match.group("assign"))))
    if not found:
        return None
    start, assignment = min(found, key=lambda hit: abs(hit[0] - near))
    if assignment:
        end: int | None = _statement_end(lines, start)
    elif _PYTHON_HEADER.match(lines[start]) and "{" not in lines[start]:
        end = _python_end(lines, start)
    else:
        end = None
    if end is None:
        end = _brace_end(lines, start)
    while (
        start > 0
        and lines[start - 1].strip().startswith("@")
        and _indent(lines[start - 1]) == _indent(lines[start])
    ):
        start -= 1  # decorators belong to what they decorate
    return start, end


def _lines_naming(lines: Sequence[str], name: str) -> list[int]:
    """The 0-based numbers of the lines that contain ``name``, found with ``str.find`` on the
    whole text (a regular expression tried at every line start cost 225 µs on a 20 KB module)."""
    text = "\n".join(lines)
    numbers: list[int] = []
    at, line, counted = text.find(name), 0, 0
    while at >= 0:
        line += text.count("\n", counted, at)
        counted = at
        if not numbers or numbers[-1] != line:
            numbers.append(line)
        at = text.find(name, at + len(name))
    return numbers


def _indent(line: str) -> int:
    return len(line.expandtabs(8)) - len(line.expandtabs(8).lstrip())


def _depth(line: str) -> int:
    return sum(line.count(c) for c in "([{") - sum(line.count(c) for c in ")]}")


def _statement_end(lines: Sequence[str], start: int) -> int:
    """A top-level assignment (``MAX_LINES = 500``, ``ROUTES = [...]``) ends where its brackets close."""
    depth, limit = 0, min(len(lines), start + MAX_BLOCK_LINES)
    for i in range(start, limit):
        depth += _depth(lines[i])
        if depth <= 0:
            return i + 1
    return limit


def _python_end(lines: Sequence[str], start: int) -> int | None:
    """After the header (which may span lines until its brackets close on a ``:``), the block
    runs while lines are blank or indented deeper than the header."""
    depth, i, limit = 0, start, min(len(lines), start + MAX_BLOCK_LINES)
    while i < limit:
        depth += _depth(lines[i])
        if depth <= 0 and lines[i].endswith(":"):
            break
        i += 1
    else:
        return None
    indent, end = _indent(lines[start]), i + 1
    for j in range(i + 1, limit):
        if lines[j].strip():
            if _indent(lines[j]) <= indent:
                break
            end = j + 1
    return end


def _brace_end(lines: Sequence[str], start: int) -> int:
    """The line after the one where the definition's braces balance; a definition without braces
    ends at its ``;`` or the next blank line."""
    depth, opened, limit = 0, False, min(len(lines), start + MAX_BLOCK_LINES)
    for i in range(start, limit):
        line = lines[i]
        if not opened and i > start and not line.strip():
            return i
        opens, closes = line.count("{"), line.count("}")
        opened = opened or opens > 0
        depth += opens - closes
        if (opened and depth <= 0) or (not opened and line.endswith(";")):
            return i + 1
    return limit
