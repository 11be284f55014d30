"""``clarity service``: keep the daemon always on with the platform's own service manager.

* Linux: a systemd user unit, ``~/.config/systemd/user/clarity.service`` (``$XDG_CONFIG_HOME``
  is honoured), enabled with ``systemctl --user enable --now``.
* macOS: a launchd agent, ``~/Library/LaunchAgents/com.alunai.clarity.plist``, loaded with
  ``launchctl bootstrap gui/<uid>``.

Both run the absolute path of the ``clarity`` executable that installed them (a venv's
``bin/clarity`` keeps working without the venv on PATH), restart the daemon when it crashes and
leave it stopped after ``clarity stop`` (a clean exit). ``clarity service start`` is what the
Claude Code plugin's SessionStart hook runs: start a daemon in the background unless one answers.

Secrets (``CLARITY_TOKEN``, ``QDRANT_API_KEY``) are never written into these files: put them in
config.json, or (systemd) in the optional environment file the unit names.
"""

from __future__ import annotations

import json
import os
import plistlib
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from clarity.atomic_file import write_atomically
from clarity.cli.common import err, fail, out

UNIT_NAME = "clarity.service"
LAUNCHD_LABEL = "com.alunai.clarity"
# Non-secret settings carried from the installing shell into the service's environment.
PASSED_ENV = ("MEMORY_CONFIG_PATH", "QDRANT_URL", "CLARITY_URL")
PASSED_PREFIX = "CLARITY_"
SECRET_ENV = frozenset({"CLARITY_TOKEN", "QDRANT_API_KEY"})
# Never useful in an always-on daemon: per-session switches.
SESSION_ENV = frozenset({"CLARITY_DISABLED", "CLARITY_URL", "CLARITY_HOOK_TIMEOUT"})
FIXED_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


class Kind(StrEnum):
    systemd = "systemd"
    launchd = "launchd"


def default_kind() -> Kind:
    return Kind.launchd if sys.platform == "darwin" else Kind.systemd


def clarity_executable() -> str:
    """Absolute path of this environment's ``clarity`` (venv symlinks are not resolved)."""
    from clarity.integrations.claude_entries import clarity_executable as find

    return str(Path(find()).absolute())


def service_path(kind: Kind) -> Path:
    home = Path.home()
    if kind is Kind.launchd:
        return home / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"
    config = os.environ.get("XDG_CONFIG_HOME") or str(home / ".config")
    return Path(config) / "systemd" / "user" / UNIT_NAME


def service_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment the service runs with: fixed offline switches plus the installing
    shell's non-secret Clarity settings."""
    environ = dict(os.environ if environ is None else environ)
    env = dict(FIXED_ENV)
    for key in sorted(environ):
        if key in SECRET_ENV or key in SESSION_ENV:
            continue
        if key in PASSED_ENV or key.startswith(PASSED_PREFIX):
            env[key] = environ[key]
    return env


def serve_args(executable: str, host: str | None, port: int | None) -> list[str]:
    args = [executable, "serve"]
    if host:
        args += ["--host", host]
    if port:
        args += ["--port", str(port)]
    return args


def log_path() -> Path:
    root = os.environ.get("CLARITY_STORAGE__ROOT") or "~/.claude/alunai-clarity"
    return Path(root).expanduser() / "app-data" / "service.log"


# -- file contents -------------------------------------------------------------------------------


def _systemd_quote(value: str) -> str:
    """One word of a systemd command line or assignment: quoted, with %, \\ and " escaped."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{escaped}"'


def systemd_unit(args: list[str], env: dict[str, str]) -> str:
    lines = [
        "# Written by `clarity service install`; `clarity service uninstall` removes it.",
        "[Unit]",
        "Description=Clarity: persistent shared memory for Claude Code",
        # A port held by another daemon makes every restart fail: give up after five tries.
        "StartLimitIntervalSec=120",
        "StartLimitBurst=5",
        "",
        "[Service]",
        "Type=simple",
        "ExecStart=" + " ".join(_systemd_quote(a) for a in args),
        "WorkingDirectory=%h",
        *(f"Environment={_systemd_quote(f'{k}={v}')}" for k, v in env.items()),
        # Secrets go here (KEY=value lines, mode 600), never into this file.
        "EnvironmentFile=-%h/.config/clarity/service.env",
        # `clarity stop` is a clean exit (status 0): only a crash is restarted.
        "Restart=on-failure",
        "RestartSec=5",
        "TimeoutStopSec=30",
        "KillMode=mixed",
        "NoNewPrivileges=yes",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ]
    return "\n".join(lines)


def launchd_plist(args: list[str], env: dict[str, str], log: Path) -> bytes:
    plist: dict[str, Any] = {
        "Label": LAUNCHD_LABEL,
        "ProgramArguments": args,
        "EnvironmentVariables": env,
        "WorkingDirectory": str(Path.home()),
        "RunAtLoad": True,
        # Restart after a crash, not after `clarity stop` (a clean exit).
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 10,
        "ProcessType": "Background",
        "StandardOutPath": str(log),
        "StandardErrorPath": str(log),
    }
    return plistlib.dumps(plist, sort_keys=False)


def render(kind: Kind, host: str | None = None, port: int | None = None) -> bytes:
    args = serve_args(clarity_executable(), host, port)
    env = service_environment()
    if kind is Kind.launchd:
        return launchd_plist(args, env, log_path())
    return systemd_unit(args, env).encode()


# -- service manager commands --------------------------------------------------------------------


def _manager_commands(kind: Kind, action: str, path: Path) -> list[list[str]]:
    if kind is Kind.systemd:
        return {
            "install": [
                ["systemctl", "--user", "daemon-reload"],
                ["systemctl", "--user", "enable", "--now", UNIT_NAME],
            ],
            "uninstall": [["systemctl", "--user", "disable", "--now", UNIT_NAME]],
            "after-uninstall": [["systemctl", "--user", "daemon-reload"]],
        }[action]
    domain = f"gui/{os.getuid()}"
    return {
        "install": [["launchctl", "bootstrap", domain, str(path)]],
        "uninstall": [["launchctl", "bootout", f"{domain}/{LAUNCHD_LABEL}"]],
        "after-uninstall": [],
    }[action]


def _run(argv: list[str]) -> tuple[bool, str]:
    if shutil.which(argv[0]) is None:
        return False, f"{argv[0]} not found"
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    return result.returncode == 0, (result.stderr or result.stdout).strip()


@dataclass
class ServiceStatus:
    kind: str
    path: str
    installed: bool
    executable: str | None = None
    executable_exists: bool | None = None
    current: bool | None = None  # the file is what `install` would write now
    manager: dict[str, str] = field(default_factory=dict)
    daemon_running: bool = False


def _installed_args(kind: Kind, path: Path) -> list[str] | None:
    try:
        if kind is Kind.launchd:
            args = plistlib.loads(path.read_bytes()).get("ProgramArguments")
            return [str(a) for a in args] if isinstance(args, list) else None
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("ExecStart="):
                import shlex

                return shlex.split(line.removeprefix("ExecStart=").replace("%%", "%"))
    except (OSError, ValueError, plistlib.InvalidFileException):
        return None
    return None


def service_status(kind: Kind, host: str | None = None, port: int | None = None) -> ServiceStatus:
    path = service_path(kind)
    status = ServiceStatus(kind=kind.value, path=str(path), installed=path.exists())
    if status.installed:
        args = _installed_args(kind, path)
        if args:
            status.executable = args[0]
            status.executable_exists = Path(args[0]).exists()
        try:
            status.current = path.read_bytes() == render(kind, host, port)
        except OSError:
            status.current = False
        if kind is Kind.systemd and shutil.which("systemctl"):
            for query in ("is-enabled", "is-active"):
                _, answer = _run(["systemctl", "--user", query, UNIT_NAME])
                status.manager[query] = answer.splitlines()[-1] if answer else "unknown"
        elif kind is Kind.launchd and shutil.which("launchctl"):
            ok, _ = _run(["launchctl", "print", f"gui/{os.getuid()}/{LAUNCHD_LABEL}"])
            status.manager["loaded"] = "yes" if ok else "no"
    try:
        from clarity.client_settings import load_client_settings
        from clarity.daemon_lookup import is_healthy

        overrides: dict[str, Any] = {k: v for k, v in (("host", host), ("port", port)) if v}
        status.daemon_running = is_healthy(load_client_settings(server=overrides))
    except Exception:
        status.daemon_running = False
    return status


# -- the typer sub-app ---------------------------------------------------------------------------

service_app = typer.Typer(
    help="Keep the daemon always on: a systemd user unit (Linux) or a launchd agent (macOS).",
    no_args_is_help=True,
)

KindOpt = Annotated[
    Kind | None,
    typer.Option("--kind", help="systemd or launchd (default: launchd on macOS, systemd elsewhere)."),
]
HostOpt = Annotated[str | None, typer.Option(help="Address the daemon binds (default from config).")]
PortOpt = Annotated[int | None, typer.Option(help="Port the daemon listens on (default from config).")]
EnableOpt = Annotated[
    bool, typer.Option("--enable/--no-enable", help="Also enable and start it now (default).")
]
DisableOpt = Annotated[
    bool, typer.Option("--disable/--no-disable", help="Stop and disable it first (default).")
]


def _service_file(kind: Kind | None) -> tuple[Kind, Path]:
    """The kind asked for (else this platform's) and where its file goes."""
    kind = kind or default_kind()
    return kind, service_path(kind)


@service_app.command("install")
def install_cmd(
    kind: KindOpt = None,
    host: HostOpt = None,
    port: PortOpt = None,
    enable: EnableOpt = True,
) -> None:
    """Write the service file for this `clarity` executable, then enable and start it."""
    kind, path = _service_file(kind)
    content = render(kind, host, port)
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, content)
    except OSError as exc:
        fail(f"cannot write {path}: {exc}")
    out.print(f"{'updated' if existed else 'wrote'} {path}", soft_wrap=True, highlight=False)
    if kind is Kind.launchd:
        log_path().parent.mkdir(parents=True, exist_ok=True)
    commands = _manager_commands(kind, "install", path)
    if not enable:
        out.print("not enabled; to start it now and at every login run:", highlight=False)
        for argv in commands:
            out.print(f"  {' '.join(argv)}", highlight=False, soft_wrap=True)
        return
    if kind is Kind.launchd and existed:  # bootstrap refuses a label that is already loaded
        _run(_manager_commands(kind, "uninstall", path)[0])
    for argv in commands:
        ok, message = _run(argv)
        if not ok:
            fail(f"`{' '.join(argv)}` failed: {message}; the file is written, run it by hand when possible")
    out.print("enabled and started; `clarity service status` shows it", highlight=False)


@service_app.command("uninstall")
def uninstall_cmd(
    kind: KindOpt = None,
    disable: DisableOpt = True,
) -> None:
    """Stop and disable the service, and remove its file (memories are kept)."""
    kind, path = _service_file(kind)
    if not path.exists():
        out.print(f"no Clarity service file at {path}", highlight=False, soft_wrap=True)
        return
    if disable:
        for argv in _manager_commands(kind, "uninstall", path):
            ok, message = _run(argv)
            if not ok:
                err.print(f"[yellow]note:[/] `{' '.join(argv)}`: {message}", highlight=False, soft_wrap=True)
    try:
        path.unlink()
    except OSError as exc:
        fail(f"cannot remove {path}: {exc}")
    if disable:
        for argv in _manager_commands(kind, "after-uninstall", path):
            _run(argv)
    out.print(f"removed {path}", highlight=False, soft_wrap=True)


@service_app.command("status")
def status_cmd(
    kind: KindOpt = None,
    host: HostOpt = None,
    port: PortOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Is the service file installed, current, enabled, and is a daemon answering?"""
    status = service_status(kind or default_kind(), host, port)
    if as_json:
        out.print_json(json.dumps(asdict(status)))
        return
    if not status.installed:
        out.print(
            f"{status.kind}: not installed ({status.path}); `clarity service install` adds it",
            highlight=False,
        )
    else:
        out.print(f"{status.kind}: installed at {status.path}", highlight=False, soft_wrap=True)
        if status.executable_exists is False:
            out.print(
                f"  [red]runs {status.executable}, which no longer exists[/]: run `clarity service install` again",
                highlight=False,
            )
        elif status.current is False:
            out.print(
                "  [yellow]differs from what `clarity service install` would write now[/]; run it again"
            )
        for key, value in status.manager.items():
            out.print(f"  {key}: {value}", highlight=False)
    out.print(f"daemon: {'running' if status.daemon_running else 'not answering'}")


@service_app.command("start")
def start_cmd(
    host: HostOpt = None,
    port: PortOpt = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for it to answer.")] = 30.0,
) -> None:
    """Start a daemon in the background unless one answers (the plugin's SessionStart runs this)."""
    from clarity.client_settings import load_client_settings
    from clarity.config import ConfigError, load_settings
    from clarity.daemon_lookup import daemon_url, is_healthy

    overrides: dict[str, Any] = {k: v for k, v in (("host", host), ("port", port)) if v}
    try:
        settings = load_client_settings(server=overrides)
        if not is_healthy(settings):  # only a start needs the daemon module and the settings in full
            from clarity.daemon import DaemonError, ensure_daemon

            try:
                ensure_daemon(
                    load_settings(server=overrides) if overrides else load_settings(), wait_seconds=wait
                )
            except DaemonError as exc:
                fail(str(exc))
    except ConfigError as exc:
        fail(str(exc), 2)
    out.print(f"clarity daemon answers at {daemon_url(settings)}", highlight=False)


__all__ = ["service_app"]
