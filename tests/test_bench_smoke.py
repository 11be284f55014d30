"""Every benchmark script runs end to end in its --quick form and writes its JSON and PNG.

CI checks that the benchmarks run, not their timings. The scripts start together (each is
mostly waiting on its own daemon, model load or index build), so the file takes about as long
as the slowest one rather than their sum.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ["hooks", "retrieval", "ingest", "quality", "cli_start", "team_scale"]
TIMEOUT = 600

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[subprocess.Popen[str], Path]]]:
    started = {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLARITY_")}
    env["HF_HUB_OFFLINE"] = "1"
    for name in SCRIPTS:
        out = tmp_path_factory.mktemp(f"bench-{name}")
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "bench" / f"{name}.py"), "--quick", "--out", str(out)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started[name] = (proc, out)
    yield started
    for proc, _ in started.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _locomo_available() -> bool:
    sys.path.insert(0, str(ROOT / "scripts" / "bench"))
    from common import find_locomo

    return any(find_locomo().glob("*.json"))


@pytest.mark.parametrize("name", SCRIPTS)
def test_quick_run_writes_json_and_png(
    runs: dict[str, tuple[subprocess.Popen[str], Path]], name: str
) -> None:
    proc, out = runs[name]
    if name == "quality" and not _locomo_available():
        pytest.skip(
            "the LoCoMo dev split is not beside this checkout (../shared/bench/locomo-dev) nor in LOCOMO_DEV_DIR"
        )
    try:
        output, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f"{name}.py --quick did not finish in {TIMEOUT}s:\n{output[-3000:]}")
    assert proc.returncode == 0, f"{name}.py --quick exited {proc.returncode}:\n{output[-3000:]}"
    result = json.loads((out / f"{name}.json").read_text())
    assert result["benchmark"] == name
    assert result["machine"]["cpus"]
    png = out / f"{name}.png"
    assert png.stat().st_size > 1000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
