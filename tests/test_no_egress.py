"""Clarity sends nothing anywhere: a daemon doing real work opens no connection beyond loopback.

Every Python process of the daemon (and its index builder) gets an audit hook through
``sitecustomize`` that records each ``socket.connect`` and name lookup to a non-loopback
address. The daemon is started without HF_HUB_OFFLINE in its environment, so the test also
shows that Clarity itself keeps the model loader offline.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from .daemon_util import Daemon, free_port

pytestmark = pytest.mark.slow
PAYLOADS = Path(__file__).parent / "fixtures" / "hook_payloads"

AUDIT = """
import os, sys
_log = os.environ["CLARITY_EGRESS_LOG"]
_LOCAL = ("127.0.0.1", "::1", "localhost", "0.0.0.0", "::")

def _hook(event, args):
    if event == "socket.connect":
        address = args[1]
        host = address[0] if isinstance(address, tuple) else str(address)
    elif event == "socket.getaddrinfo":
        host = args[0]
    else:
        return
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if host and str(host) not in _LOCAL and not str(host).startswith("/"):
        with open(_log, "a") as handle:
            handle.write(f"{os.getpid()} {event} {host}\\n")

sys.addaudithook(_hook)
with open(_log + ".loaded", "a") as _marker:
    _marker.write(f"{os.getpid()} {' '.join(sys.argv)}\\n")
"""


def test_a_working_daemon_opens_no_connection_beyond_loopback(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(AUDIT, encoding="utf-8")
    log = tmp_path / "egress.log"
    daemon = Daemon(
        tmp_path / "root",
        free_port(),
        env={
            "PYTHONPATH": str(site),
            "CLARITY_EGRESS_LOG": str(log),
            "CLARITY_STORAGE__ACTIVE_SHARD_MAX_POINTS": "100",  # an index build runs too
        },
    )
    base_env = daemon.env
    daemon.env = lambda: {  # type: ignore[method-assign]
        k: v for k, v in base_env().items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    daemon.start()
    try:
        daemon.wait_ready()
        for i in range(130):
            daemon.api("POST", "/memories", json={"content": f"egress check fact {i}", "scope": "global"})
        assert (
            daemon.api("POST", "/search", json={"query": "egress check", "scope": "global"}).status_code
            == 200
        )
        prompt = json.loads((PAYLOADS / "UserPromptSubmit.json").read_text())
        prompt.update(cwd=str(tmp_path), prompt="what did the egress check store?")
        assert httpx.post(f"{daemon.url}/hooks/UserPromptSubmit", json=prompt, timeout=30).status_code == 200
        assert httpx.get(f"{daemon.url}/", timeout=30).status_code in (200, 303, 307)
        os.sync()
    finally:
        daemon.stop()
    loaded = Path(f"{log}.loaded").read_text()
    assert "serve" in loaded and "build-shard" in loaded  # the daemon and its index builder were watched
    egress = log.read_text() if log.exists() else ""
    assert egress == "", f"connections beyond loopback:\n{egress}"
