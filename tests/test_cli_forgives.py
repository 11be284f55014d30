"""A CLI that forgives (issue 25): the commands a newcomer types in the first hour.

Everything runs for real: a daemon on a port that is not the configured one (as after
`clarity serve --port N`), the `clarity` CLI as a subprocess, the REST API, the MCP SDK client
over streamable HTTP and through the stdio shim, and the dashboard.

- client commands find the daemon of their storage root through its lock file, `--url` or
  `CLARITY_URL`; `status` names the URL, the dashboard and the pause state, and never calls a
  daemon that answers hung;
- `doctor` prints a `claude mcp add` line with this daemon's URL and the project header;
- the 8-character ids `list` shows work wherever an id is taken; an ambiguous prefix names
  its candidates;
- `--scope` words that are neither keywords nor existing scopes are refused with the list;
- `clarity store -` and `--file` read the content, with the limit and binary input named;
- validation errors use the command's flags, not the API's field names;
- no escape codes reach a pipe even under FORCE_COLOR.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import httpx2
import pytest
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from clarity.models import MAX_CONTENT_CHARS

from .daemon_util import Daemon, free_port


def clarity(
    env: dict[str, str], *args: str, cwd: Path | None = None, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "clarity", *args],
        env={**env, "COLUMNS": "200"},
        cwd=cwd,
        input=stdin.decode("latin-1") if stdin is not None else None,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="latin-1",
        timeout=120,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    return " ".join((result.stderr + result.stdout).split())


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon started on a port of its own, as `clarity serve --port N` would."""
    with Daemon(tmp_path_factory.mktemp("forgives-root"), free_port()).running(ready=True) as running:
        yield running


@pytest.fixture
def env(daemon: Daemon, tmp_path: Path) -> dict[str, str]:
    """The same storage root, but configured for another port where nothing listens: only the
    lock file says where the daemon is. HOME is empty, so no Claude Code settings are found."""
    home = tmp_path / "home"
    home.mkdir()
    environ = {**daemon.env(), "CLARITY_SERVER__PORT": str(free_port()), "HOME": str(home)}
    environ.pop("CLAUDE_CONFIG_DIR", None)
    return environ


@pytest.fixture
def stranger(daemon: Daemon, tmp_path: Path) -> dict[str, str]:
    """Another storage root and another port: the daemon is reachable only by naming its URL."""
    return {
        **daemon.env(),
        "CLARITY_STORAGE__ROOT": str(tmp_path / "other-root"),
        "CLARITY_SERVER__PORT": str(free_port()),
        "MEMORY_CONFIG_PATH": str(tmp_path / "config.json"),
    }


def store(env: dict[str, str], text: str, *flags: str) -> str:
    result = clarity(env, "store", text, "--scope", "global", "--json", *flags)
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["id"])


def exists(daemon: Daemon, memory_id: str) -> bool:
    return daemon.api("GET", f"/memories/{memory_id}").status_code == 200


# -- finding the daemon ---------------------------------------------------------------------


def test_client_commands_find_the_daemon_through_the_lock_file(daemon: Daemon, env: dict[str, str]) -> None:
    memory_id = store(env, f"found through the lock file {uuid.uuid4()}")
    assert exists(daemon, memory_id)
    listed = clarity(env, "list", "--scope", "all", "--json")
    assert listed.returncode == 0 and memory_id in listed.stdout


def test_status_shows_the_url_the_dashboard_and_the_pause_state(daemon: Daemon, env: dict[str, str]) -> None:
    shown = clarity(env, "status")
    text = one_line(shown)
    assert shown.returncode == 0, text
    assert f"clarity daemon at {daemon.url}: ready" in text
    assert f"dashboard: {daemon.url}/" in text and "learning: on" in text
    assert "kill" not in text
    paused = clarity(env, "pause", "--global")
    assert paused.returncode == 0, paused.stderr
    try:
        text = one_line(clarity(env, "status"))
        assert "learning: paused everywhere" in text and "clarity resume --global" in text
        report = json.loads(clarity(env, "status", "--json").stdout)
        assert report["url"] == daemon.url and report["dashboard"] == f"{daemon.url}/"
        assert report["paused"]["everywhere"] and report["paused"]["this_project"]
    finally:
        assert clarity(env, "resume", "--global").returncode == 0


def test_status_with_a_wrong_url_points_at_the_daemon_and_never_at_kill(
    daemon: Daemon, env: dict[str, str]
) -> None:
    wrong = f"http://127.0.0.1:{free_port()}"
    shown = clarity({**env, "CLARITY_URL": wrong}, "status")
    text = one_line(shown)
    assert shown.returncode == 1
    assert f"answers at {daemon.url}, not at {wrong}" in text and f"--url {daemon.url}" in text
    assert "kill" not in text


def test_url_flag_and_clarity_url_reach_a_daemon_of_another_root(
    daemon: Daemon, stranger: dict[str, str]
) -> None:
    nowhere = clarity(stranger, "stats")
    assert nowhere.returncode == 1 and "not reachable" in one_line(nowhere)
    by_flag = clarity(stranger, "stats", "--json", "--url", daemon.url)
    assert by_flag.returncode == 0, by_flag.stderr
    by_env = clarity({**stranger, "CLARITY_URL": daemon.url + "/"}, "status")
    assert by_env.returncode == 0 and f"clarity daemon at {daemon.url}: ready" in one_line(by_env)
    bad = clarity(stranger, "list", "--url", "ftp:/nowhere")
    assert bad.returncode == 2 and "--url" in one_line(bad) and "http://HOST:PORT" in one_line(bad)


def test_a_named_url_that_does_not_answer_starts_no_daemon_elsewhere(
    stranger: dict[str, str], tmp_path: Path
) -> None:
    wrong = f"http://127.0.0.1:{free_port()}"
    result = clarity({**stranger, "CLARITY_URL": wrong}, "backup", str(tmp_path / "backup.tar.gz"))
    assert result.returncode == 1 and f"no Clarity daemon answers at {wrong}" in one_line(result)
    assert not Path(stranger["CLARITY_STORAGE__ROOT"], "clarity.lock").exists()  # nothing started


def test_doctor_prints_an_mcp_command_for_this_daemon(
    daemon: Daemon, env: dict[str, str], tmp_path: Path
) -> None:
    project = tmp_path / "my project"
    project.mkdir()
    result = clarity(env, "doctor", "--json", cwd=project)
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert checks["daemon"]["status"] == "ok" and f"dashboard {daemon.url}/" in checks["daemon"]["detail"]
    fix = checks["mcp"]["fix"]
    assert f"claude mcp add --transport http clarity {daemon.url}/mcp" in fix
    assert f"--header 'X-Clarity-Project: {project}'" in fix
    assert f"clarity hooks install --scope user --url {daemon.url}" in checks["hooks"]["fix"]
    text = clarity(env, "doctor", cwd=project).stdout
    assert f"{daemon.url}/mcp --header 'X-Clarity-Project: {project}'" in text  # one line, not wrapped


# -- id prefixes ----------------------------------------------------------------------------


def test_delete_takes_the_short_id_that_list_shows(daemon: Daemon, env: dict[str, str]) -> None:
    memory_id = store(env, f"delete me by my short id {uuid.uuid4()}")
    listed = clarity(env, "list", "--scope", "global", "--limit", "100")
    assert memory_id[:8] in listed.stdout
    deleted = clarity(env, "delete", memory_id[:8])
    assert deleted.returncode == 0, deleted.stderr
    assert f"deleted: {memory_id}" in deleted.stdout and not exists(daemon, memory_id)
    again = clarity(env, "delete", memory_id[:8])
    assert again.returncode == 1 and f"no memory with id {memory_id[:8]}" in one_line(again)
    short = clarity(env, "delete", memory_id[:7])
    assert short.returncode == 1 and "nor its first 8+ hex characters" in one_line(short)


def _import(daemon: Daemon, *ids: str) -> None:
    now = "2025-01-01T00:00:00Z"
    records = [
        {
            "id": memory_id,
            "content": f"imported {memory_id}",
            "memory_type": "fact",
            "scope": "global",
            "created_at": now,
            "updated_at": now,
            "content_hash": "0" * 64,
        }
        for memory_id in ids
    ]
    response = daemon.api("POST", "/import", json={"memories": records})
    assert response.status_code == 200, response.text


def test_an_ambiguous_prefix_names_its_candidates(daemon: Daemon, env: dict[str, str]) -> None:
    stem = uuid.uuid4().hex[:8]
    first, second = f"{stem}-1000-4000-8000-000000000001", f"{stem}-2000-4000-8000-000000000002"
    _import(daemon, first, second)
    refused = clarity(env, "delete", stem)
    text = one_line(refused)
    assert refused.returncode == 1 and "is the start of 2 memory ids" in text
    assert first in text and second in text and exists(daemon, first) and exists(daemon, second)
    rest = daemon.api("GET", f"/memories/{stem.upper()}")
    assert rest.status_code == 400 and first in rest.json()["error"]
    assert clarity(env, "delete", f"{stem}-2").returncode == 0  # one more character decides
    assert exists(daemon, first) and not exists(daemon, second)


def test_rest_and_dashboard_take_a_prefix(daemon: Daemon, env: dict[str, str]) -> None:
    memory_id = store(env, f"reachable by prefix {uuid.uuid4()}")
    got = daemon.api("GET", f"/memories/{memory_id[:8]}")
    assert got.status_code == 200 and got.json()["id"] == memory_id
    patched = daemon.api("PATCH", f"/memories/{memory_id.replace('-', '')[:12]}", json={"importance": 0.9})
    assert patched.status_code == 200 and patched.json()["importance"] == 0.9
    page = httpx.get(f"{daemon.url}/memory/{memory_id[:8]}", timeout=30)
    assert page.status_code == 200 and memory_id in page.text
    assert daemon.api("DELETE", f"/memories/{memory_id[:10]}").json() == {"id": memory_id, "deleted": True}
    assert daemon.api("GET", "/memories/0123456g").status_code == 400


@asynccontextmanager
async def _http_mcp(daemon: Daemon) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(timeout=60) as http,
        Client(streamable_http_client(f"{daemon.url}/mcp", http_client=http)) as client,
    ):
        yield client


@asynccontextmanager
async def _stdio_mcp(stranger: dict[str, str], daemon: Daemon) -> AsyncIterator[Client]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "clarity", "mcp", "--url", daemon.url],
        env={**stranger, "PATH": os.environ.get("PATH", "")},
    )
    async with Client(params) as client:
        yield client


@pytest.mark.parametrize("transport", ["http", "stdio shim"])
def test_mcp_update_and_delete_take_a_prefix(
    daemon: Daemon, env: dict[str, str], stranger: dict[str, str], transport: str
) -> None:
    memory_id = store(env, f"mcp by prefix {transport} {uuid.uuid4()}")

    async def main() -> None:
        session = _http_mcp(daemon) if transport == "http" else _stdio_mcp(stranger, daemon)
        async with session as client:
            updated = await client.call_tool(
                "update_memory", {"memory_id": memory_id[:8], "importance": 0.8, "detail": True}
            )
            assert not updated.is_error, updated.content
            assert updated.structured_content["id"] == memory_id
            deleted = await client.call_tool("delete_memory", {"memory_id": memory_id[:9]})
            assert not deleted.is_error and deleted.structured_content == {"id": memory_id, "deleted": True}

    anyio.run(main)
    assert not exists(daemon, memory_id)


# -- scope words ----------------------------------------------------------------------------


def test_an_unknown_scope_word_is_refused_with_the_valid_ones(
    daemon: Daemon, env: dict[str, str], tmp_path: Path
) -> None:
    before = daemon.api("GET", "/stats").json()["by_scope"]
    refused = clarity(env, "store", "a typo must not make a scope", "--scope", "projet")
    text = one_line(refused)
    assert refused.returncode == 2, text
    assert "--scope: 'projet' is not a scope; use project, global, or an existing scope: " in text
    assert all(scope in text for scope in list(before)[:8]), text
    assert daemon.api("GET", "/stats").json()["by_scope"] == before
    for command in (["list"], ["search", "anything"], ["forget", "--dry-run"], ["export", "/dev/null"]):
        refused = clarity(env, *command, "--scope", "projet")
        assert (
            refused.returncode == 2
            and "use default, project, global, all, or an existing scope" in one_line(refused)
        )
    notes = tmp_path / "notes.md"
    notes.write_text("- imported into a typo, this note must not make a scope\n", encoding="utf-8")
    refused = clarity(env, "import", str(notes), "--format", "markdown", "--scope", "projet")
    assert refused.returncode == 2 and "use project, global, or an existing scope" in one_line(refused)
    assert daemon.api("GET", "/stats").json()["by_scope"] == before
    project_scope = next(s for s in before if s != "global") if len(before) > 1 else None
    store(env, "so that the global scope exists")
    assert clarity(env, "list", "--scope", "global").returncode == 0
    if project_scope:
        assert clarity(env, "list", "--scope", project_scope).returncode == 0


# -- content from stdin or a file ----------------------------------------------------------


def test_store_reads_stdin_and_files(daemon: Daemon, env: dict[str, str], tmp_path: Path) -> None:
    piped = f"read from stdin {uuid.uuid4()}\nsecond line é"
    result = clarity(env, "store", "-", "--scope", "global", "--json", stdin=piped.encode())
    assert result.returncode == 0, result.stderr
    assert daemon.api("GET", f"/memories/{json.loads(result.stdout)['id']}").json()["content"] == piped
    note = tmp_path / "note.md"
    note.write_text(f"# read from a file {uuid.uuid4()}\n", encoding="utf-8")
    result = clarity(env, "store", "--file", str(note), "--scope", "global", "--json")
    assert result.returncode == 0, result.stderr
    stored = daemon.api("GET", f"/memories/{json.loads(result.stdout)['id']}").json()
    assert stored["content"] == note.read_text().strip()


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"x" * (MAX_CONTENT_CHARS + 1), f"over the limit of {MAX_CONTENT_CHARS}"),
        ("é".encode() * (MAX_CONTENT_CHARS + 1), f"over the limit of {MAX_CONTENT_CHARS}"),
        (b"x" * (4 * MAX_CONTENT_CHARS + 10), f"over the limit of {MAX_CONTENT_CHARS}"),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00", "looks binary"),
        (b"caf\xe9 latin-1", "is not UTF-8 text (byte 0xe9 at offset 3)"),
        (b"  \n\t ", "holds no text"),
    ],
    ids=["chars", "multibyte", "bytes", "binary", "latin-1", "blank"],
)
def test_bad_stdin_or_file_content_is_refused_by_name(
    stranger: dict[str, str], tmp_path: Path, data: bytes, named: str
) -> None:
    """No daemon is needed to refuse these: the content is checked before anything is sent."""
    piped = clarity(stranger, "store", "-", stdin=data)
    assert piped.returncode == 2 and "stdin: " in one_line(piped) and named in one_line(piped)
    path = tmp_path / "input.bin"
    path.write_bytes(data)
    filed = clarity(stranger, "store", "--file", str(path))
    text = one_line(filed)
    assert filed.returncode == 2 and "--file" in text and str(path) in text
    assert named in text, text


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ([], "give the TEXT to remember, `-` to read it from stdin, or --file PATH"),
        (["text", "--file", "x"], "give the TEXT to remember"),
        (["--file", "/nonexistent/x"], "--file: /nonexistent/x is not a regular file"),
        (["--file", "/dev/null"], "--file: /dev/null is not a regular file"),
    ],
)
def test_store_says_where_its_content_comes_from(
    stranger: dict[str, str], args: list[str], named: str
) -> None:
    result = clarity(stranger, "store", *args)
    assert result.returncode == 2 and named in one_line(result), one_line(result)


# -- errors in the command's own words -----------------------------------------------------


@pytest.mark.parametrize(
    ("args", "named", "not_named"),
    [
        (
            ["forget"],
            "give at least one of --scope, --type, --tag, --source, --older-than, --max-importance",
            "memory_types",
        ),
        (["forget", "--older-than", "-1"], "--older-than=-1", "older_than_days"),
        (["store", "x", "--importance", "2"], "--importance=2", " importance=2"),
        (["store", "x", "--tag", " "], "--tag=' ': must not be empty", "tags"),
        (["store", "x", "--type", "gossip"], "--type='gossip'", "memory_type"),
        (["store", "  "], "TEXT=' ': must not be empty", "content"),  # one_line() folds the spaces
        (["list", "--limit", "0"], "--limit=0", " limit=0"),
        (["search", "q", "--mode", "psychic"], "--mode='psychic'", " mode="),
    ],
)
def test_errors_name_the_flags(stranger: dict[str, str], args: list[str], named: str, not_named: str) -> None:
    result = clarity(stranger, *args)
    text = one_line(result)
    assert result.returncode == 2 and named in text and not_named not in text, text


def test_no_escape_codes_reach_a_pipe_even_when_colour_is_forced(stranger: dict[str, str]) -> None:
    result = clarity({**stranger, "FORCE_COLOR": "1", "TTY_COMPATIBLE": "1"}, "forget")
    assert result.returncode == 2 and result.stderr.startswith("error: give at least one of")
    assert "\x1b[" not in result.stderr + result.stdout
