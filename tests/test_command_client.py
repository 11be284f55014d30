"""The command-hook client (clarity/hooks/command_client.py) as Claude Code runs it: a separate
process, a real loopback server. Also the stub at its old path (clarity/mcp/hook_analyzer.py),
which hooks installed before the move still run: it must behave exactly like the client.

Every failure mode must end the same way (exit 0, nothing on stdout or stderr, quickly),
because Claude Code shows a command hook's output to the model and its failures to the user.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
CLIENT = REPO / "clarity" / "hooks" / "command_client.py"
STUB = REPO / "clarity" / "mcp" / "hook_analyzer.py"  # the old path, in settings written before the move
FIXTURES = REPO / "tests" / "fixtures" / "hook_payloads"
EVENT_FIXTURES = {
    "SessionStart": "SessionStart.json",
    "UserPromptSubmit": "UserPromptSubmit.json",
    "PreToolUse": "PreToolUse.json",
    "PostToolUse": "PostToolUse.json",
    "PostToolUseFailure": "PostToolUseFailure.json",
    "Stop": "Stop.json",
    "SessionEnd": "SessionEnd.json",
}
CONTEXT_REPLY = {
    "hookSpecificOutput": {"hookEventName": "UserPromptSubmit", "additionalContext": "remembered"}
}


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Daemon:
    """A stand-in for the daemon's /hooks endpoints: records requests, answers as told."""

    url: str = ""
    requests: list[Request] = field(default_factory=list)
    status: int = 200
    reply: bytes = json.dumps(CONTEXT_REPLY).encode()
    delay: float = 0.0
    trickle: bool = False  # send the reply one byte every 0.2 s


def _handler(daemon: Daemon) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            daemon.requests.append(Request(self.command, self.path, headers, body))
            if daemon.delay:
                time.sleep(daemon.delay)
            try:
                self.send_response(daemon.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(daemon.reply)))
                self.end_headers()
                if daemon.trickle:
                    for byte in daemon.reply:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(0.2)
                else:
                    self.wfile.write(daemon.reply)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    state = Daemon()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Run:
    returncode: int
    stdout: bytes
    stderr: bytes
    seconds: float


_ROOT: dict[str, Path] = {}


@pytest.fixture(autouse=True)
def _own_storage_root(tmp_path: Path) -> None:
    _ROOT["path"] = tmp_path / "client-root"


def run_client(
    *args: str,
    stdin: bytes | None = b"",
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    python_flags: tuple[str, ...] = (),
    script: Path = CLIENT,
) -> Run:
    """Run the script by path, as a command hook does, in an environment without CLARITY_*
    from the developer's shell and with a proxy configured that must never be used."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CLARITY_")}
    base.update({"http_proxy": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"})
    # The client keeps its marks and kept events under the storage root: the test's own, never
    # the user's (a timeout in one test would make the next ones skip the daemon).
    base["CLARITY_STORAGE__ROOT"] = str(_ROOT["path"])
    base.update(env or {})
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, *python_flags, str(script), *args],
        input=stdin,
        capture_output=True,
        env=base,
        cwd=cwd,
        timeout=30,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)


def assert_silent(run: Run) -> None:
    assert (run.returncode, run.stdout, run.stderr) == (0, b"", b"")


# --- (a) a working daemon ------------------------------------------------------------------


def test_posts_the_payload_verbatim_and_prints_the_reply(daemon: Daemon) -> None:
    payload = (FIXTURES / "UserPromptSubmit.json").read_bytes()
    run = run_client(stdin=payload, env={"CLARITY_URL": daemon.url, "CLARITY_TOKEN": "s3cret"})
    assert run.returncode == 0 and run.stderr == b""
    assert run.stdout == daemon.reply
    [request] = daemon.requests
    assert request.method == "POST"
    assert request.path == "/hooks/UserPromptSubmit"
    assert request.body == payload
    assert request.headers["authorization"] == "Bearer s3cret"
    assert request.headers["content-type"] == "application/json"


@pytest.mark.parametrize("event", list(EVENT_FIXTURES))
def test_each_real_event_goes_to_its_endpoint(daemon: Daemon, event: str) -> None:
    payload = (FIXTURES / EVENT_FIXTURES[event]).read_bytes()
    run = run_client(stdin=payload, env={"CLARITY_URL": daemon.url + "/"})
    assert run.returncode == 0 and run.stdout == daemon.reply
    assert [r.path for r in daemon.requests] == [f"/hooks/{event}"]
    assert "authorization" not in daemon.requests[0].headers  # no token configured


def test_port_from_clarity_server_port(daemon: Daemon) -> None:
    port = daemon.url.rsplit(":", 1)[1]
    run = run_client(stdin=b'{"hook_event_name": "Stop"}', env={"CLARITY_SERVER__PORT": port})
    assert run.returncode == 0 and run.stdout == daemon.reply
    assert [r.path for r in daemon.requests] == ["/hooks/Stop"]


def test_url_flag_wins_over_environment(daemon: Daemon) -> None:
    run = run_client(
        f"--url={daemon.url}",
        stdin=b'{"hook_event_name": "Stop"}',
        env={"CLARITY_URL": f"http://127.0.0.1:{_free_port()}"},
    )
    assert run.stdout == daemon.reply and len(daemon.requests) == 1


@pytest.mark.parametrize(
    ("status", "reply"),
    [
        (200, b"{}"),
        (200, b""),
        (200, b"[1, 2]"),
        (200, b"plain text context"),
        (500, json.dumps(CONTEXT_REPLY).encode()),
        (404, b'{"detail": "Not Found"}'),
    ],
)
def test_empty_error_and_non_json_replies_print_nothing(daemon: Daemon, status: int, reply: bytes) -> None:
    daemon.status, daemon.reply = status, reply
    run = run_client(stdin=b'{"hook_event_name": "PreToolUse"}', env={"CLARITY_URL": daemon.url})
    assert_silent(run)
    assert len(daemon.requests) == 1


# --- (b) (c) daemon down or slow -------------------------------------------------------------


def test_nothing_listening_is_silent_and_fast() -> None:
    payload = (FIXTURES / "PreToolUse.json").read_bytes()
    run = run_client(stdin=payload, env={"CLARITY_URL": f"http://127.0.0.1:{_free_port()}"})
    assert_silent(run)
    assert run.seconds < 1.0


@pytest.mark.parametrize("how", ["env", "flag"])
def test_slow_daemon_is_abandoned_at_the_timeout(daemon: Daemon, how: str) -> None:
    daemon.delay = 3.0
    env = {"CLARITY_URL": daemon.url}
    args: tuple[str, ...] = ()
    if how == "env":
        env["CLARITY_HOOK_TIMEOUT"] = "0.5"
    else:
        args = ("--timeout=0.5",)
    run = run_client(*args, stdin=b'{"hook_event_name": "UserPromptSubmit"}', env=env)
    assert_silent(run)
    assert len(daemon.requests) == 1
    assert run.seconds < 0.5 + 1.0


def test_trickling_reply_is_cut_at_the_deadline(daemon: Daemon) -> None:
    """Each byte arrives well inside the socket timeout; only an overall deadline stops it."""
    daemon.trickle = True
    run = run_client("--timeout=1", stdin=b'{"hook_event_name": "Stop"}', env={"CLARITY_URL": daemon.url})
    assert_silent(run)
    assert run.seconds < 1.0 + 1.0


def test_default_timeout_is_two_seconds(daemon: Daemon) -> None:
    daemon.delay = 4.0
    run = run_client(stdin=b'{"hook_event_name": "Stop"}', env={"CLARITY_URL": daemon.url})
    assert_silent(run)
    assert 1.9 < run.seconds < 3.0


# --- (d) bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stdin",
    [b"", b"not json", b"[1]", b'{"no_event": true}', b'{"hook_event_name": "../admin"}', b"\xff\xfe"],
)
def test_garbage_on_stdin_is_silent(daemon: Daemon, stdin: bytes) -> None:
    assert_silent(run_client(stdin=stdin, env={"CLARITY_URL": daemon.url}))
    assert daemon.requests == []


def test_unknown_flag_is_silent(daemon: Daemon) -> None:
    assert_silent(
        run_client("--frobnicate", stdin=b'{"hook_event_name": "Stop"}', env={"CLARITY_URL": daemon.url})
    )
    assert daemon.requests == []


def test_debug_explains_failures_on_stderr() -> None:
    run = run_client("--debug", stdin=b"not json")
    assert run.returncode == 0 and run.stdout == b""
    assert b"not JSON" in run.stderr


# --- (e) flag forms ----------------------------------------------------------------------------


def _sent(daemon: Daemon) -> dict[str, Any]:
    [request] = daemon.requests
    return json.loads(request.body)


def _manual(cwd: Path, event: str, **fields: Any) -> dict[str, Any]:
    """The whole event a flag form sends: the common fields, session "manual", and ``fields``."""
    return {
        "session_id": "manual",
        "transcript_path": "",
        "cwd": str(cwd),
        "hook_event_name": event,
        **fields,
    }


def test_pre_tool_flags(daemon: Daemon, tmp_path: Path) -> None:
    run = run_client(
        "--pre-tool",
        "--tool=Bash",
        '--args={"command": "ls -la"}',
        env={"CLARITY_URL": daemon.url},
        cwd=tmp_path,
    )
    assert run.returncode == 0 and run.stdout == daemon.reply
    assert daemon.requests[0].path == "/hooks/PreToolUse"
    assert _sent(daemon) == _manual(
        tmp_path, "PreToolUse", tool_name="Bash", tool_input={"command": "ls -la"}
    )


def test_post_tool_flags_with_separate_values(daemon: Daemon, tmp_path: Path) -> None:
    run = run_client(
        "--post-tool", "--tool", "Bash", "--result", "exit 0", env={"CLARITY_URL": daemon.url}, cwd=tmp_path
    )
    assert run.returncode == 0 and run.stdout == daemon.reply
    assert daemon.requests[0].path == "/hooks/PostToolUse"
    sent = _sent(daemon)
    assert (sent["hook_event_name"], sent["tool_name"], sent["tool_response"]) == (
        "PostToolUse",
        "Bash",
        "exit 0",
    )
    assert (sent["session_id"], sent["cwd"], sent["transcript_path"]) == ("manual", str(tmp_path), "")


def test_prompt_submit_flags(daemon: Daemon, tmp_path: Path) -> None:
    run = run_client(
        "--prompt-submit", "--prompt=how do I run the tests?", env={"CLARITY_URL": daemon.url}, cwd=tmp_path
    )
    assert run.returncode == 0 and run.stdout == daemon.reply
    assert daemon.requests[0].path == "/hooks/UserPromptSubmit"
    assert _sent(daemon) == _manual(tmp_path, "UserPromptSubmit", prompt="how do I run the tests?")


@pytest.mark.parametrize(
    "args",
    [
        ("--pre-tool", "--tool=Bash", "--args=not json"),
        ("--pre-tool", "--tool=Bash", "--args=[1]"),
        ("--pre-tool",),
        ("--pre-tool", "--prompt-submit", "--tool=Bash"),
        ("--post-tool", "--tool"),
    ],
)
def test_bad_flag_forms_are_silent(daemon: Daemon, args: tuple[str, ...]) -> None:
    assert_silent(run_client(*args, env={"CLARITY_URL": daemon.url}))
    assert daemon.requests == []


# --- (f) (g) help and the off switch -----------------------------------------------------------


@pytest.mark.parametrize(("script", "name"), [(CLIENT, "command_client.py"), (STUB, "hook_analyzer.py")])
def test_help(daemon: Daemon, script: Path, name: str) -> None:
    """The usage names the file that was run: the old path's stub prints what the old file did."""
    run = run_client("--help", env={"CLARITY_URL": daemon.url}, script=script)
    assert run.returncode == 0 and run.stderr == b""
    text = run.stdout.decode()
    assert text.startswith(f"usage: {name} [--url=BASE]")
    assert f"\n       {name} --pre-tool --tool=NAME" in text and "PROG" not in text
    for flag in ("--pre-tool", "--post-tool", "--prompt-submit", "CLARITY_DISABLED", "CLARITY_HOOK_TIMEOUT"):
        assert flag in text
    assert daemon.requests == []


@pytest.mark.parametrize("args", [(), ("--prompt-submit", "--prompt=x"), ("--help",)])
def test_disabled_does_nothing(daemon: Daemon, args: tuple[str, ...]) -> None:
    payload = (FIXTURES / "UserPromptSubmit.json").read_bytes()
    run = run_client(*args, stdin=payload, env={"CLARITY_URL": daemon.url, "CLARITY_DISABLED": "1"})
    assert_silent(run)
    assert daemon.requests == []


# --- (h) stdlib only ---------------------------------------------------------------------------


def _imported(run: Run) -> set[str]:
    """Module names from ``-X importtime`` output (the script itself writes nothing to stderr)."""
    names = set()
    for line in run.stderr.decode().splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


@pytest.mark.parametrize("script", [CLIENT, STUB], ids=["client", "old path"])
@pytest.mark.parametrize("mode", ["help", "round trip"])
def test_imports_nothing_from_clarity(daemon: Daemon, mode: str, script: Path) -> None:
    args = ("--help",) if mode == "help" else ()
    run = run_client(
        *args,
        stdin=b'{"hook_event_name": "Stop"}',
        env={"CLARITY_URL": daemon.url},
        python_flags=("-X", "importtime"),
        script=script,
    )
    assert run.returncode == 0 and run.stdout
    modules = _imported(run)
    assert "encodings" in modules  # importtime output was captured
    if mode == "round trip":
        assert "socket" in modules  # it did post
    assert not {m for m in modules if m == "clarity" or m.startswith("clarity.")}
    # nothing heavy sneaks in either: json (re, enum) and http.client (email, ssl) stay off the hot path
    heavy = {
        "typing",
        "argparse",
        "pydantic",
        "httpx",
        "urllib.request",
        "asyncio",
        "json",
        "http.client",
        "ssl",
    }
    assert not modules & heavy


def test_the_clients_event_list_is_clarity_hooks_own() -> None:
    """The client holds the list (it must stay stdlib-only; importing clarity costs start-up on
    every hook), clarity.hooks.events reads it from there, and it names every real payload."""
    from clarity.hooks import command_client
    from clarity.hooks.events import EVENTS

    assert command_client.EVENTS is EVENTS
    assert set(EVENTS) == set(EVENT_FIXTURES)
    for event, name in EVENT_FIXTURES.items():
        assert json.loads((FIXTURES / name).read_bytes())["hook_event_name"] == event


# --- (i) the old path ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "stdin", "setup"),
    [
        ((), "UserPromptSubmit.json", ""),
        (("--timeout=5",), "PreToolUse.json", "token"),
        (("--prompt-submit", "--prompt=hello"), None, ""),
        ((), "Stop.json", "error"),
        (("--debug",), "Stop.json", "down"),
        (("--debug",), "not json", ""),
        (("--frobnicate",), "Stop.json", ""),
        ((), "Stop.json", "disabled"),
    ],
)
def test_the_old_path_behaves_exactly_like_the_client(
    daemon: Daemon, args: tuple[str, ...], stdin: str | None, setup: str, tmp_path: Path
) -> None:
    """Same stdout, stderr and exit code, and the same request reaches the daemon."""
    body = (FIXTURES / stdin).read_bytes() if stdin and stdin.endswith(".json") else (stdin or "").encode()
    env = {"CLARITY_URL": daemon.url}
    if setup == "token":
        env["CLARITY_TOKEN"] = "s3cret"
    elif setup == "error":
        daemon.status = 500
    elif setup == "down":
        env["CLARITY_URL"] = f"http://127.0.0.1:{_free_port()}"
    elif setup == "disabled":
        env["CLARITY_DISABLED"] = "1"
    runs = []
    for script in (CLIENT, STUB):
        daemon.requests.clear()
        run = run_client(*args, stdin=body, env=env, cwd=tmp_path, script=script)
        runs.append(
            ((run.returncode, run.stdout, run.stderr), [(r.path, r.body, r.headers) for r in daemon.requests])
        )
    assert runs[0] == runs[1]
    if setup == "" and stdin == "UserPromptSubmit.json":
        assert runs[1][0] == (0, daemon.reply, b"")


def test_the_old_path_fails_open_without_the_client(tmp_path: Path) -> None:
    """A half-removed install (the stub left, the client gone) is a silent no-op, not a traceback."""
    stub = tmp_path / "clarity" / "mcp" / "hook_analyzer.py"
    stub.parent.mkdir(parents=True)
    stub.write_bytes(STUB.read_bytes())
    payload = (FIXTURES / "Stop.json").read_bytes()
    assert_silent(run_client(stdin=payload, script=stub, python_flags=("-S",)))


def test_a_daemon_that_never_answers_is_skipped_for_half_a_minute(daemon: Daemon, tmp_path: Path) -> None:
    """A hung daemon cost every hook its whole budget (about 10 s before a session's first model
    request). After one timeout the hooks skip it until BREAKER_SECONDS pass or it answers."""
    root = tmp_path / "root"
    (root / "app-data").mkdir(parents=True)
    mark = root / "app-data" / "hooks-unanswered"
    env = {"CLARITY_URL": daemon.url, "CLARITY_STORAGE__ROOT": str(root)}
    prompt = b'{"hook_event_name": "UserPromptSubmit"}'
    daemon.delay = 3.0
    assert_silent(run_client("--timeout=0.5", stdin=prompt, env=env))
    assert len(daemon.requests) == 1 and mark.exists()
    daemon.delay = 0.0
    assert_silent(run_client("--timeout=0.5", stdin=prompt, env=env))
    assert len(daemon.requests) == 1  # skipped: the daemon was not asked
    stale = time.time() - 60
    os.utime(mark, (stale, stale))  # the half minute is over
    answered = run_client("--timeout=0.5", stdin=prompt, env=env)
    assert answered.stdout and len(daemon.requests) == 2
    assert not mark.exists()  # an answer lifts it


def test_no_mark_is_made_where_no_daemon_ever_kept_its_files(daemon: Daemon, tmp_path: Path) -> None:
    daemon.delay = 3.0
    root = tmp_path / "never-started"
    env = {"CLARITY_URL": daemon.url, "CLARITY_STORAGE__ROOT": str(root)}
    for event in (b"UserPromptSubmit", b"Stop"):  # a timed-out Stop was taken: not kept either
        assert_silent(run_client("--timeout=0.5", stdin=b'{"hook_event_name": "%s"}' % event, env=env))
    assert not root.exists()


def test_learning_events_are_kept_while_no_daemon_answers(daemon: Daemon, tmp_path: Path) -> None:
    """As plugin/scripts/hook.sh does: a tool's result or a session's end that finds nobody
    listening, or meets the breaker, is kept for the daemon to learn from later
    (clarity/hooks/spool.py reads the file); what is answered now is not kept."""
    from clarity.hooks import command_client, spool

    root = tmp_path / "root"
    pending = root / "app-data" / "pending-hooks.jsonl"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]  # nothing listens here once the socket closes
    down = {"CLARITY_URL": f"http://127.0.0.1:{free}", "CLARITY_STORAGE__ROOT": str(root)}
    kept = []
    for event in ("PostToolUse", "PostToolUseFailure", "Stop", "SessionEnd"):
        payload = (FIXTURES / EVENT_FIXTURES[event]).read_bytes()
        assert_silent(run_client(stdin=payload, env=down))
        kept.append(json.loads(payload))
    for event in ("SessionStart", "UserPromptSubmit", "PreToolUse"):
        assert_silent(run_client(stdin=(FIXTURES / EVENT_FIXTURES[event]).read_bytes(), env=down))
    lines = pending.read_bytes().splitlines()
    assert [json.loads(line) for line in lines] == kept  # whole, in order, one a line
    assert oct(pending.stat().st_mode & 0o777) == "0o600"

    # A daemon that takes the event and does not answer in time has it: not kept (it would be
    # learned twice); the breaker then keeps the next one without asking the daemon.
    daemon.delay = 3.0
    hung = {"CLARITY_URL": daemon.url, "CLARITY_STORAGE__ROOT": str(root)}
    stop = (FIXTURES / EVENT_FIXTURES["Stop"]).read_bytes()
    assert_silent(run_client("--timeout=0.5", stdin=stop, env=hung))
    assert len(daemon.requests) == 1 and len(pending.read_bytes().splitlines()) == len(kept)
    assert_silent(run_client("--timeout=0.5", stdin=stop, env=hung))
    assert len(daemon.requests) == 1 and len(pending.read_bytes().splitlines()) == len(kept) + 1

    # An answered event is not kept.
    daemon.delay = 0.0
    (root / "app-data" / "hooks-unanswered").unlink()
    assert run_client(stdin=stop, env=hung).returncode == 0 and len(daemon.requests) == 2
    assert len(pending.read_bytes().splitlines()) == len(kept) + 1

    # The same names and cap as the daemon's reader.
    assert set(command_client.KEPT_EVENTS) == spool.KEPT_EVENTS
    assert (
        command_client.PENDING_MAX_BYTES == spool.MAX_BYTES
        and command_client.PENDING_FILE == spool.PENDING_FILE
    )


def test_keeping_stops_at_the_cap(tmp_path: Path) -> None:
    root = tmp_path / "root"
    pending = root / "app-data" / "pending-hooks.jsonl"
    pending.parent.mkdir(parents=True)
    from clarity.hooks.command_client import PENDING_MAX_BYTES

    pending.write_bytes(b"x" * (PENDING_MAX_BYTES + 1))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    env = {"CLARITY_URL": f"http://127.0.0.1:{free}", "CLARITY_STORAGE__ROOT": str(root)}
    assert_silent(run_client(stdin=(FIXTURES / EVENT_FIXTURES["Stop"]).read_bytes(), env=env))
    assert pending.stat().st_size == PENDING_MAX_BYTES + 1
