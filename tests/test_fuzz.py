"""The fuzz pass (scripts/fuzz.py) in its --quick form: every REST route, hook event, MCP tool,
dashboard page and import format of a real daemon gets random and hostile input, and nothing may
be mishandled (a 5xx, a dropped connection, a foreign Host or Origin answered, a non-JSON write
accepted, a traceback, a planted memory changed). Each run draws new inputs; a failure prints
the seed and the cases, and ``scripts/fuzz.py --seed N`` repeats them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_fuzz_pass_mishandles_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLARITY_")}
    env["HF_HUB_OFFLINE"] = "1"
    out = tmp_path / "fuzz.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "fuzz.py"), "--quick", "--json", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    assert out.exists(), run.stderr[-3000:]
    result = json.loads(out.read_text())
    doors = set(result["tried"])
    # Every kind of door was reached, so a fuzzer that silently skipped one cannot pass.
    for expected in (
        "POST /api/memories",
        "POST /hooks/UserPromptSubmit",
        "MCP store_memory",
        "clarity import (.jsonl)",
        "GET /memory/{id}",
        "POST /api/forget",
    ):
        assert expected in doors, sorted(doors)
    assert sum(result["tried"].values()) > 500
    assert run.returncode == 0 and sum(result["mishandled"].values()) == 0, run.stdout[-4000:]
