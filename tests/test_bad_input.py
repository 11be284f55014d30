"""Garbage in, a clear error out, and nothing already stored is lost.

Every endpoint family gets malformed and hostile input: REST (/api), hooks (/hooks/<event>),
MCP over streamable HTTP (/mcp, both raw JSON-RPC and real tool calls through the `mcp` client).
Each answer is a 4xx whose message names the field and the limit: never a 500, never a
traceback, never a dropped connection. A memory stored before the barrage is checked intact
after every test, and property-based tests (hypothesis) throw arbitrary JSON at every field of
the REST and MCP argument schemas.

Hooks and failing open: a hook request that cannot be understood (bad JSON, missing session_id
or cwd, an unknown event) gets a 4xx with an ``error`` message, not ``{}``. Claude Code treats a
non-2xx answer from an ``http`` hook as a non-blocking error: it logs it (visible with
``--debug``) and carries on unchanged, which is failing open, while the message tells whoever
reads the log what was wrong. A payload that parses but whose handling fails inside the daemon
answers ``{}`` (nothing to add), so Claude Code never sees a daemon bug.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client

from clarity.models import MAX_METADATA_BYTES, SCOPE_PATTERN
from clarity.redact import redact, redact_value

from .daemon_util import Daemon, free_port

LIMIT = 262_144  # server.max_request_bytes for this module's daemon (the default is 1 MiB)
FIXTURES = Path(__file__).parent / "fixtures" / "hook_payloads"
PROJECT = "bad-input-project"
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}

# -- fixtures: one daemon, one MCP session, one survivor for the whole module ---------------------


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("bad-input")
    daemon = Daemon(root, free_port(), env={"CLARITY_SERVER__MAX_REQUEST_BYTES": str(LIMIT)})
    daemon.start()
    daemon.wait_ready()
    yield daemon
    daemon.stop()
    assert "Traceback" not in daemon.log(), daemon.log()[-3000:]


@pytest.fixture(scope="module")
def http(daemon: Daemon) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=daemon.url, timeout=60, headers={"X-Clarity-Project": PROJECT}) as client:
        yield client


@pytest.fixture(scope="module")
def survivor(http: httpx.Client) -> dict[str, Any]:
    created = http.post(
        "/api/memories",
        json={
            "content": f"The survivor memory {uuid.uuid4()} must outlive every bad request",
            "tags": ["survivor"],
            "importance": 0.8,
            "metadata": {"kept": True},
            "scope": "global",
        },
    )
    assert created.status_code == 201, created.text
    return dict(created.json()["memory"])


STABLE = (
    "id",
    "content",
    "content_hash",
    "memory_type",
    "scope",
    "tags",
    "importance",
    "metadata",
    "created_at",
)


@pytest.fixture(autouse=True)
def _nothing_lost(http: httpx.Client, survivor: dict[str, Any]) -> Iterator[None]:
    yield
    now = http.get(f"/api/memories/{survivor['id']}")
    assert now.status_code == 200, now.text
    assert {k: now.json()[k] for k in STABLE} == {k: survivor[k] for k in STABLE}


class Mcp:
    """One MCP session (streamable HTTP, the real `mcp` client) driven from sync test code."""

    def __init__(self, portal: BlockingPortal, client: Client) -> None:
        self.portal = portal
        self.client = client

    def call(self, tool: str, arguments: dict[str, Any]) -> Any:
        return self.portal.call(self.client.call_tool, tool, arguments)


@asynccontextmanager
async def _mcp_session(url: str) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers={"X-Clarity-Project": PROJECT}, timeout=60) as client,
        Client(streamable_http_client(f"{url}/mcp", http_client=client)) as session,
    ):
        yield session


@pytest.fixture(scope="module")
def mcp(daemon: Daemon) -> Iterator[Mcp]:
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(_mcp_session(daemon.url)) as client,
    ):
        yield Mcp(portal, client)


def text_of(result: Any) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


def error_of(response: httpx.Response) -> str:
    """The readable message of a 4xx: REST/hooks say {"error": "..."}, JSON-RPC {"error": {"message"}}."""
    assert 400 <= response.status_code < 500, f"{response.status_code}: {response.text[:500]}"
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    error = body["error"]
    message = error["message"] if isinstance(error, dict) else error
    assert isinstance(message, str) and message
    assert "Traceback" not in message
    return message


# -- REST ---------------------------------------------------------------------------------------

DEEP = {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}
VERY_DEEP = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        # malformed JSON on every REST endpoint that takes a body
        ("POST", "/api/memories", b"{not json", 400, "body: not valid JSON"),
        ("POST", "/api/search", b'{"query": "x",}', 400, "body: not valid JSON"),
        ("PATCH", "/api/memories/{id}", b"{", 400, "body: not valid JSON"),
        ("POST", "/api/memories", b"", 400, "body: not valid JSON"),
        ("POST", "/api/memories", b'{"content": "x", "importance": NaN}', 400, "NaN is not a JSON number"),
        ("POST", "/api/memories", b'{"content": "x", "importance": 1e999}', 400, "out of the range"),
        ("POST", "/api/memories", VERY_DEEP.encode(), 400, "nested more than 64 levels"),
        ("POST", "/api/memories", b"[1, 2]", 400, "expected a JSON object, got list"),
        ("POST", "/api/search", b'"just a string"', 400, "expected a JSON object, got str"),
        # wrong types
        ("POST", "/api/memories", {"content": 42}, 400, "content=42: Input should be a valid string"),
        (
            "POST",
            "/api/memories",
            {"content": "ok", "tags": "one"},
            400,
            "tags='one': Input should be a valid list",
        ),
        ("POST", "/api/memories", {"content": "ok", "importance": "high"}, 400, "importance='high'"),
        ("POST", "/api/memories", {"content": "ok", "memory_type": ["fact"]}, 400, "memory_type=list"),
        ("POST", "/api/search", {"query": ["a"]}, 400, "query=list: Input should be a valid string"),
        ("POST", "/api/search", {"query": "x", "limit": "ten"}, 400, "limit='ten'"),
        ("POST", "/api/search", {"query": "x", "since": "yesterday"}, 400, "since='yesterday'"),
        ("PATCH", "/api/memories/{id}", {"importance": [0.1]}, 400, "importance=list"),
        # content: empty, huge, binary, invalid text
        ("POST", "/api/memories", {"content": "   \n\t "}, 400, "content='   \\n\\t ': must not be empty"),
        (
            "POST",
            "/api/memories",
            {"content": "x" * 20_001},
            400,
            "must be at most 20000 characters (got 20001)",
        ),
        ("POST", "/api/memories", {"content": "bin\x00ary\x01\x02"}, 400, "must not contain NUL characters"),
        ("POST", "/api/memories", b'{"content": "lone \\ud800 surrogate"}', 400, "content="),
        (
            "POST",
            "/api/memories",
            b'{"content": "lone \\ud800 surrogate"}',
            400,
            "must be valid Unicode text",
        ),
        ("POST", "/api/memories", b'{"content": "\xff\xfe binary"}', 400, "body: not valid UTF-8"),
        ("PATCH", "/api/memories/{id}", {"content": ""}, 400, "content='': must not be empty"),
        # metadata: deep, huge, not an object, not storable
        (
            "POST",
            "/api/memories",
            {"content": "ok", "metadata": DEEP},
            400,
            "metadata=dict: must be nested at most 6",
        ),
        (
            "POST",
            "/api/memories",
            {"content": "ok", "metadata": {"blob": "v" * 9000}},
            400,
            f"must be at most {MAX_METADATA_BYTES} bytes of JSON",
        ),
        ("POST", "/api/memories", {"content": "ok", "metadata": "str"}, 400, "metadata='str'"),
        (
            "POST",
            "/api/memories",
            {"content": "ok", "metadata": {"n": 2**70}},
            400,
            "integers must fit in 64 bits",
        ),
        (
            "POST",
            "/api/memories",
            b'{"content": "ok", "metadata": {"\\udc00": 1}}',
            400,
            "must be valid Unicode",
        ),
        ("PATCH", "/api/memories/{id}", {"metadata": DEEP}, 400, "metadata=dict: must be nested at most 6"),
        # ids that are not UUIDs
        (
            "GET",
            "/api/memories/not-a-uuid",
            None,
            400,
            "id: 'not-a-uuid' is not a memory id (expected a UUID)",
        ),
        ("PATCH", "/api/memories/1234", {"importance": 0.1}, 400, "is not a memory id"),
        ("DELETE", "/api/memories/%00", None, 400, "is not a memory id"),
        ("GET", f"/api/memories/{uuid.uuid4()}", None, 404, "no memory with id"),
        # filters with unknown keys, in bodies and query strings
        ("POST", "/api/search", {"query": "x", "filters": {"scope": "all"}}, 400, "filters: unknown key"),
        ("POST", "/api/memories", {"content": "ok", "id": str(uuid.uuid4())}, 400, "id: unknown key"),
        ("PATCH", "/api/memories/{id}", {"scope": "global"}, 400, "scope: unknown key"),
        ("GET", "/api/memories?colour=red", None, 400, "colour: unknown key"),
        ("GET", "/api/memories?limit=0", None, 400, "limit='0': Input should be greater than or equal to 1"),
        ("GET", "/api/memories?sources=telepathy", None, 400, "sources.0='telepathy'"),
        ("GET", "/api/memories?since=soon", None, 400, "since='soon'"),
        ("GET", "/api/stats?scope=Not%20A%20Scope", None, 400, "scope='Not A Scope'"),
    ],
)
def test_rest_rejects_bad_input_by_name(
    http: httpx.Client,
    survivor: dict[str, Any],
    method: str,
    path: str,
    body: object,
    status: int,
    message: str,
) -> None:
    kwargs: dict[str, Any] = {}
    if isinstance(body, bytes):
        kwargs["content"] = body
        kwargs["headers"] = {"Content-Type": "application/json"}
    elif body is not None:
        kwargs["json"] = body
    response = http.request(method, path.replace("{id}", survivor["id"]), **kwargs)
    assert response.status_code == status, response.text
    assert message in error_of(response)


@pytest.mark.parametrize("path", ["/api/memories", "/api/search", "/hooks/UserPromptSubmit"])
def test_oversized_bodies_get_413_naming_the_limit(http: httpx.Client, path: str) -> None:
    declared = http.post(path, content=b'{"content": "' + b"x" * LIMIT + b'"}')
    assert declared.status_code == 413
    assert f"over the limit of {LIMIT} bytes (server.max_request_bytes)" in error_of(declared)

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams in
        yield b'{"content": "'
        for _ in range(LIMIT // 65_536 + 2):
            yield b"y" * 65_536
        yield b'"}'

    streamed = http.post(path, content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    assert f"over the limit of {LIMIT} bytes" in error_of(streamed)


def test_content_at_the_limits_is_stored_whole(http: httpx.Client) -> None:
    longest = ("é" * 9_999 + " " + uuid.uuid4().hex)[:20_000]
    created = http.post("/api/memories", json={"content": longest, "metadata": {"k": "v" * 8000}})
    assert created.status_code == 201, created.text
    got = http.get(f"/api/memories/{created.json()['id']}").json()
    assert got["content"] == longest and got["metadata"] == {"k": "v" * 8000}
    mixed = f"emoji 🧠, CJK 記憶, RTL זיכרון, combining é, zero-width \u200b {uuid.uuid4()}"
    stored = http.post("/api/memories", json={"content": mixed})
    assert http.get(f"/api/memories/{stored.json()['id']}").json()["content"] == mixed


# -- hooks ---------------------------------------------------------------------------------------


def payload(name: str, cwd: Path) -> dict[str, Any]:
    data = dict(json.loads((FIXTURES / name).read_text()))
    data["cwd"] = str(cwd)
    return data


HOOK_FILES = sorted(p.name for p in FIXTURES.glob("*.json") if p.name[0].isupper() and "_" not in p.name)


def test_fixture_payloads_are_accepted(http: httpx.Client, tmp_path: Path) -> None:
    assert len(HOOK_FILES) >= 10
    for name in HOOK_FILES:
        body = payload(name, tmp_path)
        answer = http.post(f"/hooks/{body['hook_event_name']}", json=body)
        assert answer.status_code == 200, (name, answer.text)
        assert isinstance(answer.json(), dict)


@pytest.mark.parametrize("name", HOOK_FILES)
def test_hook_payloads_missing_fields(http: httpx.Client, tmp_path: Path, name: str) -> None:
    """Required fields (session_id, cwd) missing: a 4xx naming them. Anything else missing: still 200."""
    full = payload(name, tmp_path)
    event = full["hook_event_name"]
    for required in ("session_id", "cwd"):
        answer = http.post(f"/hooks/{event}", json={k: v for k, v in full.items() if k != required})
        assert answer.status_code == 400
        assert f"{required}: required" in error_of(answer)
    for optional in sorted(set(full) - {"session_id", "cwd"}):
        answer = http.post(f"/hooks/{event}", json={k: v for k, v in full.items() if k != optional})
        assert answer.status_code == 200, (optional, answer.text)
        assert isinstance(answer.json(), dict)
    bare = http.post(f"/hooks/{event}", json={"session_id": "s", "cwd": str(tmp_path)})
    assert bare.status_code == 200 and isinstance(bare.json(), dict)


@pytest.mark.parametrize(
    ("event", "body", "status", "message"),
    [
        ("Nonsense", {}, 404, "event: unknown hook event 'Nonsense'; expected one of SessionStart"),
        ("pretooluse", {}, 404, "unknown hook event 'pretooluse'"),
        ("Stop", b"{not json", 400, "body: not valid JSON"),
        ("Stop", b"", 400, "body: not valid JSON"),
        ("Stop", b"\xff\xfe\x00", 400, "body: not valid UTF-8"),
        ("Stop", b"[]", 400, "body: expected a JSON object, got list"),
        ("Stop", b"null", 400, "body: expected a JSON object, got NoneType"),
        ("Stop", {}, 400, "session_id: required; cwd: required"),
        ("Stop", {"session_id": 7, "cwd": "/tmp"}, 400, "session_id=7: Input should be a valid string"),
        ("PreToolUse", {"session_id": "s", "cwd": ["/tmp"]}, 400, "cwd=list"),
        ("PreToolUse", {"session_id": "s", "cwd": "/tmp", "tool_input": "ls"}, 400, "tool_input='ls'"),
        ("UserPromptSubmit", {"session_id": "s", "cwd": "/tmp", "prompt": {"x": 1}}, 400, "prompt=dict"),
        ("Stop", {"session_id": "s", "cwd": "/tmp", "hook_event_name": "SessionEnd"}, 400, "does not match"),
        ("Stop", {"session_id": "s" * 201, "cwd": "/tmp"}, 400, "session_id="),
        ("Stop", VERY_DEEP.encode(), 400, "nested more than 64 levels"),
    ],
)
def test_hooks_reject_bad_input_by_name(
    http: httpx.Client, event: str, body: object, status: int, message: str
) -> None:
    if isinstance(body, bytes):
        answer = http.post(f"/hooks/{event}", content=body, headers={"Content-Type": "application/json"})
    else:
        answer = http.post(f"/hooks/{event}", json=body)
    assert answer.status_code == status, answer.text
    assert message in error_of(answer)


def test_hooks_with_odd_but_valid_shapes_answer(http: httpx.Client, tmp_path: Path) -> None:
    """Shapes Claude Code could plausibly send: unknown extra keys, odd tool inputs. Never a 5xx."""
    base = {"session_id": "odd", "cwd": str(tmp_path)}
    odd = [
        ("PreToolUse", {**base, "tool_name": "Bash", "tool_input": {"command": 5}}),
        ("PreToolUse", {**base, "tool_name": "Bash", "tool_input": {}}),
        (
            "PostToolUse",
            {**base, "tool_name": "Bash", "tool_input": {"command": "x"}, "tool_response": [1, 2]},
        ),
        ("PostToolUse", {**base, "tool_name": "Edit", "tool_input": {"file_path": ["a"]}}),
        ("PostToolUseFailure", {**base, "tool_name": "Bash", "tool_input": {"command": "false"}}),
        ("UserPromptSubmit", {**base, "prompt": ""}),
        ("UserPromptSubmit", {**base, "prompt": "remember " + "x" * 30_000}),
        ("SessionStart", {**base, "source": "from-the-future", "brand_new_field": {"a": [1]}}),
        ("Stop", {**base, "transcript_path": "/does/not/exist.jsonl"}),
        ("SessionEnd", {**base, "cwd": "relative/path"}),
    ]
    for hook, body in odd:
        answer = http.post(f"/hooks/{hook}", json=body)
        assert answer.status_code == 200, (hook, body, answer.text)
        assert isinstance(answer.json(), dict)


# -- MCP: raw JSON-RPC on /mcp, then real tool calls ----------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "Parse error"),
        (b"", "Parse error"),
        (b"\xff\xfe", "Parse error"),
        (b"[1, 2]", "Validation error"),
        (b'{"jsonrpc": "2.0", "id": 1}', "Validation error"),
        (b'{"jsonrpc": "1.0", "id": 1, "method": "initialize"}', "Validation error"),
    ],
)
def test_mcp_endpoint_rejects_malformed_json_rpc(daemon: Daemon, body: bytes, message: str) -> None:
    answer = httpx.post(f"{daemon.url}/mcp", content=body, headers=MCP_HEADERS, timeout=30)
    assert answer.status_code == 400, answer.text
    assert message in error_of(answer)


def test_mcp_endpoint_refuses_oversized_bodies_naming_the_limit(daemon: Daemon) -> None:
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "' + b"x" * LIMIT + b'"}}'
    answer = httpx.post(f"{daemon.url}/mcp", content=body, headers=MCP_HEADERS, timeout=30)
    assert answer.status_code == 413
    assert f"over the limit of {LIMIT} bytes (server.max_request_bytes)" in error_of(answer)


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("store_memory", {}, "store_memory: invalid arguments: content: required"),
        ("store_memory", {"content": 42}, "content=42: Input should be a valid string"),
        ("store_memory", {"content": None}, "content=None"),
        ("store_memory", {"content": "  "}, "content='  ': must not be empty"),
        ("store_memory", {"content": "x" * 20_001}, "must be at most 20000 characters"),
        ("store_memory", {"content": "a\x00b"}, "must not contain NUL characters"),
        ("store_memory", {"content": "ok", "tags": "one"}, "tags='one': Input should be a valid list"),
        ("store_memory", {"content": "ok", "tags": ["x" * 65]}, "tags.0="),
        ("store_memory", {"content": "ok", "importance": "high"}, "importance='high'"),
        ("store_memory", {"content": "ok", "importance": -1}, "importance=-1"),
        ("store_memory", {"content": "ok", "memory_type": "rumour"}, "memory_type='rumour'"),
        ("store_memory", {"content": "ok", "scope": "everywhere"}, "scope='everywhere'"),
        ("store_memory", {"content": "ok", "metadata": [1]}, "metadata=list"),
        ("store_memory", {"content": "ok", "metadata": DEEP}, "must be nested at most 6 levels"),
        ("store_memory", {"content": "ok", "metadata": {"n": 2**70}}, "integers must fit in 64 bits"),
        ("store_memory", {"content": "ok", "metadata": {"b": "v" * 9000}}, "bytes of JSON"),
        ("store_memory", {"content": "ok", "id": "x"}, "id: unknown argument"),
        ("retrieve_memory", {"query": "x", "filters": {"scope": "all"}}, "filters: unknown argument"),
        ("retrieve_memory", {"query": ""}, "query=''"),
        ("retrieve_memory", {"query": "x", "limit": 0}, "limit=0"),
        ("retrieve_memory", {"query": "x", "limit": "many"}, "limit='many'"),
        ("retrieve_memory", {"query": "x", "memory_types": ["gossip"]}, "memory_types.0='gossip'"),
        ("retrieve_memory", {"query": "x", "min_score": 3}, "min_score=3"),
        ("list_memories", {"scope": "everything"}, "scope='everything'"),
        ("list_memories", {"limit": 501}, "limit=501"),
        ("list_memories", {"offset": -1}, "offset=-1"),
        ("list_memories", {"sort": "random"}, "sort: unknown argument"),
        ("update_memory", {"memory_id": 5, "importance": 0.1}, "memory_id=5: Input should be a valid string"),
        ("update_memory", {"memory_id": "nope", "importance": 0.2}, "id: 'nope' is not a memory id"),
        ("update_memory", {"memory_id": str(uuid.uuid4())}, "give at least one of content"),
        ("update_memory", {"memory_id": str(uuid.uuid4()), "importance": 0.2}, "no memory with id"),
        ("update_memory", {"memory_id": str(uuid.uuid4()), "scope": "global"}, "scope: unknown argument"),
        ("delete_memory", {"memory_id": "../etc/passwd"}, "is not a memory id"),
        ("delete_memory", {}, "memory_id: required"),
        ("memory_stats", {"verbose": True}, "verbose: unknown argument"),
        ("forget_everything", {}, "Unknown tool: forget_everything"),
    ],
)
def test_mcp_tool_calls_reject_bad_arguments_by_name(
    mcp: Mcp, tool: str, arguments: dict[str, Any], message: str
) -> None:
    result = mcp.call(tool, arguments)
    assert result.is_error, result
    text = text_of(result)
    assert message in text, text
    assert "Traceback" not in text and "errors.pydantic.dev" not in text


# -- property-based: arbitrary JSON at every field ------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
# Values valid for each field; the arbitrary-input tests mix them with arbitrary JSON so both the
# accepting and the refusing paths run, and the valid-input tests use them alone.
PRINTABLE = st.characters(blacklist_categories=("Cc", "Cs"))
TEXT = st.text(min_size=1, max_size=300).filter(lambda s: bool(s.strip()) and "\x00" not in s)
TAGS = st.lists(st.text(PRINTABLE, min_size=1, max_size=20).filter(lambda s: bool(s.strip())), max_size=5)
METADATA = st.dictionaries(st.text(max_size=10), JSON, max_size=5)
MEMORY_TYPES = st.sampled_from(["fact", "preference", "decision", "command", "error", "fix", "note"])
UNIT = st.floats(min_value=0.0, max_value=1.0)
SCOPE_ID = st.from_regex(SCOPE_PATTERN, fullmatch=True).filter(lambda s: len(s) < 40)
DATES = st.datetimes().map(lambda d: d.isoformat())


def either(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(valid, valid, JSON)


def mixed(fields: dict[str, st.SearchStrategy[Any]]) -> dict[str, st.SearchStrategy[Any]]:
    return {key: either(strategy) for key, strategy in fields.items()}


VALID_CREATE = {
    "memory_type": MEMORY_TYPES,
    "tags": TAGS,
    "importance": UNIT,
    "metadata": METADATA,
    "scope": st.sampled_from(["project", "global"]) | SCOPE_ID,
    "source": st.sampled_from(["manual", "hook", "import"]),
    "session_id": st.text(max_size=50),
}
VALID_RETRIEVE = {
    "limit": st.integers(1, 100),
    "memory_types": st.lists(MEMORY_TYPES, max_size=3),
    "tags": TAGS,
    "scope": st.sampled_from(["default", "project", "global", "all"]) | SCOPE_ID,
    "since": DATES,
    "until": DATES,
    "min_score": UNIT,
    "mode": st.sampled_from(["hybrid", "dense", "lexical"]),
}
VALID_LIST = {
    "limit": st.integers(1, 500),
    "offset": st.integers(0, 1000),
    "memory_types": st.lists(MEMORY_TYPES, min_size=1, max_size=3),
    "tags": TAGS.filter(bool),
    "sources": st.lists(st.sampled_from(["manual", "hook", "import"]), min_size=1, max_size=2),
    "scope": st.sampled_from(["default", "project", "global", "all"]) | SCOPE_ID,
    "since": DATES,
    "until": DATES,
    "min_importance": UNIT,
    "max_importance": UNIT,
    "sort": st.sampled_from(["newest", "oldest", "importance", "updated"]),
}
VALID_PATCH = {
    "content": TEXT,
    "memory_type": MEMORY_TYPES,
    "tags": TAGS,
    "importance": UNIT,
    "metadata": METADATA,
}
CREATE_FIELDS = mixed(VALID_CREATE)
RETRIEVE_FIELDS = mixed(VALID_RETRIEVE)
LIST_FIELDS = mixed(VALID_LIST)
PATCH_FIELDS = mixed(VALID_PATCH)
EXTRA = st.dictionaries(st.sampled_from(["filters", "id", "extra", "Content"]), JSON, max_size=1)


def bodies(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    fixed = st.fixed_dictionaries(required, optional=optional)
    return st.tuples(fixed, st.one_of(st.just({}), st.just({}), EXTRA)).map(
        lambda pair: {**pair[0], **pair[1]}
    )


HYPOTHESIS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)


def assert_answered(response: httpx.Response) -> None:
    event(f"HTTP {response.status_code}")  # --hypothesis-show-statistics: valid and invalid both reached
    assert response.status_code < 500, f"{response.status_code}: {response.text[:500]}"
    if response.status_code >= 400:
        error_of(response)


def expected_tags(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(t.strip() for t in tags))


def same(a: Any, b: Any) -> bool:
    """JSON equality, with doubles equal to the last bit or two: Qdrant Edge stores payloads through
    serde_json, whose float parsing is not correctly rounded (0.41617191471413684 comes back as
    0.4161719147141368). Integers, strings and structure must match exactly."""
    if isinstance(a, float) or isinstance(b, float):
        return (
            isinstance(a, int | float)
            and isinstance(b, int | float)
            and not isinstance(a, bool)
            and not isinstance(b, bool)
            and math.isclose(a, b, rel_tol=1e-15, abs_tol=1e-300)
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def check_created(http: httpx.Client, body: dict[str, Any], result: dict[str, Any]) -> None:
    """What was acknowledged is what is stored: read back by id and compared field by field."""
    got = http.get(f"/api/memories/{result['id']}")
    assert got.status_code == 200, got.text
    memory = got.json()
    if result["status"] != "created":  # a duplicate or merge answers with the memory it joined
        return
    assert same({k: memory[k] for k in STABLE}, {k: result["memory"][k] for k in STABLE})
    assert memory["content"] == redact(body["content"].strip())
    assert memory["tags"] == expected_tags(body.get("tags") or [])
    assert same(memory["importance"], float(body.get("importance", 0.5)))
    assert same(memory["metadata"], redact_value(body.get("metadata") or {}))
    assert memory["memory_type"] == body.get("memory_type", "fact")


def check_patched(http: httpx.Client, memory_id: str, body: dict[str, Any], result: dict[str, Any]) -> None:
    after = http.get(f"/api/memories/{memory_id}").json()
    assert same({k: after[k] for k in STABLE}, {k: result[k] for k in STABLE})
    if "content" in body:
        assert after["content"] == redact(body["content"].strip())
    if "tags" in body:
        assert after["tags"] == expected_tags(body["tags"])
    if "metadata" in body:
        assert same(after["metadata"], redact_value(body["metadata"]))
    if "importance" in body:
        assert same(after["importance"], float(body["importance"]))
    if "memory_type" in body:
        assert after["memory_type"] == body["memory_type"]


@HYPOTHESIS
@given(body=bodies({"content": either(TEXT)}, CREATE_FIELDS))
def test_property_rest_create_arbitrary(http: httpx.Client, body: dict[str, Any]) -> None:
    response = http.post("/api/memories", json=body)
    assert_answered(response)
    if response.status_code < 400:
        check_created(http, body, response.json())


@HYPOTHESIS
@given(body=st.fixed_dictionaries({"content": TEXT}, optional=VALID_CREATE))
def test_property_rest_create_valid_round_trips(http: httpx.Client, body: dict[str, Any]) -> None:
    response = http.post("/api/memories", json=body)
    assert response.status_code in (200, 201), response.text
    check_created(http, body, response.json())


@HYPOTHESIS
@given(body=bodies({"query": either(TEXT)}, RETRIEVE_FIELDS))
def test_property_rest_search_arbitrary(http: httpx.Client, body: dict[str, Any]) -> None:
    response = http.post("/api/search", json=body)
    assert_answered(response)
    if response.status_code == 200:
        assert isinstance(response.json()["results"], list)


@settings(HYPOTHESIS, max_examples=30)
@given(body=st.fixed_dictionaries({"query": TEXT}, optional=VALID_RETRIEVE))
def test_property_rest_search_valid(http: httpx.Client, body: dict[str, Any]) -> None:
    response = http.post("/api/search", json=body)
    assert response.status_code == 200, response.text
    assert len(response.json()["results"]) <= body.get("limit", 5)


def query_value(value: Any) -> Any:
    if isinstance(value, list):
        return [v if isinstance(v, str) else json.dumps(v) for v in value] or [""]
    return value if isinstance(value, str) else json.dumps(value)


@HYPOTHESIS
@given(params=bodies({}, LIST_FIELDS))
def test_property_rest_list_arbitrary(http: httpx.Client, params: dict[str, Any]) -> None:
    response = http.get("/api/memories", params={k: query_value(v) for k, v in params.items()})
    assert_answered(response)
    if response.status_code == 200:
        page = response.json()
        assert len(page["memories"]) <= page["limit"]


@settings(HYPOTHESIS, max_examples=30)
@given(params=st.fixed_dictionaries({}, optional=VALID_LIST))
def test_property_rest_list_valid(http: httpx.Client, params: dict[str, Any]) -> None:
    response = http.get("/api/memories", params={k: query_value(v) for k, v in params.items()})
    assert response.status_code == 200, response.text
    assert len(response.json()["memories"]) <= params.get("limit", 20)


@pytest.fixture(scope="module")
def patch_target(http: httpx.Client) -> str:
    created = http.post("/api/memories", json={"content": f"patch target {uuid.uuid4()}", "scope": "global"})
    return str(created.json()["id"])


@HYPOTHESIS
@given(body=bodies({}, PATCH_FIELDS))
def test_property_rest_patch_arbitrary(http: httpx.Client, patch_target: str, body: dict[str, Any]) -> None:
    before = http.get(f"/api/memories/{patch_target}").json()
    response = http.patch(f"/api/memories/{patch_target}", json=body)
    assert_answered(response)
    if response.status_code >= 400:
        after = http.get(f"/api/memories/{patch_target}").json()
        assert same(
            {k: after[k] for k in STABLE}, {k: before[k] for k in STABLE}
        )  # a refused patch changes nothing
    else:
        check_patched(http, patch_target, body, response.json())


@HYPOTHESIS
@given(body=st.fixed_dictionaries({}, optional=VALID_PATCH).filter(bool))
def test_property_rest_patch_valid_round_trips(
    http: httpx.Client, patch_target: str, body: dict[str, Any]
) -> None:
    response = http.patch(f"/api/memories/{patch_target}", json=body)
    assert response.status_code == 200, response.text
    check_patched(http, patch_target, body, response.json())


MCP_STORE_VALID = {k: v for k, v in VALID_CREATE.items() if k not in ("source", "session_id")}
MCP_STORE_VALID["scope"] = st.sampled_from(["project", "global"])
MCP_STORE = mixed(MCP_STORE_VALID)
MCP_RETRIEVE = {k: v for k, v in RETRIEVE_FIELDS.items() if k not in ("since", "until", "mode")}
MCP_LIST = {k: LIST_FIELDS[k] for k in ("limit", "offset", "memory_types", "tags", "scope")}


def assert_tool_answered(result: Any, tool: str) -> None:
    event("tool error" if result.is_error else "tool result")
    if result.is_error:
        text = text_of(result)
        assert text and "Traceback" not in text, text
        assert text.strip() != f"Error executing tool {tool}", "an unexpected exception inside the tool"
    elif tool in ("retrieve_memory", "list_memories", "store_memory", "update_memory"):  # short text
        # unless asked for detail: then structured too
        assert text_of(result).strip()
    else:
        assert result.structured_content is not None


@HYPOTHESIS
@given(arguments=bodies({"content": either(TEXT)}, MCP_STORE))
def test_property_mcp_store_arbitrary(mcp: Mcp, http: httpx.Client, arguments: dict[str, Any]) -> None:
    result = mcp.call("store_memory", {**arguments, "detail": True})
    assert_tool_answered(result, "store_memory")
    if not result.is_error:
        check_created(http, arguments, result.structured_content)


@HYPOTHESIS
@given(arguments=st.fixed_dictionaries({"content": TEXT}, optional=MCP_STORE_VALID))
def test_property_mcp_store_valid_round_trips(
    mcp: Mcp, http: httpx.Client, arguments: dict[str, Any]
) -> None:
    result = mcp.call("store_memory", {**arguments, "detail": True})
    assert not result.is_error, text_of(result)
    check_created(http, arguments, result.structured_content)


@HYPOTHESIS
@given(arguments=bodies({"query": either(TEXT)}, MCP_RETRIEVE))
def test_property_mcp_retrieve(mcp: Mcp, arguments: dict[str, Any]) -> None:
    assert_tool_answered(mcp.call("retrieve_memory", arguments), "retrieve_memory")


@HYPOTHESIS
@given(arguments=bodies({}, MCP_LIST))
def test_property_mcp_list(mcp: Mcp, arguments: dict[str, Any]) -> None:
    assert_tool_answered(mcp.call("list_memories", arguments), "list_memories")


@HYPOTHESIS
@given(arguments=bodies({}, PATCH_FIELDS), memory_id=either(st.just("TARGET") | st.uuids().map(str)))
def test_property_mcp_update(mcp: Mcp, patch_target: str, arguments: dict[str, Any], memory_id: Any) -> None:
    arguments = {"memory_id": patch_target if memory_id == "TARGET" else memory_id, **arguments}
    assert_tool_answered(mcp.call("update_memory", arguments), "update_memory")


@HYPOTHESIS
@given(body=JSON, hook=st.sampled_from(["PreToolUse", "PostToolUse", "UserPromptSubmit", "Stop"]))
def test_property_hooks_never_fail_hard(http: httpx.Client, body: Any, hook: str) -> None:
    if isinstance(body, dict) and body.get("cwd") is not None:
        body["cwd"] = "/tmp"
    response = http.post(f"/hooks/{hook}", json=body)
    assert_answered(response)


def test_the_daemon_is_still_healthy_and_logged_no_crash(daemon: Daemon, http: httpx.Client) -> None:
    assert http.get("/healthz").status_code == 200
    assert http.get("/readyz").status_code == 200
    assert "Traceback" not in daemon.log() and "unexpected error" not in daemon.log()
