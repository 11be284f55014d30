"""What a shell command runs, as the learner and PreToolUse read it: its programs (past env
assignments and wrappers, in every step of a chain), the ``cmd:<program>`` tags learned memories
are found by, and whether a step builds or tests the project.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Iterator

from clarity.models import MAX_TAG_CHARS, MAX_TAGS

_BUILD_TEST = re.compile(
    r"^(?:(?:uv|poetry|pipenv|hatch|pdm)\s+run\s+)?(?:python3?\s+-m\s+)?"
    r"(pytest|tox|nox|make|cmake|ctest|ninja|cargo\s+(?:build|test|check|clippy)|go\s+(?:build|test|vet)|"
    r"(?:npm|pnpm|yarn|bun)\s+(?:run\s+)?(?:test|build|lint|check|typecheck)|npx\s+(?:jest|vitest|tsc|eslint)|"
    r"jest|vitest|tsc|mvn|gradle|\./gradlew|dotnet\s+(?:build|test)|ruff|mypy|black|eslint|"
    r"bazel\s+(?:build|test)|\./[\w./-]*(?:test|build|check|lint)[\w.-]*)(?:\s|$)"
)
_WRAPPERS = {"sudo", "time", "env", "nice", "timeout", "command", "exec"}

# A learned memory is tagged ``cmd:<program>`` for each program its command runs, so PreToolUse
# finds it by program. Tags have limits (MAX_TAGS of MAX_TAG_CHARS), and one tag is kept for
# "build-test": longer names are cut (``program_tag``), longer chains keep their first programs.
MAX_PROGRAMS = MAX_TAGS - 1
_TAG_PREFIX = "cmd:"
_PROGRAM_CHARS = MAX_TAG_CHARS - len(_TAG_PREFIX)


def _words(command: str) -> Iterator[str]:
    """shlex's words, lazily: finding a program reads a command's first words only, not all of
    a 1 MB one. Unbalanced quotes make the rest plain whitespace-separated words."""
    lexer = shlex.shlex(command, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    seen = 0
    try:
        while (word := lexer.get_token()) is not None:
            seen += 1
            yield word
    except ValueError:
        yield from command.split()[seen:]


def program_of(command: str) -> str:
    """The program a command runs, ignoring env assignments and wrappers: `FOO=1 sudo make x` -> make.

    "" for a command that only assigns variables (``DB_PASSWORD=...``): it runs no program, and
    the assignment is no name to tag a memory with.
    """
    for word in _words(command):
        if "=" in word.split("/")[0] and not word.startswith(("-", "./", "/")):
            continue
        if word in _WRAPPERS or word.isdigit():
            continue
        return word.rsplit("/", 1)[-1] if not word.startswith("./") else word
    return ""


def programs_of(command: str, limit: int | None = None) -> list[str]:
    """Every program a compound command runs: `cp a b && ./run-tests.sh | tee log` -> cp, ./run-tests.sh, tee.

    With ``limit``, the first ``limit`` distinct programs (the chain's start says what it does):
    each segment is parsed with shlex, slow on a chain of thousands.
    """
    found: dict[str, None] = {}
    for part in re.split(r"&&|\|\||;|\||\n", command):
        program = program_of(part) if part.strip() else ""
        if program:
            found[program] = None
            if limit is not None and len(found) >= limit:
                break
    return list(found)


def program_tag(program: str) -> str:
    """``cmd:<program>`` within the tag limit. A longer name keeps what identifies it (a path its
    end, anything else its start) plus a short hash of the whole, so the same program always
    gets the same tag and two long names never share one."""
    if len(program) <= _PROGRAM_CHARS:
        return _TAG_PREFIX + program
    digest = hashlib.sha256(program.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    room = _PROGRAM_CHARS - len(digest) - 2
    kept = "…" + program[-room:] if "/" in program else program[:room] + "…"
    return f"{_TAG_PREFIX}{kept}~{digest}"


def command_tags(programs: list[str], *extra: str) -> list[str]:
    """Tags for a command's programs plus ``extra``, within MAX_TAGS: a longer chain keeps its
    first programs, so its memory is still stored and found by them."""
    tags = list(dict.fromkeys(program_tag(p) for p in programs))
    return [*tags[: MAX_TAGS - len(extra)], *extra]


def is_build_or_test(command: str) -> bool:
    stripped = re.sub(r"^(?:\w+=\S+\s+)+", "", command.strip())
    return bool(_BUILD_TEST.match(stripped))


def build_or_test_steps(command: str) -> list[str]:
    """The steps of a ``&&``/``;`` chain that build or test: ``cp a b && ./run-tests.sh`` ->
    ``./run-tests.sh``."""
    return [step.strip() for step in re.split(r"&&|;", command) if is_build_or_test(step)]
