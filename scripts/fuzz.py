#!/usr/bin/env python3
"""Fuzz every door of a real daemon: each REST route, hook event, MCP tool, dashboard page and
import format, with hostile headers, and count what was mishandled.

Run it from a checkout (it starts its own ``clarity serve`` on a temporary root and stops it):

    .venv/bin/python scripts/fuzz.py                 # the full pass (a few minutes)
    .venv/bin/python scripts/fuzz.py --quick         # what tests/test_fuzz.py runs in CI

"Mishandled" is anything a user or an attacker should never see: a 5xx, a dropped connection or
a time-out, a non-JSON answer on /api or /hooks, a foreign Host or Origin that gets a 2xx, a
text/plain write that is accepted, a Python traceback (in the daemon log or from the CLI), a
daemon that died, or a memory planted before the run that changed. The inputs come from
hypothesis strategies (random JSON, the models' own field names with random values, random
bytes) so each run explores new cases; ``--seed`` repeats one.

The script prints one row per door (inputs tried, mishandled) and exits 1 if anything was
mishandled, listing the first few cases so they can be turned into regression tests.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from clarity.hooks.events import EVENTS  # noqa: E402
from clarity.models import MemoryCreate, MemoryPatch  # noqa: E402
from clarity.requests import ForgetRequest, ListRequest, RetrieveRequest  # noqa: E402

warnings.filterwarnings("ignore", module="hypothesis")
HOOK_FIXTURES = ROOT / "tests" / "fixtures" / "hook_payloads"
PROJECT_HEADER = "X-Clarity-Project"

# -- inputs -----------------------------------------------------------------------------------

JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=200)
    | st.sampled_from(["", " ", "\x00", "a" * 70_000, "remember that ", "../../etc/passwd", "~root/x"])
)
JSON = st.recursive(
    JSON_LEAF,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
PROJECTS = st.one_of(
    st.none(),
    st.text(max_size=60),
    st.sampled_from(
        ["/tmp", "~nosuchuser/x", "~", "/" + "a" * 8000, "a" * 8000, "global", "\ud7ff", "/dev/null"]
    ),
)
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
        "application/jsonx",
        "APPLICATION/JSON",
    ]
)
FOREIGN_HOSTS = st.sampled_from(
    ["evil.example", "evil.example:8000", "127.0.0.1.nip.io", "localhost.evil", "[::2]"]
)
FOREIGN_ORIGINS = st.sampled_from(
    [
        "http://evil.example",
        "null",
        "http://127.0.0.1:1",
        "https://localhost.evil",
        "file://",
        "http://[::2]:80",
    ]
)


def model_bodies(model: type[Any]) -> st.SearchStrategy[Any]:
    """Dicts keyed by the model's own field names (so validation is reached), values random."""
    names = list(model.model_fields)
    return st.one_of(
        st.dictionaries(st.sampled_from(names), JSON, max_size=len(names)),
        JSON,
    )


def hook_bodies(event: str) -> st.SearchStrategy[Any]:
    fixture = HOOK_FIXTURES / f"{event}.json"
    base: dict[str, Any] = json.loads(fixture.read_text()) if fixture.exists() else {}
    base = {k: v for k, v in base.items() if not k.startswith("_")}

    def mutate(changes: dict[str, Any], drop: list[str]) -> dict[str, Any]:
        body = {**base, **changes, "cwd": tempfile.gettempdir()}
        for key in drop:
            body.pop(key, None)
        return body

    keys = st.sampled_from(sorted({*base, "tool_input", "tool_response", "prompt", "error", "tool_name"}))
    return st.one_of(
        st.builds(mutate, st.dictionaries(keys, JSON, max_size=4), st.lists(keys, max_size=2)),
        JSON,
    )


@dataclass
class Door:
    """One way in, and the inputs thrown at it."""

    name: str
    method: str
    path: str
    bodies: st.SearchStrategy[Any] = field(default_factory=lambda: JSON)
    examples_scale: float = 1.0


def rest_doors() -> list[Door]:
    memory_id = "{id}"
    return [
        Door("POST /api/memories", "POST", "/api/memories", model_bodies(MemoryCreate)),
        Door("GET /api/memories", "GET", "/api/memories", model_bodies(ListRequest)),
        Door("GET /api/memories/{id}", "GET", f"/api/memories/{memory_id}"),
        Door("PATCH /api/memories/{id}", "PATCH", f"/api/memories/{memory_id}", model_bodies(MemoryPatch)),
        Door("POST /api/search", "POST", "/api/search", model_bodies(RetrieveRequest)),
        Door("GET /api/stats", "GET", "/api/stats"),
        Door(
            "POST /api/memories/batch",
            "POST",
            "/api/memories/batch",
            st.fixed_dictionaries({"memories": st.lists(model_bodies(MemoryCreate), max_size=4)}) | JSON,
        ),
        Door("POST /api/export", "POST", "/api/export"),
        Door("POST /api/import", "POST", "/api/import", import_batches()),
        Door("POST /api/backup", "POST", "/api/backup", examples_scale=0.05),
        Door("GET /readyz", "GET", "/readyz"),
        Door("GET /healthz", "GET", "/healthz"),
        *[Door(f"POST /hooks/{event}", "POST", f"/hooks/{event}", hook_bodies(event)) for event in EVENTS],
        Door("POST /hooks/{unknown}", "POST", "/hooks/NoSuchEvent"),
        Door("GET /", "GET", "/"),
        Door("GET /memory/{id}", "GET", f"/memory/{memory_id}"),
        Door("POST /memory/{id}", "POST", f"/memory/{memory_id}"),
        Door("GET /injections", "GET", "/injections"),
        Door("GET /overview", "GET", "/overview"),
        Door("GET /fragments/memories", "GET", "/fragments/memories"),
        Door("GET /fragments/injections", "GET", "/fragments/injections"),
        Door("POST /forget (form)", "POST", "/forget"),
        Door("POST /login", "POST", "/login"),
        Door("GET /static/*", "GET", "/static/{id}"),
        # Destructive doors last: a valid fuzzed forget or delete may legitimately remove memories.
        Door("DELETE /api/memories/{id}", "DELETE", f"/api/memories/{memory_id}", examples_scale=0.5),
        Door("POST /api/forget", "POST", "/api/forget", model_bodies(ForgetRequest)),
    ]


def import_batches() -> st.SearchStrategy[Any]:
    record = st.fixed_dictionaries(
        {"content": st.text(min_size=1, max_size=80)},
        optional={
            "access_count": JSON,
            "occurrences": JSON,
            "importance": JSON,
            "created_at": JSON,
            "id": JSON,
            "tags": JSON,
            "metadata": JSON,
        },
    )
    vectors = st.one_of(
        st.none(),
        st.lists(
            st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=4) | st.none(), max_size=3
        ),
    )
    return st.one_of(
        st.fixed_dictionaries({"memories": st.lists(record, max_size=3), "vectors": vectors}), JSON
    )


# -- sending ----------------------------------------------------------------------------------


@dataclass
class Tally:
    tried: Counter[str] = field(default_factory=Counter)
    mishandled: Counter[str] = field(default_factory=Counter)
    unsent: Counter[str] = field(default_factory=Counter)
    cases: list[str] = field(default_factory=list)

    def bad(self, door: str, why: str) -> None:
        self.mishandled[door] += 1
        if len(self.cases) < 40:
            self.cases.append(f"{door}: {why}")


def fill(path: str, memory_id: str, rng: random.Random) -> str:
    choice = rng.choice(
        [memory_id, memory_id[:8], "x" * rng.randint(1, 300), "%00", "..%2f..%2fetc", str(uuid.uuid4())]
    )
    return path.replace("{id}", choice)


def send(
    client: httpx.Client, door: Door, body: Any, extra: dict[str, Any], memory_id: str, tally: Tally
) -> None:
    rng = random.Random(extra["rng"])
    headers: dict[str, str] = {}
    if extra["project"] is not None:
        headers[PROJECT_HEADER] = extra["project"]
    foreign = None
    if extra["host"] is not None:
        headers["Host"] = extra["host"]
        foreign = "host"
    if extra["origin"] is not None:
        headers["Origin"] = extra["origin"]
        foreign = foreign or "origin"
    content_type = extra["content_type"]
    raw = extra["raw"]
    data = raw if raw is not None else json.dumps(body).encode()
    if door.method != "GET":
        headers["Content-Type"] = content_type
    params = body if door.method == "GET" and isinstance(body, dict) else None
    if params is not None:
        params = {str(k): json.dumps(v) if not isinstance(v, str) else v for k, v in params.items()}
    path = fill(door.path, memory_id, rng)
    try:
        response = client.request(
            door.method, path, headers=headers, content=None if door.method == "GET" else data, params=params
        )
    except (httpx.InvalidURL, httpx.LocalProtocolError, UnicodeError):
        tally.unsent[door.name] += 1  # the client refused to send it: nothing reached the daemon
        return
    except httpx.HTTPError as exc:
        tally.bad(door.name, f"{type(exc).__name__}: {exc} (headers={headers!r})")
        return
    status = response.status_code
    if status >= 500 and not (door.path == "/readyz" and status == 503):
        tally.bad(door.name, f"{status} {response.text[:200]!r} (headers={headers!r}, body={data[:200]!r})")
    if foreign and door.path != "/healthz" and status < 400:
        tally.bad(door.name, f"{foreign} {headers.get('Host') or headers.get('Origin')} answered {status}")
    json_only = door.path.startswith(("/api/", "/hooks/")) and door.method != "GET"
    if json_only and status < 300 and "json" not in content_type.lower() and raw is None:
        tally.bad(door.name, f"a {content_type!r} body was accepted with {status}")
    if (
        door.path.startswith("/api/")
        and status >= 400
        and "json" not in response.headers.get("content-type", "")
    ):
        tally.bad(door.name, f"{status} answered in {response.headers.get('content-type')}")


EXTRAS = st.fixed_dictionaries(
    {
        "project": PROJECTS,
        "host": st.none() | st.none() | st.none() | FOREIGN_HOSTS,
        "origin": st.none() | st.none() | st.none() | FOREIGN_ORIGINS,
        "content_type": st.sampled_from(["application/json"] * 6) | CONTENT_TYPES,
        "raw": st.none() | st.none() | st.none() | st.binary(max_size=300),
        "rng": st.integers(0, 2**32),
    }
)


def fuzz_door(
    client: httpx.Client, door: Door, examples: int, memory_id: str, tally: Tally, run_seed: int
) -> None:
    @seed(run_seed)
    @settings(
        max_examples=max(3, int(examples * door.examples_scale)),
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(door.bodies, EXTRAS)
    def probe(body: Any, extra: dict[str, Any]) -> None:
        tally.tried[door.name] += 1
        send(client, door, body, extra, memory_id, tally)

    probe()


# -- MCP --------------------------------------------------------------------------------------


def collect_calls(
    tool: str, names: list[str], examples: int, run_seed: int, calls: list[tuple[str, dict[str, Any]]]
) -> None:
    """Arguments keyed by the tool's own input schema, values random."""
    strategy = st.dictionaries(st.sampled_from(names or ["x"]), JSON, max_size=len(names) + 1)

    @seed(run_seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(arguments: dict[str, Any]) -> None:
        calls.append((tool, arguments))

    collect()


def fuzz_mcp(url: str, examples: int, tally: Tally, run_seed: int) -> None:
    """Every tool, arbitrary arguments keyed by its own input schema, through the real SDK client."""
    import anyio
    from anyio.from_thread import start_blocking_portal
    from mcp.client.client import Client
    from mcp.client.streamable_http import streamable_http_client

    try:
        import httpx2 as mcp_httpx  # the transport the installed mcp SDK is built on
    except ImportError:  # pragma: no cover - older SDKs use httpx itself
        mcp_httpx = httpx  # type: ignore[no-redef]

    async def session_calls(calls: list[tuple[str, dict[str, Any]]]) -> list[str | None]:
        outcomes: list[str | None] = []
        async with (
            mcp_httpx.AsyncClient(timeout=60) as http_client,
            Client(streamable_http_client(f"{url}/mcp", http_client=http_client)) as session,
        ):
            for tool, arguments in calls:
                try:
                    with anyio.fail_after(60):
                        await session.call_tool(tool, arguments)
                    outcomes.append(None)
                except Exception as exc:  # the SDK raises for protocol errors, not tool errors
                    outcomes.append(f"{type(exc).__name__}: {exc}"[:300])
        return outcomes

    async def tool_schemas() -> dict[str, list[str]]:
        async with (
            mcp_httpx.AsyncClient(timeout=60) as http_client,
            Client(streamable_http_client(f"{url}/mcp", http_client=http_client)) as session,
        ):
            listed = await session.list_tools()
            return {tool.name: list((tool.input_schema or {}).get("properties", {})) for tool in listed.tools}

    with start_blocking_portal() as portal:
        schemas = portal.call(tool_schemas)
        calls: list[tuple[str, dict[str, Any]]] = []
        for tool, names in sorted(schemas.items()):
            if tool == "delete_memory":
                continue  # covered by DELETE /api/memories/{id}; it would eat the memories under test
            collect_calls(tool, names, examples, run_seed, calls)
        outcomes = portal.call(session_calls, calls)
    for (tool, arguments), outcome in zip(calls, outcomes, strict=True):
        door = f"MCP {tool}"
        tally.tried[door] += 1
        if outcome is not None:
            tally.bad(door, f"{outcome} (arguments={json.dumps(arguments)[:200]})")


# -- import files -----------------------------------------------------------------------------


def fuzz_import_files(env: dict[str, str], examples: int, tally: Tally, run_seed: int, work: Path) -> None:
    """`clarity import FILE` for each format, with files that are random, truncated or hostile."""
    header = json.dumps({"format": "clarity-export", "version": 1, "model": "x", "dimension": 384})
    fixed: list[tuple[str, bytes]] = [
        ("depth bomb", b"[" * 100_000 + b"]" * 100_000),
        ("export depth bomb", (header + "\n" + "[" * 50_000 + "]" * 50_000).encode()),
        (
            "non-object entities",
            b'{"type": "entity", "name": "x", "observations": [1, [2], {"a": 3}]}\n[1, 2]\n"str"\n',
        ),
        (
            "NaN vector",
            (
                header + "\n" + json.dumps({"memory": {"content": "x"}, "vector": [float("nan")] * 384})
            ).encode(),
        ),
        (
            "huge access_count",
            (header + "\n" + json.dumps({"memory": {"content": "x", "access_count": 10**30}})).encode(),
        ),
        ("empty", b""),
        ("binary", bytes(range(256)) * 50),
        ("BOM + garbage", b"\xef\xbb\xbf{not json"),
    ]
    rng = random.Random(run_seed)
    for i in range(examples):
        lines = [header] + [
            json.dumps(
                {
                    "memory": {
                        "content": rng.choice(["x", "", "a" * 100, None]),
                        "importance": rng.choice([0.5, 2, "x"]),
                    }
                }
            )
            for _ in range(rng.randint(0, 3))
        ]
        fixed.append((f"random export {i}", "\n".join(lines).encode()[: rng.randint(0, 2000)]))
        fixed.append((f"random bytes {i}", rng.randbytes(rng.randint(0, 500))))
    for name, content in fixed:
        for suffix in (".jsonl", ".json", ".md"):
            path = work / f"import-{uuid.uuid4().hex}{suffix}"
            path.write_bytes(content)
            run_cli(["import", str(path)], env, f"clarity import ({suffix})", name, tally)
    fifo = work / "import.fifo"
    os.mkfifo(fifo)
    run_cli(["import", str(fifo)], env, "clarity import (special files)", "a FIFO", tally)
    run_cli(["import", "/dev/zero"], env, "clarity import (special files)", "/dev/zero", tally)
    run_cli(["import", str(work)], env, "clarity import (special files)", "a directory of nothing", tally)


def run_cli(args: list[str], env: dict[str, str], door: str, case: str, tally: Tally) -> None:
    tally.tried[door] += 1
    try:
        result = subprocess.run(
            [sys.executable, "-m", "clarity", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        tally.bad(door, f"{case}: no answer in 60 s")
        return
    if "Traceback" in result.stderr or "Traceback" in result.stdout:
        tally.bad(door, f"{case}: traceback: {result.stderr[-300:]!r}")
    elif result.returncode not in (0, 1, 2):
        tally.bad(door, f"{case}: exit {result.returncode}: {result.stderr[-300:]!r}")


# -- the run ----------------------------------------------------------------------------------


@contextmanager
def daemon(work: Path) -> Iterator[tuple[str, dict[str, str], Path]]:
    sock = __import__("socket").socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    root = work / "root"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CLARITY_") and k not in ("QDRANT_URL", "QDRANT_API_KEY")
    }
    env.update(
        CLARITY_STORAGE__ROOT=str(root),
        CLARITY_SERVER__PORT=str(port),
        CLARITY_URL=f"http://127.0.0.1:{port}",
        MEMORY_CONFIG_PATH=str(work / "config.json"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    log_path = work / "daemon.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "clarity", "serve"],
            env=env,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(
                    f"fuzz: the daemon exited {process.returncode}:\n{log_path.read_text()[-3000:]}"
                )
            try:
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield url, env, log_path
    finally:
        alive = process.poll() is None
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if not alive:
            print("fuzz: the daemon had died during the run", file=sys.stderr)


def plant(client: httpx.Client) -> dict[str, dict[str, Any]]:
    planted = {}
    for i in range(3):
        response = client.post(
            "/api/memories",
            json={"content": f"fuzz survivor {i} {uuid.uuid4()}", "scope": "global", "tags": ["survivor"]},
        )
        response.raise_for_status()
        memory = response.json()["memory"]
        planted[memory["id"]] = memory
    return planted


def intact(client: httpx.Client, planted: dict[str, dict[str, Any]], tally: Tally) -> None:
    for memory_id, before in planted.items():
        tally.tried["planted memories intact"] += 1
        now = client.get(f"/api/memories/{memory_id}")
        if now.status_code != 200 or now.json().get("content") != before["content"]:
            tally.bad("planted memories intact", f"{memory_id}: {now.status_code} {now.text[:200]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=150, help="inputs per door (default 150)")
    parser.add_argument(
        "--quick", action="store_true", help="25 inputs per door, 3 random import files per format"
    )
    parser.add_argument("--seed", type=int, default=None, help="repeat one run")
    parser.add_argument("--json", type=Path, default=None, help="also write the counts here")
    args = parser.parse_args()
    examples = 25 if args.quick else args.examples
    run_seed = args.seed if args.seed is not None else random.randrange(2**32)
    tally = Tally()
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="clarity-fuzz-") as tmp,
        daemon(Path(tmp)) as (url, env, log_path),
    ):
        with httpx.Client(base_url=url, timeout=httpx.Timeout(30, connect=5)) as client:
            planted = plant(client)
            victim = client.post(
                "/api/memories", json={"content": f"fuzz target {uuid.uuid4()}", "scope": "global"}
            )
            memory_id = victim.json()["memory"]["id"]
            doors = rest_doors()
            steps: list[tuple[str, Callable[[], None]]] = []
            for door in doors:
                steps.append(
                    (
                        door.name,
                        lambda door=door: fuzz_door(client, door, examples, memory_id, tally, run_seed),
                    )
                )
                if door.name == "GET /static/*":
                    steps.append(("MCP tools", lambda: fuzz_mcp(url, examples, tally, run_seed)))
                    steps.append(
                        (
                            "import files",
                            lambda: fuzz_import_files(
                                env, 3 if args.quick else 10, tally, run_seed, Path(tmp)
                            ),
                        )
                    )
                    steps.append(("planted memories", lambda: intact(client, planted, tally)))
            for name, step in steps:
                print(f"fuzz: {name}", file=sys.stderr, flush=True)
                step()
            tally.tried["daemon alive"] += 1
            try:
                client.get("/healthz").raise_for_status()
            except httpx.HTTPError as exc:
                tally.bad("daemon alive", str(exc))
        log = log_path.read_text(encoding="utf-8", errors="replace")
        tally.tried["daemon log"] += 1
        if "Traceback" in log:
            at = log.index("Traceback")
            tally.bad("daemon log", log[max(0, at - 300) : at + 1500])
    report(tally, run_seed, time.monotonic() - started, args.json)
    return 1 if sum(tally.mishandled.values()) else 0


def report(tally: Tally, run_seed: int, seconds: float, out: Path | None) -> None:
    """Inputs the client refused to send (an over-long URL, a header it cannot encode) are left
    out of "tried": they never reached the daemon."""
    sent = {name: tally.tried[name] - tally.unsent[name] for name in tally.tried}
    width = max(len(name) for name in sent)
    print(f"{'door':<{width}}  {'tried':>6}  {'mishandled':>10}")
    for name, count in sent.items():
        print(f"{name:<{width}}  {count:>6}  {tally.mishandled[name]:>10}")
    total, bad = sum(sent.values()), sum(tally.mishandled.values())
    print(f"{'total':<{width}}  {total:>6}  {bad:>10}   (seed {run_seed}, {seconds:.0f} s)")
    for case in tally.cases:
        print(f"  - {case}")
    if out:
        out.write_text(
            json.dumps(
                {
                    "seed": run_seed,
                    "tried": sent,
                    "mishandled": tally.mishandled,
                    "cases": tally.cases,
                    "seconds": seconds,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    sys.exit(main())
