"""Many Claude Code windows at once: one daemon, 8 client processes, 5,000+ mixed operations.

Each client process is what one Claude Code instance does to the daemon: MCP tool calls over
streamable HTTP (its own MCP session), REST calls (the CLI, the dashboard) and hook posts with the
real payload shapes of Claude Code 2.1.330 (tests/fixtures/hook_payloads). The test asserts zero
errors and zero lost acknowledged writes (every id a store acknowledged is read back by GET, with
the content that was sent), and reports p50/p95/p99 latency per kind of operation in
bench-results/load.json.

The daemon runs with storage.active_shard_max_points=500, so the writes of the run seal shards
and index builds run while the load goes on; a probe process polls /healthz every 20 ms the whole
time and records the engine's index state, so /healthz is shown answering during background
optimization. A daemon on the torch runtime (seconds to load) shows /healthz answering while the
model loads (/readyz still 503).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .daemon_util import Daemon, free_port

pytestmark = pytest.mark.slow

WORKERS = 8
OPS_PER_WORKER = 640  # 8 x 640 = 5,120 operations
ACTIVE_SHARD_MAX_POINTS = 500
FIXTURES = Path(__file__).parent / "fixtures" / "hook_payloads"
RESULTS = Path(__file__).resolve().parent.parent / "bench-results" / "load.json"

WORKER = textwrap.dedent(
    """
    import json, sys, time, uuid
    from pathlib import Path

    import anyio, httpx, httpx2
    from mcp.client.client import Client
    from mcp.client.streamable_http import streamable_http_client

    url, worker, ops, project, fixtures = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], Path(sys.argv[5])
    hooks = {name: json.loads((fixtures / f"{name}.json").read_text())
             for name in ("UserPromptSubmit", "PreToolUse", "PostToolUse", "PostToolUseFailure")}
    session = str(uuid.uuid4())
    SERVICES = ["billing", "search", "auth", "ingest", "render", "queue", "mailer", "gateway"]
    records, acked, errors = [], [], []

    def content(i):
        service = SERVICES[(worker + i) % len(SERVICES)]
        return f"worker {worker} note {i}: the {service} service on host h{worker}x{i} listens on port {20000 + worker * 1000 + i}"

    def hook_body(name, i):
        body = {**hooks[name], "session_id": session, "cwd": project}
        if name == "UserPromptSubmit":
            body["prompt"] = f"which port does the {SERVICES[i % len(SERVICES)]} service use on h{worker}x{i}?"
        elif name in ("PreToolUse", "PostToolUse"):
            body["tool_input"] = {"command": f"curl -s localhost:{20000 + i}/health", "description": "probe"}
        else:
            body["tool_input"] = {"command": f"make test-{i % 7}", "description": "run tests"}
            body["error"] = f"Exit code 2\\nmake: *** No rule to make target 'test-{i % 7}'.  Stop."
        return body

    async def main():
        headers = {"X-Clarity-Project": project}
        async with (
            httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as http,
            httpx2.AsyncClient(headers=headers, timeout=120) as mcp_http,
            Client(streamable_http_client(f"{url}/mcp", http_client=mcp_http)) as mcp,
        ):
            async def rest(kind, method, path, **kwargs):
                response = await http.request(method, path, **kwargs)
                if response.status_code >= 300:
                    raise RuntimeError(f"{kind}: HTTP {response.status_code} {response.text[:300]}")
                return response.json()

            async def tool(kind, name, arguments):
                result = await mcp.call_tool(name, arguments)
                if result.is_error:
                    raise RuntimeError(f"{kind}: " + " ".join(getattr(b, "text", "") for b in result.content)[:300])
                return result.structured_content

            for i in range(ops):
                step = i % 10
                started = time.perf_counter()
                kind = "?"
                try:
                    if step == 0:
                        kind = "rest_store"
                        text = content(i)
                        stored = await rest(kind, "POST", "/api/memories", json={"content": text, "tags": [f"w{worker}"]})
                        acked.append([stored["id"], text, stored["status"]])
                    elif step == 1:
                        kind = "rest_search"
                        await rest(kind, "POST", "/api/search", json={"query": f"port of the {SERVICES[i % 8]} service", "limit": 5})
                    elif step == 2:
                        kind = "hook_UserPromptSubmit"
                        await rest(kind, "POST", "/hooks/UserPromptSubmit", json=hook_body("UserPromptSubmit", i))
                    elif step == 3:
                        kind = "mcp_store"
                        text = content(i)
                        stored = await tool(kind, "store_memory", {"content": text, "memory_type": "fact", "detail": True})
                        acked.append([stored["id"], text, stored["status"]])
                    elif step == 4:
                        kind = "mcp_retrieve"
                        await tool(kind, "retrieve_memory", {"query": f"host h{worker}x{i - 1}", "limit": 3})
                    elif step == 5:
                        kind = "hook_PreToolUse"
                        await rest(kind, "POST", "/hooks/PreToolUse", json=hook_body("PreToolUse", i))
                    elif step == 6:
                        kind = "rest_get"
                        memory_id = acked[-1][0]
                        got = await rest(kind, "GET", f"/api/memories/{memory_id}")
                        if got["id"] != memory_id:
                            raise RuntimeError(f"{kind}: asked for {memory_id}, got {got['id']}")
                    elif step == 7:
                        kind = "hook_PostToolUse"
                        await rest(kind, "POST", "/hooks/PostToolUse", json=hook_body("PostToolUse", i))
                    elif step == 8:
                        if i % 20 == 8:
                            kind = "mcp_list"
                            await tool(kind, "list_memories", {"limit": 10, "scope": "project"})
                        else:
                            kind = "rest_list"
                            await rest(kind, "GET", "/api/memories", params={"limit": 10, "tags": f"w{worker}"})
                    else:
                        kind = "hook_PostToolUseFailure"
                        await rest(kind, "POST", "/hooks/PostToolUseFailure", json=hook_body("PostToolUseFailure", i))
                    ok = True
                except Exception as exc:
                    ok = False
                    errors.append(f"{kind} #{i}: {type(exc).__name__}: {exc}")
                records.append([kind, round((time.perf_counter() - started) * 1000, 2), ok])

    started = time.monotonic()
    anyio.run(main)
    print(json.dumps({"worker": worker, "records": records, "acked": acked, "errors": errors,
                      "seconds": time.monotonic() - started}))
    """
)

PROBE = textwrap.dedent(
    """
    import json, sys, time
    import httpx

    url, stop_file = sys.argv[1], sys.argv[2]
    health, states = [], []
    with httpx.Client(base_url=url, timeout=10) as http:
        i = 0
        while True:
            if i % 25 == 0:  # about twice a second: stats counts points, keep it light
                info = http.get("/api/stats").json()["index"]
                states.append([time.monotonic(), info["index_state"], info["shards"], info["last_build_seconds"]])
                import os
                if os.path.exists(stop_file):
                    break
            t = time.perf_counter()
            ok = http.get("/healthz").status_code == 200
            health.append([time.monotonic(), round((time.perf_counter() - t) * 1000, 2), ok])
            i += 1
            time.sleep(0.02)
    print(json.dumps({"health": health, "states": states}))
    """
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "p50_ms": round(statistics.median(values), 1),
        "p95_ms": round(percentile(values, 95), 1),
        "p99_ms": round(percentile(values, 99), 1),
        "max_ms": round(max(values), 1),
    }


def state_at(states: list[list[Any]], t: float) -> str:
    """The index state last observed at or before monotonic time t."""
    seen = [s[1] for s in states if s[0] <= t]
    return str(seen[-1]) if seen else "unknown"


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A fresh daemon, ready."""
    daemon = Daemon(
        tmp_path_factory.mktemp("load"),
        free_port(),
        env={"CLARITY_STORAGE__ACTIVE_SHARD_MAX_POINTS": str(ACTIVE_SHARD_MAX_POINTS)},
    )
    daemon.start()
    daemon.wait_ready()
    yield daemon, None
    daemon.stop()


def test_healthz_answers_fast_while_the_model_loads(tmp_path: Path) -> None:
    """On the torch runtime (the fallback when no ONNX export can be made), whose load takes
    seconds and whose imports hold the GIL for stretches: the longest load there is to watch.
    The default ONNX runtime is ready with /healthz (docs/benchmarks.md, first hour)."""
    daemon = Daemon(tmp_path / "root", free_port(), env={"CLARITY_EMBEDDING__RUNTIME": "torch"})
    daemon.start()
    loading: list[float] = []
    try:
        daemon.wait_healthy(120)
        with httpx.Client(base_url=daemon.url, timeout=10) as http:
            deadline = time.monotonic() + 300
            while http.get("/readyz").status_code == 503:
                assert time.monotonic() < deadline, daemon.log()
                t = time.perf_counter()
                assert http.get("/healthz").status_code == 200
                loading.append((time.perf_counter() - t) * 1000)
                time.sleep(0.02)
            assert http.get("/readyz").json()["runtime"] == "torch"
    finally:
        daemon.stop()
    print(f"/healthz while the model loads: {summary(loading) if loading else 'model was ready at once'}")
    assert len(loading) >= 20, "the model loaded too fast to observe; expected seconds on this machine"
    # Loading runs in a worker thread; a rare call waits out a stretch where the import of torch
    # holds the GIL (about half a second at most seen on this 2-core VM, shared with other jobs).
    assert percentile(loading, 95) < 100, summary(loading)
    assert max(loading) < 1000, summary(loading)


def test_load_mixed_clients(started: Any, tmp_path: Path) -> None:
    daemon, _ = started
    projects = [tmp_path / "project-a", tmp_path / "project-b"]
    for project in projects:
        project.mkdir()
    stop_file = tmp_path / "stop-probe"
    probe = subprocess.Popen(
        [sys.executable, "-c", PROBE, daemon.url, str(stop_file)], stdout=subprocess.PIPE, text=True
    )
    began = began_mono = time.monotonic()
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                daemon.url,
                str(w),
                str(OPS_PER_WORKER),
                str(projects[w % 2]),
                str(FIXTURES),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(WORKERS)
    ]
    outputs = [w.communicate(timeout=900) for w in workers]
    duration = time.monotonic() - began
    stop_file.touch()
    probe_out, _ = probe.communicate(timeout=60)
    for proc, (_, stderr) in zip(workers, outputs, strict=True):
        assert proc.returncode == 0, stderr[-3000:]
    reports = [json.loads(stdout) for stdout, _ in outputs]
    probed = json.loads(probe_out)

    records = [r for report in reports for r in report["records"]]
    errors = [e for report in reports for e in report["errors"]]
    acked = [a for report in reports for a in report["acked"]]

    # Every acknowledged write is there, with the content that was sent.
    lost, wrong = [], []
    with httpx.Client(base_url=daemon.url, timeout=60) as http:
        for memory_id, content, status in acked:
            got = http.get(f"/api/memories/{memory_id}")
            if got.status_code != 200:
                lost.append((memory_id, got.status_code))
            elif status == "created" and got.json()["content"] != content:
                wrong.append((memory_id, content, got.json()["content"]))
        final = http.get("/api/stats").json()
        ready = http.get("/readyz").json()

    by_kind: dict[str, list[float]] = {}
    for kind, ms, _ in records:
        by_kind.setdefault(kind, []).append(ms)
    health = [h[1] for h in probed["health"]]
    building = [s for s in probed["states"] if s[1] == "building"]
    # /healthz samples taken while a build was seen running (between building observations).
    windows, current = [], None
    for t, state, *_ in probed["states"]:
        if state == "building":
            current = [current[0] if current else t, t]
        elif current:
            windows.append((current[0], t))
            current = None
    if current:  # still building when the probe stopped: it ran until the last sample at least
        windows.append((current[0], max([current[1], *(t for t, *_ in probed["health"])])))
    during_build = [ms for t, ms, _ in probed["health"] if any(a <= t <= b for a, b in windows)]

    result = {
        "workers": WORKERS,
        "operations": len(records),
        "errors": len(errors),
        "acknowledged_writes": len(acked),
        "lost_writes": len(lost),
        "wrong_content": len(wrong),
        "duration_s": round(duration, 1),
        "throughput_ops_s": round(len(records) / duration, 1),
        "latency": {
            "all": summary([r[1] for r in records]),
            **{k: summary(v) for k, v in sorted(by_kind.items())},
        },
        "healthz_during_load": summary(health),
        "healthz_during_index_builds": summary(during_build) if during_build else None,
        "healthz_slowest": [
            {"at_s": round(t - began_mono, 1), "ms": ms, "index_state": state_at(probed["states"], t)}
            for t, ms, _ in sorted(probed["health"], key=lambda h: -h[1])[:5]
        ],
        "index_builds_seen": len(windows),
        "final_index": final["index"],
        "total_memories": final["total"],
        "learning_backlog_at_end": ready.get("learning_backlog"),
        "active_shard_max_points": ACTIVE_SHARD_MAX_POINTS,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))

    assert len(records) >= 5000
    assert not errors, errors[:20]
    assert not lost and not wrong, (lost[:10], wrong[:10])
    assert all(ok for *_, ok in probed["health"])
    # Background optimization ran during the load, and /healthz kept answering throughout: well
    # under a second while an index builds, and fast while 8 clients saturate both cores.
    assert final["index"]["shards"]["segments"], final["index"]
    assert building, "no index build was observed while the load ran"
    assert during_build, "no /healthz sample fell inside an index build"
    assert max(during_build) < 800, summary(during_build)
    assert percentile(health, 99) < 250, summary(health)
    assert max(health) < 2000, summary(health)
