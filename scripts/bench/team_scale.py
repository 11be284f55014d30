"""The team server at scale: fill rate, index build time, write, change-page and first-pull latency,
RSS and disk per memory, with N shared memories on the embedded engine.

    nice -n 5 .venv/bin/python scripts/bench/team_scale.py [--quick] [--size 100000] [--projects 50]
        [--authors 3] [--calls 200] [--workdir DIR [--fill-only]] [--out DIR]

A real ``clarity serve --team`` on loopback over TLS (a private CA and a certificate made for the
run, as ``tests/team_util.py`` makes them), on the embedded engine under its own storage root,
with ``--authors`` users of the role ``write`` made by ``clarity team user add``. Its
``team.writes_per_minute`` is raised to the setting's maximum (1,000,000) for the fill: at the
default 600 a fill of 100,000 memories would take three hours of 429s. With ``--workdir`` the
storage root, the users' tokens and how far the fill got are kept there, and a later run reuses
them (an interrupted fill resumes: op and memory ids are derived from the memory's number, so a
batch sent twice answers "duplicate"); ``--fill-only`` stops after the fill and its builds.

- **fill**: N memories of the bench corpus (``common.corpus``: real all-MiniLM-L6-v2 embeddings
  up to 20,000, DERIVED vectors above: 0.7a + 0.3b of two real ones plus noise), spread over
  ``--projects`` projects round robin, sent through ``POST /team/v1/ops`` in batches of
  ``protocol.MAX_OPS`` (256, the most a request may hold), each batch by one of the authors in
  turn, two requests in flight (the server applies one at a time; the other is being parsed).
  **Fill rate** = N / wall seconds from the first request to the last answer.
- **build**: index builds run in the team server's own child process throughout the fill. The
  team server has no ``/readyz`` nor stats call, so the layout is read from outside: the engine's
  ``manifest.json`` under the storage root (no shard ``sealing``, ``merging``, ``reserved`` for a
  build's result or ``retired`` by a swap not yet cleared) and no build child process of the
  server, both holding for 5 s (a build's end starts the next merge at once). **Build time** =
  from the fill's last answer until then; **build busy** = the seconds a build child ran during
  the fill (sampled each second).
- **RSS and disk**: VmRSS of the team server process (not its build child) once the builds are
  done, then again after a restart on the same root and a page of changes read from each project
  (the heap without what taking the fill left), and the bytes on disk of its storage root (the
  engine's ``qdrant/`` and the state and audit log under ``app-data/``), each divided by N.
- **/changes** (the daemon's client, ``team/client.py``: one keep-alive httpx connection, TLS,
  each page parsed into ``ChangesResponse``; timed end to end), a page of ``sync.PAGE`` (200),
  each call on the next project: *from 0* (a first pull's first page), *recent, quiet* (since a
  minute ago, and not before the fill's end, on a filled project: nothing new, a daemon's usual
  pull), *recent, busy* (since a minute ago on the project the write figures below just wrote
  to: a full page). The quiet and from-0 pages are read on the settled layout; the busy one
  while the writes' builds run.
- **first pull**: a developer daemon's replica made from nothing: a fresh storage root, the
  daemon's ``MemoryService`` with the real model loaded, and its ``TeamSync.pull_project`` (the
  sync thread's own pull: pages of 200, each written into the local store with the vectors
  sent) for one project of N/projects memories. Time, and records/s.
- **put**: ``TeamClient.push`` (the daemon's call) of one new shared memory, and of a batch of 100,
  ``--calls`` times each, into a project of their own, after the reads above (they add
  ``--calls`` x 101 memories, and seal and build as any writes do: the fraction of calls during
  which a build ran is given, and when each call over a second started, to set beside the
  server log's seals and builds).

Each figure is p50/p95/p99 over ``--calls`` calls (``--quick``: 2,000 memories, 10 calls, a 500
point active shard so that the fill seals and merges) and is printed with the 1-minute load.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
from common import Corpus, corpus, disk_bytes, free_port, machine, parser, percentiles, write_results
from rich.console import Console

from clarity.models import content_hash
from clarity.team.protocol import MAX_OPS, PREFIX, PutOp
from tests.team_util import TeamServer

console = Console(stderr=True)
WRITES_PER_MINUTE = 1_000_000  # team.writes_per_minute's upper limit (config_team.py)
SETTLED_FOR = 5.0  # seconds the layout must stay idle to count as built
IN_FLIGHT = 2  # fill requests at once


def load() -> float:
    return round(os.getloadavg()[0], 2)


def project_name(i: int) -> str:
    return f"team-scale-p{i:03d}"


# -- the team server process, seen from outside ---------------------------------------------------


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with suppress(OSError):  # a thread that just ended
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


def manifest(root: Path) -> dict[str, Any]:
    path = root / "qdrant" / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {}


def idle(root: Path, pid: int) -> bool:
    """No build running: nothing frozen (``sealing``, ``merging``), no result reserved, no shard
    a swap retired (the build thread keeps them for its grace period and removes them just before
    it starts the next merge, ``store/edge/builder.py``), and no build child."""
    layout = manifest(root)
    busy = ("sealing", "merging", "reserved", "retired")
    return not any(layout.get(key) for key in busy) and not children(pid)


class Monitor:
    """Samples each second whether a build child runs and the server's RSS."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, bool, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.samples.append((time.monotonic(), bool(children(self.pid)), rss_mb(self.pid)))
            except OSError:
                return

    def building_seconds(self, start: float, stop: float) -> int:
        return sum(1 for t, building, _ in self.samples if start <= t <= stop and building)

    def building_at(self, moment: float) -> bool:
        near = [s for s in self.samples if abs(s[0] - moment) <= 1.0]
        return any(building for _, building, _ in near)

    def peak_rss_mb(self) -> float:
        return round(max((rss for *_, rss in self.samples), default=0.0), 1)

    def stop(self) -> None:
        self._stop.set()


def wait_builds(root: Path, pid: int, timeout: float) -> float:
    """Seconds until the layout is idle (and stays so for SETTLED_FOR)."""
    started = time.monotonic()
    since: float | None = None
    while time.monotonic() - started < timeout:
        if idle(root, pid):
            since = since or time.monotonic()
            if time.monotonic() - since >= SETTLED_FOR:
                return since - started
        else:
            since = None
        time.sleep(0.5)
    raise SystemExit(f"the team server's index builds did not finish within {timeout:.0f} s")


# -- the fill ---------------------------------------------------------------------------------------


def fill_body(data: Corpus, start: int, stop: int, projects: int, model: str, now: float) -> bytes:
    """A ``POST /ops`` body of puts for memories ``start..stop``: ids from the memory's number."""
    ops = []
    for i in range(start, stop):
        text = data.texts[i]
        created = dt.datetime.fromtimestamp(now - 90 * 86400 * (1 - i / len(data)), dt.UTC).isoformat()
        memory = {
            "id": f"{i:08x}-0000-4000-8000-{i:012x}",
            "content": text,
            "memory_type": "fact",
            "scope": project_name(i % projects),
            "created_at": created,
            "updated_at": created,
            "content_hash": content_hash(text),
            "shared": True,
        }
        op_id = f"{i:08x}-0000-4000-9000-{i:012x}"
        ops.append(
            {
                "op_id": op_id,
                "kind": "put",
                "memory": memory,
                "vector": data.vectors[i].tolist(),
                "model": model,
            }
        )
    return json.dumps({"ops": ops}).encode()


def fill(
    server: TeamServer,
    tokens: dict[str, str],
    data: Corpus,
    args: Any,
    model: str,
    state: dict[str, Any],
    save: Callable[[], None],
) -> dict[str, Any]:
    """Send memories ``state['filled']..N``; returns counts. ``state['filled']`` advances as
    batches are answered, in order, so an interrupted fill resumes there."""
    authors = sorted(tokens)
    clients = {
        name: httpx.Client(
            base_url=f"{server.url}{PREFIX}",
            verify=server.trust(),
            timeout=600,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        for name, token in tokens.items()
    }
    counts = {"applied": 0, "duplicate": 0, "refused": 0}
    refusals: list[str] = []
    now = time.time()

    def send(start: int) -> tuple[int, dict[str, int], list[str]]:
        stop = min(len(data), start + MAX_OPS)
        body = fill_body(data, start, stop, args.projects, model, now)
        client = clients[authors[(start // MAX_OPS) % len(authors)]]
        answer = client.post("/ops", content=body)
        if answer.status_code != 200:
            raise SystemExit(f"fill: POST /ops answered {answer.status_code}: {answer.text[:500]}")
        seen = {"applied": 0, "duplicate": 0, "refused": 0}
        why = []
        for result in answer.json()["results"]:
            seen[result["status"]] += 1
            if result["status"] == "refused":
                why.append(result["error"])
        return stop, seen, why

    first = state["filled"]
    starts = range(first, len(data), MAX_OPS)
    started = time.perf_counter()
    try:
        with (
            ThreadPoolExecutor(IN_FLIGHT) as pool,
            progress_bar(len(data) - first, "filling the team server") as advance,
        ):
            for stop, seen, why in pool.map(send, starts):
                for key, value in seen.items():
                    counts[key] += value
                refusals += why[: max(0, 5 - len(refusals))]
                advance(stop - state["filled"])
                state["filled"] = stop
                save()
    finally:
        for client in clients.values():
            client.close()
    seconds = time.perf_counter() - started
    sent = len(data) - first
    return {
        "sent": sent,
        "from": first,
        **counts,
        "refusals": refusals,
        "seconds": round(seconds, 1),
        "ops_per_second": round(sent / seconds, 1) if seconds else None,
    }


@contextmanager
def progress_bar(total: int, what: str) -> Iterator[Callable[[int], None]]:
    from common import progress

    with progress(console) as bar:
        task = bar.add_task(what, total=total)
        yield lambda n: bar.advance(task, n)


# -- the measurements -------------------------------------------------------------------------------


def timed(calls: int, call: Callable[[int], Any]) -> list[float]:
    samples = []
    for i in range(calls):
        started = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - started)
    return samples


def show(what: str, figures: dict[str, Any]) -> dict[str, Any]:
    figures["load"] = load()
    console.print(
        f"{what}: p50 {figures['p50']} / p95 {figures['p95']} / p99 {figures['p99']} ms "
        f"(n={figures['n']}, load {figures['load']})"
    )
    return figures


def team_client(server: TeamServer, token: str) -> Any:
    from clarity.config_team import TeamSettings
    from clarity.team.client import TeamClient

    return TeamClient(TeamSettings(url=server.url, token=token, ca_file=server.ca, timeout_seconds=120))


def new_put(data: Corpus, i: int, project: str, model: str) -> PutOp:
    from clarity.models import Memory

    text = f"{data.texts[i % len(data)]} (written {i})"
    now = dt.datetime.now(dt.UTC)
    memory = Memory(
        id=str(uuid.uuid4()),
        content=text,
        memory_type="fact",
        scope=project,
        created_at=now,
        updated_at=now,
        content_hash=content_hash(text),
        shared=True,
    )
    return PutOp(
        op_id=str(uuid.uuid4()), memory=memory, vector=data.vectors[i % len(data)].tolist(), model=model
    )


def measure_changes(client: Any, args: Any, filled_at_ms: int) -> dict[str, Any]:
    """``filled_at_ms``: when the fill's last answer came; a quiet cursor is never before it (the
    cursor a daemon holds after pulling the fill), so a page after a short fill is quiet too."""
    from clarity.team.sync import PAGE

    out: dict[str, Any] = {"page": PAGE}
    sizes: list[int] = []

    def from_zero(i: int) -> None:
        page = client.changes([project_name(i % args.projects)], 0, PAGE)
        sizes.append(len(page.changes))

    out["from_0"] = show(f"GET /changes from 0, a page of {PAGE}", percentiles(timed(args.calls, from_zero)))
    out["from_0"]["changes_per_page"] = round(sum(sizes) / len(sizes), 1)
    sizes.clear()

    def quiet(i: int) -> None:
        since = max(int(time.time() * 1000) - 60_000, filled_at_ms)
        sizes.append(len(client.changes([project_name(i % args.projects)], since, PAGE).changes))

    out["recent_quiet"] = show(
        "GET /changes since a minute ago, nothing new", percentiles(timed(args.calls, quiet))
    )
    out["recent_quiet"]["changes_per_page"] = round(sum(sizes) / len(sizes), 1)
    return out


def measure_puts(client: Any, data: Corpus, args: Any, model: str, monitor: Monitor) -> dict[str, Any]:
    project = "team-scale-writes"
    singles = [new_put(data, i, project, model) for i in range(args.calls)]
    batches = [
        [new_put(data, args.calls + b * 100 + j, project, model) for j in range(100)]
        for b in range(args.calls)
    ]
    building: list[bool] = []
    slow: list[str] = []  # when a call took over a second, to set beside the server log's builds

    def push(ops: list[PutOp]) -> None:
        started = time.time()
        answer = client.push(ops)
        if any(result.status != "applied" for result in answer.results):
            raise SystemExit(f"put: not applied: {answer.results[0]}")
        building.append(bool(children(monitor.pid)))
        if time.time() - started > 1.0:
            at = dt.datetime.fromtimestamp(started).strftime("%H:%M:%S.%f")[:-3]
            slow.append(f"{at} took {time.time() - started:.2f} s ({len(ops)} ops)")

    out = {"project": project}
    out["one"] = show(
        "POST /ops, one new shared memory", percentiles(timed(args.calls, lambda i: push([singles[i]])))
    )
    out["one"]["calls_during_a_build"] = round(sum(building) / len(building), 2)
    building.clear()
    out["batch_100"] = show(
        "POST /ops, a batch of 100", percentiles(timed(args.calls, lambda i: push(batches[i])))
    )
    out["batch_100"]["calls_during_a_build"] = round(sum(building) / len(building), 2)
    out["batch_100"]["ops_per_second_p50"] = round(100_000 / out["batch_100"]["p50"], 1)
    out["written"] = args.calls * 101
    out["slow_calls"] = slow
    return out


def measure_recent_busy(client: Any, args: Any, project: str) -> dict[str, Any]:
    from clarity.team.sync import PAGE

    sizes: list[int] = []

    def busy(i: int) -> None:
        since = int(time.time() * 1000) - 60_000
        sizes.append(len(client.changes([project], since, PAGE).changes))

    figures = show(
        "GET /changes since a minute ago, the written project", percentiles(timed(args.calls, busy))
    )
    figures["changes_per_page"] = round(sum(sizes) / len(sizes), 1)
    return figures


def restarted(server: TeamServer, root: Path, client: Any, args: Any) -> int:
    """The team server stopped and started again on its root (builds done), then a page of changes
    from 0 read for each project: the process a team runs after a restart, without what taking
    the fill left on its heap. Its pid."""
    from clarity.team.sync import PAGE

    server.stop(timeout=60)
    server.start()
    server.wait_healthy(120)
    assert server.process is not None
    wait_builds(root, server.process.pid, 3600)
    for i in range(args.projects):
        client.changes([project_name(i)], 0, PAGE)
    return server.process.pid


def first_pull(server: TeamServer, token: str, project: str, work: Path, provider: Any) -> dict[str, Any]:
    """A developer daemon's replica of ``project`` made from nothing by its own sync code."""
    from clarity.config import Settings
    from clarity.memory import MemoryService
    from clarity.store import MemoryFilter, open_store
    from clarity.team.sync import TeamSync

    root = work / "replica"
    shutil.rmtree(root, ignore_errors=True)
    team = {"url": server.url, "token": token, "ca_file": str(server.ca), "timeout_seconds": 120}
    settings = Settings(storage={"root": str(root)}, team=team)
    service = MemoryService(settings, open_store(settings), provider)
    sync = TeamSync(settings, service)
    try:
        sync.whoami = sync.client.whoami()
        load_before = load()
        started = time.perf_counter()
        sync.pull_project(project, 0)
        seconds = time.perf_counter() - started
        records = service.db.count(MemoryFilter(scopes=[project]))
    finally:
        sync.stop()
        service.close()
    shutil.rmtree(root, ignore_errors=True)
    figures = {
        "project": project,
        "records": records,
        "seconds": round(seconds, 2),
        "records_per_second": round(records / seconds, 1),
        "load_before": load_before,
        "load": load(),
    }
    console.print(
        f"a daemon's first pull of {project}: {records} memories in {figures['seconds']} s, "
        f"{figures['records_per_second']} records/s (load {load_before} -> {figures['load']})"
    )
    return figures


# -- the run ------------------------------------------------------------------------------------------


def plot(fig: Any, result: dict[str, Any]) -> None:
    rows = [
        ("put, one", result["put"]["one"]),
        ("put, batch of 100", result["put"]["batch_100"]),
        ("changes from 0", result["changes"]["from_0"]),
        ("changes, recent quiet", result["changes"]["recent_quiet"]),
        ("changes, recent busy", result["changes"]["recent_busy"]),
    ]
    ax = fig.add_subplot(1, 1, 1)
    for k, q in enumerate(("p50", "p95", "p99")):
        ax.barh([i + k * 0.27 for i in range(len(rows))], [row[q] for _, row in rows], height=0.27, label=q)
    ax.set_yticks([i + 0.27 for i in range(len(rows))], [name for name, _ in rows])
    ax.set_xlabel("ms")
    ax.set_xscale("log")
    ax.legend()
    pull = result["first_pull"]
    ax.set_title(
        f"team server at {result['size']:,} memories: fill {result['fill']['ops_per_second']} ops/s, "
        f"first pull {pull['records_per_second']} records/s, RSS {result['rss']['bytes_per_memory']} B/memory"
    )


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--size", type=int, default=100_000, help="memories filled (1000000 is possible)")
    p.add_argument("--projects", type=int, default=50, help="projects the memories are spread over")
    p.add_argument("--authors", type=int, default=3, help="users of the role write who send the fill")
    p.add_argument("--calls", type=int, default=200, help="timed calls per figure")
    p.add_argument(
        "--active-max", type=int, default=None, help="storage.active_shard_max_points of the server"
    )
    p.add_argument("--workdir", type=Path, default=None, help="keep the filled team server here and reuse it")
    p.add_argument(
        "--fill-only", action="store_true", help="fill (with --workdir), wait for the builds, stop"
    )
    args = p.parse_args()
    if args.quick:
        args.size, args.calls, args.active_max = 2000, 10, args.active_max or 500
    if args.fill_only and args.workdir is None:
        p.error("--fill-only: needs --workdir, where the filled team server is kept")
    os.environ["MEMORY_CONFIG_PATH"] = os.devnull  # this process's settings: defaults, not the user's
    info = machine()
    console.print(f"machine: {info}")
    keep = args.workdir is not None
    work = args.workdir or Path(tempfile.mkdtemp(prefix="clarity-bench-team-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        result = run(args, work, info)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    if result is not None:
        write_results(args.out, "team_scale", result, lambda fig: plot(fig, result))
    return 0


def run(args: Any, work: Path, info: dict[str, Any]) -> dict[str, Any] | None:
    from common import embedder

    data = corpus(args.size, console)
    provider = embedder(threads=1)
    model = provider.identity
    key = {
        "size": args.size,
        "projects": args.projects,
        "authors": args.authors,
        "active_max": args.active_max,
    }
    name = f"team-{args.size}-{args.projects}-{args.authors}-{args.active_max or 'default'}"
    root = work / name
    state_path = work / f"{name}.json"
    state: dict[str, Any] = json.loads(state_path.read_text()) if state_path.exists() else {}
    if state.get("key") != key or state.get("model") != model:
        shutil.rmtree(root, ignore_errors=True)
        state = {"key": key, "model": model, "filled": 0, "tokens": {}, "fill": None, "written": 0}

    def save() -> None:
        state_path.write_text(json.dumps(state))
        state_path.chmod(0o600)

    env = {"CLARITY_TEAM__WRITES_PER_MINUTE": str(WRITES_PER_MINUTE)}
    if args.active_max:
        env["CLARITY_STORAGE__ACTIVE_SHARD_MAX_POINTS"] = str(args.active_max)
    server = TeamServer(root, free_port(), work / "tls", env=env)
    server.start()
    monitor: Monitor | None = None
    try:
        server.wait_healthy(120)
        assert server.process is not None
        pid = server.process.pid
        monitor = Monitor(pid)
        if not state["tokens"]:
            state["tokens"] = {f"author{i}": server.add_user(f"author{i}") for i in range(args.authors)}
            save()
        tokens = state["tokens"]
        result: dict[str, Any] = {
            "machine": info,
            "size": args.size,
            "projects": args.projects,
            "authors": args.authors,
            "corpus": {"real": data.real, "derived_vectors": len(data) - data.real},
            "server": {
                "engine": "embedded",
                "writes_per_minute": WRITES_PER_MINUTE,
                "active_shard_max_points": args.active_max or "default",
                "tls": True,
            },
        }
        if state["filled"] < args.size:
            fill_start = time.monotonic()
            filled = fill(server, tokens, data, args, model, state, save)
            fill_end, ended_at_ms = time.monotonic(), int(time.time() * 1000)
            filled["build_busy_seconds"] = monitor.building_seconds(fill_start, fill_end)
            filled["load"] = load()
            console.print(
                f"fill: {filled['sent']} memories in {filled['seconds']} s, {filled['ops_per_second']} ops/s "
                f"({filled['applied']} applied, {filled['duplicate']} duplicate, {filled['refused']} refused; "
                f"a build ran {filled['build_busy_seconds']} s of it; load {filled['load']})"
            )
            filled["ended_at_ms"] = ended_at_ms
            state["fill"] = filled
            save()
            build = wait_builds(root, pid, 6 * 3600)
            filled["build_seconds_after_fill"] = round(build, 1)
            console.print(f"index builds done {build:.1f} s after the fill's last answer (load {load()})")
            save()
        else:
            wait_builds(root, pid, 6 * 3600)
            state["fill"] = {**(state["fill"] or {}), "reused": True}
        result["fill"] = state["fill"]
        result["layout"] = {key: manifest(root).get(key) for key in ("active", "segments")} | {
            "read_from": "qdrant/manifest.json and the server's build child (no stats call)"
        }
        held = args.size + state["written"]
        result["memories_held"] = held
        qdrant, app = disk_bytes(root / "qdrant"), disk_bytes(root / "app-data")
        rss = rss_mb(pid)
        result["rss"] = {
            "mb": round(rss, 1),
            "bytes_per_memory": round(rss * 1048576 / held, 1),
            "load": load(),
        }
        result["disk"] = {
            "engine_bytes_per_memory": round(qdrant / held, 1),
            "state_and_audit_bytes_per_memory": round(app / held, 1),
            "total_mb": round((qdrant + app) / 1048576, 1),
            "load": load(),
        }
        console.print(
            f"team server RSS {result['rss']['mb']} MB, {result['rss']['bytes_per_memory']} B per memory; disk "
            f"{result['disk']['engine_bytes_per_memory']} B per memory in the engine + "
            f"{result['disk']['state_and_audit_bytes_per_memory']} B state and audit ({held} memories; load {load()})"
        )
        if args.fill_only:
            return None
        client = team_client(server, tokens[sorted(tokens)[0]])
        try:
            monitor.stop()
            monitor = Monitor(restarted(server, root, client, args))
            result["rss"]["after_restart"] = restart_rss = {
                "mb": round(rss_mb(monitor.pid), 1),
                "load": load(),
            }
            restart_rss["bytes_per_memory"] = round(restart_rss["mb"] * 1048576 / held, 1)
            console.print(
                f"team server RSS after a restart and a page of each project: {restart_rss['mb']} MB, "
                f"{restart_rss['bytes_per_memory']} B per memory (load {restart_rss['load']})"
            )
            result["changes"] = measure_changes(client, args, state["fill"]["ended_at_ms"])
            result["first_pull"] = first_pull(
                server, tokens[sorted(tokens)[0]], project_name(0), work, provider
            )
            result["put"] = measure_puts(client, data, args, model, monitor)
            state["written"] += result["put"]["written"]
            save()
            result["changes"]["recent_busy"] = measure_recent_busy(client, args, result["put"]["project"])
        finally:
            client.close()
        result["rss"]["peak_after_restart_mb"] = monitor.peak_rss_mb()
        result["estimate_1m"] = estimate(result)
        return result
    finally:
        if monitor is not None:
            monitor.stop()
        server.stop(timeout=60)


def estimate(result: dict[str, Any]) -> dict[str, Any]:
    """What filling 1,000,000 memories would take at this run's fill rate, and whether the builds
    kept up with the fill (the share of it a build ran): builds that keep up leave the last one
    (at most one segment of storage.segment_max_points, 500k) to wait for after the fill."""
    fill = result["fill"]
    if not fill.get("ops_per_second"):
        return {}
    return {
        "fill_hours": round(1_000_000 / fill["ops_per_second"] / 3600, 2),
        "build_busy_share_of_fill": round(fill["build_busy_seconds"] / max(1.0, fill["seconds"]), 2),
    }


if __name__ == "__main__":
    sys.exit(main())
