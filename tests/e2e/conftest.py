"""Fixtures for the end-to-end tests that drive the real Claude Code CLI.

The CLI is found by :func:`claude_cli.find_claude` (``$CLAUDE_BIN``, the repo's
``node_modules/.bin/claude``, a dev fallback, then PATH). Tests that need it take the
``claude_bin`` fixture and are skipped, with the reason, when it is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ..daemon_util import Daemon, free_port
from .claude_cli import PINNED_VERSION, claude_version, find_claude


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: drives the real Claude Code CLI against a scripted model on loopback"
    )


@pytest.fixture(scope="session")
def claude_bin() -> str:
    binary = find_claude()
    if not binary:
        pytest.skip(
            "Claude Code CLI not found: set CLAUDE_BIN, or run "
            f"`npm install @anthropic-ai/claude-code@{PINNED_VERSION}` in the repo root"
        )
    return binary


@pytest.fixture(scope="session")
def claude_cli_version(claude_bin: str) -> str | None:
    return claude_version(claude_bin)


@pytest.fixture
def claude_home(tmp_path: Path) -> Path:
    """A throwaway HOME for one Claude Code run."""
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """An empty project directory (the CLI's cwd)."""
    project = tmp_path / "project"
    project.mkdir()
    return project


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A daemon of the test's own, ready (the model loaded), stopped after the test."""
    with Daemon(tmp_path / "root", free_port()).running(ready=True) as running:
        yield running
