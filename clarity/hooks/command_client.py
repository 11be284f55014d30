#!/usr/bin/env python3
"""Clarity's command-hook client: hand one Claude Code hook event to the Clarity daemon.

Claude Code starts this script on every hook firing and waits for it, so two rules shape it:

* It must start in tens of milliseconds. It is run by path (``python -S .../command_client.py``),
  imports only the standard library, never the ``clarity`` package (whose imports pull in
  pydantic, torch ...), and imports the HTTP client only once it knows it will post.
  ``clarity.hooks.events`` imports its event list from here, so that list is kept once.
* It fails open. Whatever goes wrong (daemon down or slow, bad input, an error reply) it exits
  0 and prints nothing, because any output would reach Claude Code and a non-zero exit shows
  up as a hook error. Only ``--debug`` explains failures, on stderr.

The daemon does the work: this script posts the event JSON, byte for byte as Claude Code sent
it, to ``{base}/hooks/<hook_event_name>`` (the same request an ``http`` hook makes) and prints
the reply when it is a non-empty JSON object (Claude Code's hook output schema).

Command hooks installed before this file moved here run ``clarity/mcp/hook_analyzer.py``, a
stub that executes this file unchanged (``clarity hooks install`` rewrites them to this path).
"""

from __future__ import annotations

# No `typing` import: it costs ~5 ms of start-up, and these annotations are never evaluated.
# No top-level `json` either: it pulls in `re` and `enum` (~12 ms); the hot path does without.
import os
import sys

EVENTS = (
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "Stop",
    "SessionEnd",
)
DEFAULT_PORT = "8000"
DEFAULT_TIMEOUT = 2.0

# PROG is the file's name as it was run: this one, or the old path's stub (hook_analyzer.py).
USAGE = """\
usage: PROG [--url=BASE] [--timeout=SECONDS] [--debug]
       PROG --pre-tool --tool=NAME [--args=JSON]
       PROG --post-tool --tool=NAME [--result=TEXT]
       PROG --prompt-submit --prompt=TEXT
       PROG --help

Clarity command hook for Claude Code. Reads the hook event JSON on stdin and posts it to
the Clarity daemon at {base}/hooks/<hook_event_name>; prints the daemon's reply (Claude
Code hook output JSON) when there is one. It always exits 0 and prints nothing when the
daemon is down, slow or answers with an error: Claude Code carries on unchanged.

The flag forms build the event themselves (session_id "manual", cwd = current directory)
for manual tests and legacy hook configurations:
  --pre-tool       PreToolUse with tool_name and tool_input (--args, a JSON object)
  --post-tool      PostToolUse with tool_name and tool_response (--result)
  --prompt-submit  UserPromptSubmit with prompt

options:
  --url=BASE         daemon base URL (default: $CLARITY_URL, else
                     http://127.0.0.1:$CLARITY_SERVER__PORT, port 8000 by default)
  --timeout=SECONDS  give up after this long (default: $CLARITY_HOOK_TIMEOUT, else 2)
  --debug            explain failures on stderr
  -h, --help         show this text

environment:
  CLARITY_URL, CLARITY_SERVER__PORT, CLARITY_TOKEN (sent as a bearer token),
  CLARITY_HOOK_TIMEOUT, CLARITY_DISABLED=1 (do nothing at all)
"""

_MODES = {"--pre-tool": "PreToolUse", "--post-tool": "PostToolUse", "--prompt-submit": "UserPromptSubmit"}
_VALUE_OPTIONS = ("--tool", "--args", "--result", "--prompt", "--url", "--timeout")
_TRUE = ("1", "true", "yes", "on")


class HookFailure(Exception):
    """Anything that ends the run quietly; the message is shown only with ``--debug``."""


class HookTimeout(HookFailure):
    """The daemon took the event but did not answer within the budget."""


# A daemon that accepts and never answers (hung, stopped with SIGSTOP, swapping) made every hook
# wait out its budget: about 10 s before a session's first model request and 20-24 s more per
# session (scripts/bench/session_start.py). After one hook times out, the hooks of the next
# BREAKER_SECONDS skip the daemon, so a hung daemon costs one budget per half minute; the first
# answer lifts it. The mark is a file, as every hook is its own process.
BREAKER_SECONDS = 30.0
BREAKER_FILE = "hooks-unanswered"


def breaker_path() -> str:
    root = os.environ.get("CLARITY_STORAGE__ROOT") or "~/.claude/alunai-clarity"
    return os.path.join(os.path.expanduser(root), "app-data", BREAKER_FILE)


def breaker_open(path: str) -> bool:
    import time

    try:
        return 0 <= time.time() - os.stat(path).st_mtime < BREAKER_SECONDS
    except OSError:
        return False


def trip_breaker(path: str) -> None:
    """Mark the daemon unanswering now; only where its app-data directory already is."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600))
        os.utime(path)
    except OSError:
        pass


def reset_breaker(path: str) -> None:
    try:  # noqa: SIM105 (contextlib is one more import on every hook's start)
        os.unlink(path)
    except OSError:
        pass


# Learning events that find no daemon listening, or meet the breaker (the daemon is not asked),
# are kept in
# <root>/app-data/pending-hooks.jsonl for the daemon to learn from once it answers, exactly as
# plugin/scripts/hook.sh keeps them (clarity/hooks/spool.py reads them; its KEPT_EVENTS and
# MAX_BYTES are these, tested equal). Other events are answered now or not at all.
KEPT_EVENTS = ("PostToolUse", "PostToolUseFailure", "Stop", "SessionEnd")
PENDING_FILE = "pending-hooks.jsonl"
PENDING_MAX_BYTES = 8 * 1_048_576


class NotAnswered(HookFailure):
    """Nothing listens at the daemon's address (or the connection broke before an answer)."""


def keep(body: bytes) -> None:
    """Append the event as one line (JSON has raw newlines only between tokens, where a space
    is the same), private to the user, in one write so concurrent hooks append whole lines."""
    root = os.environ.get("CLARITY_STORAGE__ROOT") or "~/.claude/alunai-clarity"
    folder = os.path.join(os.path.expanduser(root), "app-data")
    path = os.path.join(folder, PENDING_FILE)
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        if os.path.exists(path) and os.path.getsize(path) > PENDING_MAX_BYTES:
            return
        line = body.replace(b"\r", b" ").replace(b"\n", b" ").strip() + b"\n"
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
        descriptor = os.open(path, flags, 0o600)
        try:
            os.write(descriptor, line)
        finally:
            os.close(descriptor)
    except OSError:
        pass


class Options:
    """Parsed command line: bare flags, and ``--name=value`` options keyed by name."""

    def __init__(self) -> None:
        self.flags: set[str] = set()
        self.values: dict[str, str] = {}

    def get(self, name: str, default: str = "") -> str:
        return self.values.get(name, default)


def parse_args(argv: list[str]) -> Options:
    """Hand-rolled rather than argparse: both ``--x=V`` and ``--x V`` forms, and an unknown
    flag must not print argparse's usage error (that would be hook output)."""
    opts = Options()
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in _VALUE_OPTIONS:
            if not eq:
                i += 1
                if i >= len(argv):
                    raise HookFailure(f"{name} needs a value")
                value = argv[i]
            opts.values[name[2:]] = value
        elif arg in ("-h", "--help", "--debug", *_MODES):
            opts.flags.add(arg)
        else:
            raise HookFailure(f"unknown argument {arg!r}")
        i += 1
    return opts


def manual_payload(opts: Options) -> bytes:
    """The event a flag form stands for, shaped like what Claude Code sends."""
    modes = [m for m in _MODES if m in opts.flags]
    if len(modes) != 1:
        raise HookFailure("give exactly one of --pre-tool, --post-tool, --prompt-submit")
    event = _MODES[modes[0]]
    payload: dict[str, object] = {
        "session_id": "manual",
        "transcript_path": "",
        "cwd": os.getcwd(),
        "hook_event_name": event,
    }
    if event == "UserPromptSubmit":
        payload["prompt"] = opts.get("prompt")
    else:
        if not opts.get("tool"):
            raise HookFailure(f"{modes[0]} needs --tool=NAME")
        payload["tool_name"] = opts.get("tool")
        if event == "PreToolUse":
            import json

            try:
                tool_input = json.loads(opts.get("args") or "{}")
            except ValueError as exc:
                raise HookFailure(f"--args is not JSON: {exc}") from None
            if not isinstance(tool_input, dict):
                raise HookFailure("--args must be a JSON object")
            payload["tool_input"] = tool_input
        else:
            payload["tool_response"] = opts.get("result")
    import json

    return json.dumps(payload).encode()


def event_name(body: bytes) -> str:
    """The event named by a Claude Code payload; it becomes the last URL segment.

    Claude Code writes ``"hook_event_name":"PreToolUse"``; a scan finds it without the json
    module. Anything unusual falls back to a full parse. The daemon validates the whole payload.
    """
    key = body.find(b'"hook_event_name"')
    if key >= 0:
        rest = body[key + 17 :].lstrip()
        if rest[:1] == b":":
            rest = rest[1:].lstrip()
            if rest[:1] == b'"':
                scanned = rest[1 : rest.find(b'"', 1)].decode("ascii", "replace")
                if scanned in EVENTS:
                    return scanned
    import json

    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise HookFailure(f"stdin is not JSON: {exc}") from None
    named = payload.get("hook_event_name") if isinstance(payload, dict) else None
    if not isinstance(named, str) or not named.isalnum():
        raise HookFailure("no usable hook_event_name in the payload")
    return named


def base_url(opts: Options) -> str:
    url = opts.get("url") or os.environ.get("CLARITY_URL")
    if not url:
        url = f"http://127.0.0.1:{os.environ.get('CLARITY_SERVER__PORT') or DEFAULT_PORT}"
    return url.rstrip("/")


def timeout_seconds(opts: Options) -> float:
    raw = opts.get("timeout") or os.environ.get("CLARITY_HOOK_TIMEOUT")
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if 0 < value < 3600 else DEFAULT_TIMEOUT


def _split_url(url: str) -> tuple[str, str, int, str]:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise HookFailure(f"bad daemon URL {url!r}")
    hostport, slash, path = rest.partition("/")
    if hostport.startswith("["):  # [::1]:8000
        host, _, port = hostport[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, _, port = hostport.partition(":")
    if not host:
        raise HookFailure(f"bad daemon URL {url!r}")
    default = 443 if scheme == "https" else 80
    try:
        number = int(port) if port else default
    except ValueError:
        raise HookFailure(f"bad daemon URL {url!r}") from None
    return scheme, host, number, "/" + path if slash else "/"


def post(url: str, body: bytes, timeout: float) -> bytes:
    """POST ``body`` and return the reply of a 2xx answer.

    Plain HTTP is spoken over a socket by hand: importing http.client drags in the email and
    ssl packages, which doubled this script's start-up (about 45 ms here), and a hook pays that
    on every tool call. It never consults *_proxy variables (loopback hook traffic must not go
    through a proxy). https, for a remote daemon, falls back to http.client.
    """
    scheme, host, port, path = _split_url(url)
    token = os.environ.get("CLARITY_TOKEN")
    if scheme == "https":
        return _post_https(host, port, path, body, timeout, token)
    import socket

    head = (
        f"POST {path} HTTP/1.1\r\nHost: {f'[{host}]' if ':' in host else host}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    )
    if token:
        head += f"Authorization: Bearer {token}\r\n"
    chunks = []
    try:
        # A bytes host skips the idna codec, one more import avoided on every call.
        address: tuple = (host.encode("ascii", "ignore") or host, port)
        with socket.create_connection(address, timeout=timeout) as sock:
            sock.sendall(head.encode("latin-1") + b"\r\n" + body)
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except TimeoutError:
        raise HookTimeout(f"POST {url}: no answer within {timeout}s") from None
    except OSError as exc:
        raise NotAnswered(f"POST {url} failed: {exc!r}") from None
    raw = b"".join(chunks)
    header, _, payload = raw.partition(b"\r\n\r\n")
    lines = header.split(b"\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        raise HookFailure(f"POST {url}: not an HTTP answer") from None
    if not 200 <= status < 300:
        raise HookFailure(f"POST {url} answered {status}")
    if any(
        line.lower().startswith(b"transfer-encoding:") and b"chunked" in line.lower() for line in lines[1:]
    ):
        payload = _dechunk(payload)
    return payload


def _dechunk(data: bytes) -> bytes:
    out = []
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out.append(rest[:size])
        data = rest[size + 2 :]
    return b"".join(out)


def _post_https(host: str, port: int, path: str, body: bytes, timeout: float, token: str | None) -> bytes:
    import http.client

    conn = http.client.HTTPSConnection(host, port, timeout=timeout)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request("POST", path, body=body, headers=headers)
        reply = conn.getresponse()
        data = reply.read()
    except (OSError, http.client.HTTPException) as exc:
        raise HookFailure(f"POST https://{host}:{port}{path} failed: {exc!r}") from None
    finally:
        conn.close()
    if not 200 <= reply.status < 300:
        raise HookFailure(f"POST https://{host}:{port}{path} answered {reply.status}")
    return data


def usage() -> bytes:
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0].endswith(".py") else ""
    return USAGE.replace("PROG", prog or "command_client.py").encode()


def _on_alarm(signum: int, frame: object) -> None:
    raise HookTimeout("timed out")


def run(argv: list[str]) -> bytes:
    """Everything but the exit policy: returns what to print (possibly nothing)."""
    opts = parse_args(argv)
    if "-h" in opts.flags or "--help" in opts.flags:
        return usage()
    if any(m in opts.flags for m in _MODES):
        body = manual_payload(opts)
    elif sys.stdin is None or sys.stdin.isatty():
        return usage()  # run by hand with nothing piped in
    else:
        body = sys.stdin.buffer.read()
    event = event_name(body)
    timeout = timeout_seconds(opts)
    breaker = breaker_path()
    if breaker_open(breaker):
        if event in KEPT_EVENTS:
            keep(body)
        raise HookFailure(
            f"skipped: a hook found the daemon unanswering less than {BREAKER_SECONDS:.0f}s ago"
        )
    import signal

    if hasattr(signal, "setitimer"):  # a hard deadline, even for a server that trickles bytes
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        reply = post(f"{base_url(opts)}/hooks/{event}", body, timeout)
    except (HookTimeout, NotAnswered) as exc:
        if hasattr(signal, "setitimer"):
            signal.setitimer(signal.ITIMER_REAL, 0)
        if isinstance(exc, HookTimeout):
            # The daemon took the event and may still learn it: keeping it would teach it twice.
            trip_breaker(breaker)
        elif event in KEPT_EVENTS:
            keep(body)  # nobody took it: learned once the daemon answers (clarity.hooks.spool)
        raise
    finally:
        if hasattr(signal, "setitimer"):
            signal.setitimer(signal.ITIMER_REAL, 0)
    if os.path.lexists(breaker):
        reset_breaker(breaker)
    # The daemon answers a JSON object; "{}" means nothing to add. Anything not shaped like an
    # object is not passed on, so no stray text can reach Claude.
    stripped = reply.strip()
    if not stripped.startswith(b"{") or not stripped.endswith(b"}") or stripped.replace(b" ", b"") == b"{}":
        return b""
    return reply


def _disabled() -> bool:
    return os.environ.get("CLARITY_DISABLED", "").strip().lower() in _TRUE


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if _disabled():
        return 0
    debug = "--debug" in argv
    try:
        output = run(argv)
        if output:
            sys.stdout.buffer.write(output)
            sys.stdout.buffer.flush()
    except BaseException as exc:  # fail open: no traceback, no exit code, whatever happened
        if debug:
            import contextlib

            with contextlib.suppress(BaseException):
                sys.stderr.write(f"clarity hook: {exc}\n")
        _silence_stdout()
    return 0


def _silence_stdout() -> None:
    """Point stdout at /dev/null so a half-written buffer or a closed pipe cannot make the
    interpreter print 'Exception ignored ...' to stderr at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass


def script() -> None:
    """Run as the hook command: this file by path, or the old path's stub, which imports it."""
    code = main()
    try:
        sys.stdout.flush()
    except BaseException:
        _silence_stdout()
    sys.exit(code)


if __name__ == "__main__":
    script()
