"""What a client command's process imports (issue 25, fast clients): never the model's runtimes
(torch, transformers, sentence-transformers, ONNX Runtime), the MCP SDK, the engines' clients or
the daemon's web stack; and on the commands people type most, not httpx or pydantic-settings
either (70 ms each of a 0.3 s start; scripts/bench/cli_start.py has the timings).

Each command runs for real, as its own ``python -X importtime -m clarity ...`` process against a
real daemon, and the modules are read from the import-time report: no timing is asserted here.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .daemon_util import Daemon, free_port

NEVER = {
    "torch",
    "transformers",
    "sentence_transformers",
    "onnxruntime",
    "tokenizers",
    "mcp",
    "qdrant_client",
    "qdrant_edge",
    "starlette",
    "uvicorn",
}
NOT_ON_THE_COMMON_PATH = {"httpx", "pydantic_settings"}

# (arguments, whether NOT_ON_THE_COMMON_PATH is checked too). `hooks` is another module's, which
# reads the settings in full; `doctor` runs many checks: both are held to NEVER alone.
COMMANDS: list[tuple[tuple[str, ...], bool]] = [
    (("--help",), True),
    (("version",), True),
    (("status",), True),
    (("stats",), True),
    (("list",), True),
    (("search", "which port does the gateway use"), True),
    (("store", "The gateway listens on port 8443 (imports test)"), True),
    (("delete", "{prefix}"), True),
    (("forget", "--dry-run", "--older-than", "1000"), True),
    (("pause",), True),
    (("resume",), True),
    (("export", "{work}/export.jsonl"), True),
    (("import", "--dry-run", "{work}/notes.md"), True),
    (("import", "{work}/notes.md"), True),
    (("import", "--from", "claude-code", "--dry-run"), True),
    (("backup", "{work}/backup.tar.gz"), True),
    (("service", "status"), True),
    (("service", "start"), True),
    (("stop", "--timeout", "1"), True),  # on a storage root no daemon holds: says so
    (("doctor",), False),
    (("hooks", "status"), False),
]


def imported(stderr: str) -> set[str]:
    """Top-level package names from ``-X importtime`` lines."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with Daemon(tmp_path_factory.mktemp("imports-root"), free_port()).running(ready=True) as running:
        yield running


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project (a git repository) with a Markdown file to import, and an empty HOME."""
    work = tmp_path_factory.mktemp("imports-work")
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    (work / "notes.md").write_text("# Build\n\nRun `make test` first.\n", encoding="utf-8")
    (work / "home").mkdir()
    return work


@pytest.mark.parametrize(("args", "strict"), COMMANDS, ids=[" ".join(a) for a, _ in COMMANDS])
def test_a_client_command_imports_nothing_heavy(
    daemon: Daemon, work: Path, args: tuple[str, ...], strict: bool
) -> None:
    env = {**daemon.env(), "HOME": str(work / "home"), "COLUMNS": "200"}
    env.pop("CLAUDE_CONFIG_DIR", None)
    if args[0] == "stop":  # another root and port: nothing to stop, said in one line
        env.update(CLARITY_STORAGE__ROOT=str(work / "no-daemon-here"), CLARITY_SERVER__PORT=str(free_port()))
    prefix = ""
    if "{prefix}" in args:
        stored = daemon.api("POST", "/memories", project=str(work), json={"content": f"to delete {args}"})
        prefix = stored.json()["id"][:8]
    argv = [a.format(prefix=prefix, work=work) for a in args]
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "clarity", *argv],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    report = "\n".join(line for line in run.stderr.splitlines() if not line.startswith("import time:"))
    assert run.returncode in ((0, 1) if args[0] == "doctor" else (0,)), report + run.stdout
    modules = imported(run.stderr)
    assert "clarity" in modules and "typer" in modules  # the report was read
    assert not modules & NEVER, sorted(modules & NEVER)
    if strict:
        assert not modules & NOT_ON_THE_COMMON_PATH, sorted(modules & NOT_ON_THE_COMMON_PATH)
