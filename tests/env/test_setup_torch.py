"""`./scripts/setup.sh` installs the CPU build of torch, never the CUDA one, wherever pip looks.

On Linux, PyPI's `torch==2.13.0` is the CUDA build plus 15 nvidia packages (about 3 GB; seen
with `pip install --dry-run --report` under an empty pip configuration). The script asks for the
CPU build by its own version, `torch==2.13.0+cpu`, which only PyTorch's CPU index (or a wheel
directory or mirror pip is configured with, as on the machines this project is built on) carries.
`SETUP_TORCH_PLAN=1` makes the script print the pip arguments it would use and stop, so the
decision is tested here without installing anything.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SETUP = REPO / "scripts" / "setup.sh"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"

pytestmark = pytest.mark.skipif(platform.system() != "Linux", reason="the CUDA build is a Linux wheel")


def _stock_pip_env() -> dict[str, str]:
    """A machine whose pip knows only PyPI: no PIP_* variables, no configuration file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull  # pip then reads no configuration file at all
    return env


def _plan(env: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [str(SETUP)],
        env={**env, "SETUP_TORCH_PLAN": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return done.stdout.split()


def test_a_stock_machine_gets_the_cpu_build_from_pytorchs_cpu_index() -> None:
    assert _plan(_stock_pip_env()) == ["torch==2.13.0+cpu", "--index-url", CPU_INDEX]


def test_an_index_given_by_ci_is_used_for_the_cpu_build() -> None:
    env = {**_stock_pip_env(), "TORCH_INDEX_URL": "https://mirror.example/whl/cpu"}
    assert _plan(env) == ["torch==2.13.0+cpu", "--index-url", "https://mirror.example/whl/cpu"]


def test_configured_sources_that_carry_the_cpu_build_are_used_as_they_are() -> None:
    """This machine's pip finds the CPU wheel in its wheel directory: no index is added (the
    script must keep working offline)."""
    env = dict(os.environ)
    found = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--no-deps",
            "--ignore-installed",
            "--quiet",
            "torch==2.13.0+cpu",
        ],
        env=env,
        capture_output=True,
        timeout=300,
    )
    if found.returncode != 0:
        pytest.skip("pip's configured sources here do not carry torch 2.13.0+cpu")
    assert _plan(env) == ["torch==2.13.0+cpu"]


def _reachable(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=10).close()
        return True
    except OSError:
        return False


def test_what_the_plan_installs_on_a_stock_machine_has_no_cuda_package(tmp_path: Path) -> None:
    """The whole resolution, as pip reports it, for the stock machine's plan."""
    if not _reachable(CPU_INDEX + "/torch/"):
        pytest.skip(f"{CPU_INDEX} is not reachable from here (GitHub Actions reaches it)")
    env = _stock_pip_env()
    report = tmp_path / "report.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            str(report),
            *_plan(env),
        ],
        env=env,
        check=True,
        timeout=600,
    )
    installed = {
        item["metadata"]["name"].lower(): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    assert installed["torch"] == "2.13.0+cpu"
    assert sorted(name for name in installed if name.startswith("nvidia") or "cuda" in name) == []
