"""An acknowledged write survives ``kill -9`` of the daemon at any moment.

Three kinds of clients write at once (REST, MCP tool calls over streamable HTTP, and the
UserPromptSubmit hook's "remember ..." capture, whose reply names the stored id). The daemon is
killed with SIGKILL at a random moment, several times, with a tiny active shard so that kills
also land during index builds. After a restart every acknowledged id must be there with its
content, and no index builder may outlive the daemon that started it.
"""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client

from .daemon_util import Daemon, free_port

pytestmark = pytest.mark.slow

PAYLOADS = Path(__file__).parent / "fixtures" / "hook_payloads"
_ID = re.compile(r"\(id ([0-9a-f-]{36})\)")


class Acks:
    """What the daemon acknowledged: id -> content, filled by every writer."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.written: dict[str, str] = {}

    def add(self, memory_id: str, content: str) -> None:
        with self.lock:
            self.written[memory_id] = content


def rest_writer(daemon: Daemon, acks: Acks, stop: threading.Event, tag: str) -> None:
    with httpx.Client(base_url=f"{daemon.url}/api", timeout=10) as http:
        n = 0
        while not stop.is_set():
            content = f"rest {tag} write {n}: the cache key for shard {uuid.uuid4().hex[:8]} rotates hourly"
            n += 1
            try:
                response = http.post("/memories", json={"content": content, "scope": "global"})
            except httpx.HTTPError:
                continue  # the daemon is gone: nothing acknowledged
            if response.status_code in (200, 201):
                body = response.json()
                acks.add(body["id"], body["memory"]["content"])


def hook_writer(daemon: Daemon, acks: Acks, stop: threading.Event, cwd: Path, tag: str) -> None:
    template = json.loads((PAYLOADS / "UserPromptSubmit.json").read_text())
    with httpx.Client(timeout=10) as http:
        n = 0
        while not stop.is_set():
            what = f"hook {tag} note {n}: deploy window {uuid.uuid4().hex[:8]} is on Thursdays"
            n += 1
            payload = {**template, "cwd": str(cwd), "prompt": f"remember that {what}"}
            try:
                response = http.post(f"{daemon.url}/hooks/UserPromptSubmit", json=payload)
            except httpx.HTTPError:
                continue
            if response.status_code != 200:
                continue
            context = response.json().get("hookSpecificOutput", {}).get("additionalContext", "")
            if match := _ID.search(context):
                acks.add(match.group(1), what)


def mcp_writer(daemon: Daemon, acks: Acks, stop: threading.Event, tag: str) -> None:
    async def main() -> None:
        n = 0
        while not stop.is_set():
            try:
                async with (
                    httpx2.AsyncClient(timeout=10) as http,
                    Client(streamable_http_client(f"{daemon.url}/mcp", http_client=http)) as client,
                ):
                    while not stop.is_set():
                        content = f"mcp {tag} fact {n}: queue {uuid.uuid4().hex[:8]} drains at 500 msgs/s"
                        n += 1
                        result = await client.call_tool(
                            "store_memory", {"content": content, "scope": "global", "detail": True}
                        )
                        if not result.is_error:
                            acks.add(
                                result.structured_content["id"],
                                result.structured_content["memory"]["content"],
                            )
            except Exception:
                await anyio.sleep(0.05)  # killed mid-call: reconnect once it is back

    anyio.run(main)


def builders_of(root: Path) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "clarity.store.edge.child" in line and str(root) in line]


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    root = tmp_path / "root"
    port = free_port()
    env = {"CLARITY_STORAGE__ACTIVE_SHARD_MAX_POINTS": "120"}
    acks = Acks()
    rng = random.Random(7)
    rounds = 3
    for round_number in range(rounds):
        daemon = Daemon(root, port, env=env).start()
        daemon.wait_ready()
        stop = threading.Event()
        tag = f"r{round_number}"
        threads = [
            threading.Thread(target=rest_writer, args=(daemon, acks, stop, tag)),
            threading.Thread(target=hook_writer, args=(daemon, acks, stop, tmp_path, tag)),
            threading.Thread(target=mcp_writer, args=(daemon, acks, stop, tag)),
        ]
        for thread in threads:
            thread.start()
        time.sleep(rng.uniform(3.0, 7.0))
        assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
        stop.set()
        for thread in threads:
            thread.join(30)
        deadline = time.monotonic() + 5
        while builders_of(root) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert builders_of(root) == [], "an index builder outlived its daemon"

    kinds: dict[str, int] = {}
    for content in acks.written.values():
        kinds[content.split()[0]] = kinds.get(content.split()[0], 0) + 1
    assert set(kinds) == {"rest", "mcp", "hook"}, kinds  # every client kind got writes acknowledged
    daemon = Daemon(root, port, env=env).start()
    try:
        daemon.wait_ready()
        lost = []
        for memory_id, content in acks.written.items():
            response = daemon.api("GET", f"/memories/{memory_id}")
            if response.status_code != 200 or response.json()["content"] != content:
                lost.append((memory_id, content, response.status_code))
        print(
            f"acknowledged writes: {len(acks.written)} {kinds} over {rounds} kill -9 rounds; lost: {len(lost)}"
        )
        assert lost == [], f"{len(lost)} acknowledged writes lost, e.g. {lost[:3]}"
        shards: dict[str, Any] = daemon.api("GET", "/stats").json()["index"]["shards"]
        assert shards["segments"] or shards["sealing"], "the kills never landed after a seal"
    finally:
        daemon.stop()
