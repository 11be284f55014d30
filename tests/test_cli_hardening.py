"""Odd command lines, settings and files end the CLI with one line, never a traceback (issue 20,
defects 6 and 10).

Each case runs the real CLI as a subprocess, the way a user or a script would, and checks the
exit code (2: a flag, setting or file the user can fix), that the message names what is wrong
and what is allowed, and that stderr holds no Python traceback. An import of a FIFO runs under
a timeout, so a regression fails instead of hanging.

Defect 6: an empty ``CLARITY_STORAGE__ROOT`` used to make the current directory the storage
root, stripping group and other permissions from every file in it. Empty and relative roots
are now refused; a root that also holds files Clarity did not make is used, but those files
and the directory itself are left as they are (only ``config.owns`` entries are made private).
"""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from clarity.lifecycle.transfer import MAX_IMPORT_BYTES, MAX_TEXT_IMPORT_BYTES

from .daemon_util import Daemon, free_port

VENV_CLARITY = Path(sys.executable).with_name("clarity")
RECORD = {
    "id": "3f1b0a52-7d55-4a39-9d8b-0f5a2f8f2b11",
    "content": "an imported fact",
    "memory_type": "fact",
    "scope": "global",
    "created_at": "2024-01-01T00:00:00Z",
    "updated_at": "2024-01-01T00:00:00Z",
    "content_hash": "0" * 64,
}
HEADER = {"format": "clarity-export", "version": 1, "model": "m", "dimension": 3, "count": 1}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A storage root and config path of the test's own; no daemon is needed for these."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CLARITY_", "QDRANT_"))}
    return {
        **base,
        "HF_HUB_OFFLINE": "1",
        "CLARITY_STORAGE__ROOT": str(tmp_path / "root"),
        "CLARITY_SERVER__PORT": str(free_port()),
        "MEMORY_CONFIG_PATH": str(tmp_path / "config.json"),
    }


def run(
    env: dict[str, str], *args: str, cwd: Path | None = None, command: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*(command or [sys.executable, "-m", "clarity"]), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def assert_usage_error(result: subprocess.CompletedProcess[str], *named: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    message = " ".join(result.stderr.split())  # rich may wrap a long line
    assert message.startswith("error:"), result.stderr
    for part in named:
        assert part in message, (part, result.stderr)


# -- flags and settings -------------------------------------------------------------------------


def test_bad_log_level(env: dict[str, str]) -> None:
    assert_usage_error(run(env, "serve", "--log-level", "bogus"), "--log-level", "'bogus'", "debug, info")


def test_config_file_that_is_not_an_object(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("[1]")
    assert_usage_error(run(env, "status"), str(tmp_path / "config.json"), "expected a JSON object", "list")


def test_config_file_that_is_a_depth_bomb(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    assert_usage_error(run(env, "status"), "config.json", "nested too deeply")


def test_config_path_that_is_a_fifo(env: dict[str, str], tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "config.json")
    assert_usage_error(run(env, "status"), "config.json", "not a regular file")


@pytest.mark.parametrize("where", ["env", "config"])
def test_storage_root_pointing_at_a_file(env: dict[str, str], tmp_path: Path, where: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    if where == "env":
        env["CLARITY_STORAGE__ROOT"] = str(blocker / "below")
    else:
        del env["CLARITY_STORAGE__ROOT"]
        (tmp_path / "config.json").write_text(json.dumps({"storage": {"root": str(blocker)}}))
    assert_usage_error(run(env, "serve"), "storage.root", str(blocker), "is a file, not a directory")
    assert blocker.read_text() == "not a directory"


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("not json", ["CLARITY_HOOKS__GUARDS", "not valid JSON", "a JSON list"]),
        ('{"pattern": "x"}', ["hooks.guards", "valid list"]),
        ('[{"pattern": "(unclosed"}]', ["hooks.guards.0.pattern", "not a valid regular expression"]),
        ('[{"pattern": "x", "decision": "maybe"}]', ["hooks.guards.0.decision", "'deny' or 'ask'"]),
    ],
)
def test_malformed_guards(env: dict[str, str], value: str, named: list[str]) -> None:
    env["CLARITY_HOOKS__GUARDS"] = value
    assert_usage_error(run(env, "status"), *named)


# -- defect 6: the storage root -----------------------------------------------------------------


def _listing(directory: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.lstat().st_mode) for p in (directory, *directory.iterdir())}


@pytest.mark.parametrize("value", ["", "   ", "relative/root"])
def test_empty_or_relative_root_is_refused_and_the_cwd_untouched(
    env: dict[str, str], tmp_path: Path, value: str
) -> None:
    """The installed ``clarity`` script, started in a directory holding someone's files."""
    cwd = tmp_path / "somebody"
    cwd.mkdir()
    os.chmod(cwd, 0o755)
    (cwd / "notes.txt").write_text("mine")
    os.chmod(cwd / "notes.txt", 0o644)
    before = _listing(cwd)
    env["CLARITY_STORAGE__ROOT"] = value
    result = run(env, "serve", cwd=cwd, command=[str(VENV_CLARITY)])
    assert_usage_error(result, "storage.root")
    assert ("is empty" if not value.strip() else "must be an absolute path") in result.stderr
    assert _listing(cwd) == before  # no new files, no permission changed


@pytest.fixture
def foreign_root(tmp_path: Path) -> Iterator[tuple[Daemon, Path]]:
    """A daemon whose root already holds a file Clarity did not make."""
    root = tmp_path / "shared"
    root.mkdir()
    os.chmod(root, 0o755)
    (root / "report.txt").write_text("not Clarity's")
    os.chmod(root / "report.txt", 0o644)
    daemon = Daemon(root, free_port())
    daemon.log_path = tmp_path / "daemon.log"
    daemon.start()
    try:
        daemon.wait_healthy()
        yield daemon, root
    finally:
        daemon.stop()


def test_a_root_with_foreign_files_leaves_them_alone(foreign_root: tuple[Daemon, Path]) -> None:
    daemon, root = foreign_root
    assert stat.S_IMODE((root / "report.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE(root.stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "qdrant").stat().st_mode) == 0o700  # what Clarity made is private
    assert "not Clarity's (report.txt)" in daemon.log()


def test_what_a_daemon_left_in_its_root_is_not_called_foreign(tmp_path: Path) -> None:
    """usage.sqlite3 (with its -wal and -shm) is Clarity's: the second start of a fresh clone's
    daemon logged it as 'not Clarity's'."""
    root = tmp_path / "root"
    daemon = Daemon(root, free_port())
    daemon.log_path = tmp_path / "daemon.log"
    for _ in range(2):
        daemon.start()
        try:
            daemon.wait_healthy()
        finally:
            assert daemon.stop() == 0
    assert any(p.name.startswith("usage.sqlite3") for p in root.iterdir())
    assert "not Clarity's" not in daemon.log()


# -- imports --------------------------------------------------------------------------------------


def _export(tmp_path: Path, *records: str) -> Path:
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join([json.dumps(HEADER), *records]) + "\n")
    return path


def test_import_of_a_fifo_is_refused_at_once(env: dict[str, str], tmp_path: Path) -> None:
    fifo = tmp_path / "memories.jsonl"
    os.mkfifo(fifo)
    assert_usage_error(run(env, "import", str(fifo)), str(fifo), "FIFO", "regular files")


def test_import_of_dev_zero_is_refused(env: dict[str, str]) -> None:
    assert_usage_error(run(env, "import", "/dev/zero"), "/dev/zero", "character device", "regular files")


def test_import_over_the_size_limit_is_refused_unread(env: dict[str, str], tmp_path: Path) -> None:
    huge = tmp_path / "huge.jsonl"
    with open(huge, "wb") as handle:  # sparse: takes no disk
        handle.truncate(MAX_IMPORT_BYTES + 1)
    assert_usage_error(run(env, "import", str(huge)), str(huge), f"limit of {MAX_IMPORT_BYTES} bytes")


def test_a_whole_text_import_has_a_tighter_limit(env: dict[str, str], tmp_path: Path) -> None:
    """memory.json and Markdown are parsed whole, at several times their size in memory (review)."""
    notes = tmp_path / "memory.json"
    with open(notes, "wb") as handle:  # recognisable as memory.json, the rest sparse
        handle.write(b'{"type": "entity", "name": "x", "entityType": "t", "observations": ["o"]}\n')
        handle.truncate(MAX_TEXT_IMPORT_BYTES + 1)
    assert_usage_error(run(env, "import", str(notes)), str(notes), f"limit of {MAX_TEXT_IMPORT_BYTES} bytes")


@pytest.mark.parametrize("form", ["memory-json", "export-line", "markdown-dir"])
def test_import_of_a_json_depth_bomb(env: dict[str, str], tmp_path: Path, form: str) -> None:
    bomb = "[" * 100_000 + "]" * 100_000
    if form == "memory-json":
        path = tmp_path / "memory.json"
        path.write_text(bomb + "\n")
        result = run(env, "import", str(path), "--format", "memory-json", "--dry-run")
        assert_usage_error(result, "memory.json:1", "nested too deeply")
    elif form == "export-line":
        path = _export(tmp_path, '{"metadata": ' + bomb + "}")
        assert_usage_error(run(env, "import", str(path), "--dry-run"), "export.jsonl:2", "nested too deeply")
    else:  # a FIFO among Markdown notes is skipped with a reason, not waited on
        notes = tmp_path / "notes"
        notes.mkdir()
        (notes / "a.md").write_text("# A\nA note about the deploy.\n")
        os.mkfifo(notes / "b.md")
        result = run(env, "import", str(notes), "--dry-run")
        assert result.returncode == 0, result.stderr
        assert "b.md" in result.stderr and "FIFO" in result.stderr
        assert "1 memories would be imported" in result.stdout


def test_import_of_non_object_entities(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "memory.json"
    path.write_text(json.dumps({"entities": [1, "x", None, {"name": "db", "observations": [[1], "runs"]}]}))
    result = run(env, "import", str(path), "--dry-run")
    assert result.returncode == 0, result.stderr
    for where in ("entities[0]", "entities[1]", "entities[2]"):
        assert f"{where}: not an object" in result.stderr
    assert "observation 0 is not text" in result.stderr
    assert "1 memories would be imported" in result.stdout

    path.write_text(json.dumps({"entities": {"db": {}}}))
    assert_usage_error(run(env, "import", str(path), "--dry-run"), "entities must be a list", "dict")


@pytest.mark.parametrize(
    ("vector", "named"),
    [
        ([math.nan, 0.0, 0.0], "vector.0=nan"),
        ([0.0, math.inf, 0.0], "vector.1=inf"),
        ([0.0, "x", 0.0], "vector.1='x'"),
    ],
)
def test_import_of_bad_vectors(env: dict[str, str], tmp_path: Path, vector: list[object], named: str) -> None:
    path = _export(tmp_path, json.dumps({**RECORD, "vector": vector}))
    assert_usage_error(run(env, "import", str(path), "--dry-run"), "export.jsonl:2", named)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"access_count": 10**30}, "access_count"),
        ({"occurrences": 0}, "occurrences"),
        ({"importance": math.nan}, "importance"),
        ({"created_at": 1e30}, "created_at"),
    ],
)
def test_import_of_out_of_range_fields(
    env: dict[str, str], tmp_path: Path, fields: dict[str, object], named: str
) -> None:
    path = _export(tmp_path, json.dumps({**RECORD, **fields}))
    assert_usage_error(run(env, "import", str(path), "--dry-run"), f"export.jsonl:2: {named}")
