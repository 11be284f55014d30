"""Browser tests: Playwright (pip) driving Debian's chromium headless against a real daemon.

The browser is launched by executable path (``/usr/bin/chromium``, installed by ``.ci/run``), so
no Playwright browser download is needed. Screenshots of each page go to
``bench-results/screenshots/`` for docs/dashboard.md.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..daemon_util import Daemon, free_port

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "bench-results" / "screenshots"


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CLARITY_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Module scope on purpose: while Playwright's sync API is open, an asyncio loop counts as
    running in the main thread, and every later test that calls anyio.run would fail."""
    executable = chromium_path()
    if executable is None:
        pytest.skip("no chromium binary (apt-get install chromium, or set CLARITY_CHROMIUM)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
    )
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            # Root in a container: chromium's sandbox needs user namespaces it does not get here.
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="module")
def dashboard_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon of its own: these tests count and delete memories, so no other test may share it."""
    daemon = Daemon(tmp_path_factory.mktemp("dashboard-root"), port=free_port())
    daemon.start()
    daemon.wait_ready()
    yield daemon
    daemon.stop()
