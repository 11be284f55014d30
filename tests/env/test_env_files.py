"""The reproducible-environment files validate offline, and broken copies of them do not.

scripts/validate-env.sh is the check (the same one CI runs); these tests run it on the real
files, which must pass, and on deliberately broken copies made in tmp_path (a misspelled key, a
missing service, a syntax error, ... for each file type), which must be rejected by the check for
that file. A check is skipped only when its tool is not installed, with the install command in
the reason.

The rest of the file checks what a schema cannot: pins that must agree across files, and the
volume paths (a compose file that mounts the vector store's volume at the wrong path loses every
memory on rebuild).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parents[2]
VALIDATE = REPO / "scripts" / "validate-env.sh"

DEVCONTAINER_JSON = ".devcontainer/devcontainer.json"
DEVCONTAINER_COMPOSE = ".devcontainer/compose.yaml"
DEVCONTAINER_DOCKERFILE = ".devcontainer/Dockerfile"
ROOT_COMPOSE = "compose.yaml"
ROOT_DOCKERFILE = "Dockerfile"
TEAM_COMPOSE = "compose.team.yaml"
FLAKE = "flake.nix"
LOCK = "flake.lock"
WORKFLOW = ".github/workflows/ci.yml"
ENV_FILES = [
    DEVCONTAINER_JSON,
    DEVCONTAINER_COMPOSE,
    DEVCONTAINER_DOCKERFILE,
    ROOT_COMPOSE,
    ROOT_DOCKERFILE,
    TEAM_COMPOSE,
    FLAKE,
    LOCK,
    WORKFLOW,
]

CLAUDE_CODE_VERSION = "2.1.330"
NIXPKGS_REV = "ac62194c3917d5f474c1a844b6fd6da2db95077d"
NIXPKGS_NAR_HASH = "sha256-16KkgfdYqjaeRGBaYsNrhPRRENs0qzkQVUooNHtoy2w="
QDRANT_STORAGE = "/qdrant/storage"
SYSTEMS = ["aarch64-darwin", "aarch64-linux", "x86_64-darwin", "x86_64-linux"]


# --- tools ----------------------------------------------------------------------------------


def _check_jsonschema() -> str | None:
    found = shutil.which("check-jsonschema")
    if found:
        return found
    for candidate in (Path(sys.executable).parent / "check-jsonschema", REPO / ".venv/bin/check-jsonschema"):
        if candidate.exists():
            return str(candidate)
    return None


CHECK_JSONSCHEMA = _check_jsonschema()

INSTALL = {
    "check-jsonschema": "python -m pip install check-jsonschema",
    "docker-compose": "apt-get install -y docker-compose",
    "nix-instantiate": "apt-get install -y nix-bin",
    "python3": "apt-get install -y python3",
}
GROUP_TOOLS = {
    "devcontainer": ["check-jsonschema", "python3", "docker-compose"],
    "compose": ["check-jsonschema", "docker-compose"],
    "workflow": ["check-jsonschema"],
    "nix": ["nix-instantiate"],
}


def _have(tool: str) -> bool:
    if tool == "check-jsonschema":
        return CHECK_JSONSCHEMA is not None
    return shutil.which(tool) is not None


def _missing_tools(groups: list[str]) -> str:
    """'' when every tool of these check groups is installed, else a skip reason."""
    missing = sorted({t for g in groups for t in GROUP_TOOLS[g] if not _have(t)})
    if not missing:
        return ""
    return "tool(s) not installed: " + "; ".join(f"{t} ({INSTALL[t]})" for t in missing)


def _skip_without_tools(groups: list[str]) -> None:
    reason = _missing_tools(groups)
    if reason:
        pytest.skip(reason)


Result = subprocess.CompletedProcess[str] | str


def run_validate(root: Path, only: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("VALIDATE_ENV_ONLY", None)
    if only:
        env["VALIDATE_ENV_ONLY"] = only
    if CHECK_JSONSCHEMA:
        env["CHECK_JSONSCHEMA"] = CHECK_JSONSCHEMA
    return subprocess.run(
        ["bash", str(VALIDATE), str(root)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


# --- file helpers ---------------------------------------------------------------------------


def read(rel: str, root: Path = REPO) -> str:
    return (root / rel).read_text(encoding="utf-8")


def load_yaml(rel: str, root: Path = REPO) -> Any:
    return yaml.safe_load(read(rel, root))


def load_json(rel: str, root: Path = REPO) -> Any:
    return json.loads(read(rel, root))


def copy_env_files(dest: Path) -> Path:
    for rel in ENV_FILES:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)
    return dest


def replace_once(rel: str, old: str, new: str) -> Callable[[Path], None]:
    """A text edit that fails the test if it would not change anything."""

    def edit(root: Path) -> None:
        text = read(rel, root)
        assert old in text, f"mutation target {old!r} not found in {rel}"
        (root / rel).write_text(text.replace(old, new, 1), encoding="utf-8")

    return edit


def drop_line(rel: str, prefix: str) -> Callable[[Path], None]:
    """Delete the one line that starts with prefix."""

    def edit(root: Path) -> None:
        lines = read(rel, root).splitlines(keepends=True)
        kept = [line for line in lines if not line.startswith(prefix)]
        assert len(kept) == len(lines) - 1, f"expected one line starting with {prefix!r} in {rel}"
        (root / rel).write_text("".join(kept), encoding="utf-8")

    return edit


def edit_yaml(rel: str, change: Callable[[Any], None]) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        data = load_yaml(rel, root)
        change(data)
        (root / rel).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

    return edit


def edit_json(rel: str, change: Callable[[Any], None]) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        data = load_json(rel, root)
        change(data)
        (root / rel).write_text(json.dumps(data, indent=2), encoding="utf-8")

    return edit


def rename_key(mapping: dict[str, Any], old: str, new: str) -> None:
    assert old in mapping, f"{old!r} not in {sorted(mapping)}"
    mapping[new] = mapping.pop(old)


def delete_key(mapping: dict[str, Any], key: str) -> None:
    assert key in mapping, f"{key!r} not in {sorted(mapping)}"
    del mapping[key]


# --- the real files validate ----------------------------------------------------------------


def test_every_env_file_exists() -> None:
    missing = [rel for rel in ENV_FILES if not (REPO / rel).is_file()]
    assert not missing, f"missing environment files: {missing}"
    assert os.access(VALIDATE, os.X_OK), "scripts/validate-env.sh must be executable"


def test_real_files_validate(validation_runs: dict[str, Result]) -> None:
    result = _result_or_skip(validation_runs, "real")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all checks passed" in result.stdout
    for rel in (DEVCONTAINER_JSON, DEVCONTAINER_COMPOSE, ROOT_COMPOSE, TEAM_COMPOSE, WORKFLOW, FLAKE):
        assert f"ok: {rel}" in result.stdout, f"{rel} was not checked:\n{result.stdout}"


def test_a_clean_copy_validates(validation_runs: dict[str, Result]) -> None:
    """The copy the broken-file tests start from is itself valid (so their failure is the break)."""
    result = _result_or_skip(validation_runs, "clean-copy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_full_run_stops_at_a_broken_file(validation_runs: dict[str, Result]) -> None:
    """Without VALIDATE_ENV_ONLY the script runs every group and still rejects a broken file."""
    result = _result_or_skip(validation_runs, "full-run-broken-lock")
    assert result.returncode != 0
    assert "ok: .devcontainer/devcontainer.json" in result.stdout  # the earlier groups did run
    assert "validate-env: FAIL: flake" in result.stderr
    assert "all checks passed" not in result.stdout


# --- broken copies are rejected -------------------------------------------------------------


def _drop_service(name: str) -> Callable[[Any], None]:
    return lambda data: delete_key(data["services"], name)


BROKEN: list[tuple[str, str, Callable[[Path], None], str]] = [
    # (id, group, mutation, text expected in the failure output)
    (
        "devcontainer-misspelled-key",
        "devcontainer",
        replace_once(DEVCONTAINER_JSON, '"forwardPorts"', '"fowardPorts"'),
        "fowardPorts",
    ),
    (
        "devcontainer-missing-service-key",
        "devcontainer",
        edit_json(DEVCONTAINER_JSON, lambda d: delete_key(d, "service")),
        "rejected by the devcontainer schema",
    ),
    (
        "devcontainer-unknown-service",
        "devcontainer",
        replace_once(DEVCONTAINER_JSON, '"service": "workspace"', '"service": "workspce"'),
        "service 'workspce' is not defined",
    ),
    (
        "devcontainer-syntax-error",
        "devcontainer",
        replace_once(DEVCONTAINER_JSON, '"name": "Clarity",', '"name": "Clarity"'),
        "not strict JSON",
    ),
    (
        "devcontainer-comment",
        "devcontainer",
        replace_once(DEVCONTAINER_JSON, "{\n", "{\n  // comments are not strict JSON\n"),
        "not strict JSON",
    ),
    (
        "devcontainer-duplicate-key",
        "devcontainer",
        replace_once(DEVCONTAINER_JSON, '"name": "Clarity",', '"name": "Clarity",\n  "name": "Other",'),
        "duplicate key",
    ),
    (
        "devcontainer-compose-misspelled-key",
        "compose",
        edit_yaml(
            DEVCONTAINER_COMPOSE, lambda d: rename_key(d["services"]["qdrant"], "healthcheck", "healtcheck")
        ),
        "compose-spec schema",
    ),
    (
        "devcontainer-compose-missing-service",
        "compose",
        edit_yaml(DEVCONTAINER_COMPOSE, _drop_service("qdrant")),
        "docker-compose config",
    ),
    (
        "devcontainer-compose-syntax-error",
        "compose",
        replace_once(
            DEVCONTAINER_COMPOSE, "    command: sleep infinity\n", "    command: [sleep, infinity\n"
        ),
        DEVCONTAINER_COMPOSE,
    ),
    (
        "devcontainer-compose-start-interval",  # compose v2 only: docker-compose 1.29 refuses it
        "compose",
        edit_yaml(
            DEVCONTAINER_COMPOSE,
            lambda d: d["services"]["qdrant"]["healthcheck"].__setitem__("start_interval", "1s"),
        ),
        "docker-compose config",
    ),
    (
        "root-compose-misspelled-key",
        "compose",
        edit_yaml(ROOT_COMPOSE, lambda d: rename_key(d["services"]["qdrant"], "image", "imgae")),
        "compose-spec schema",
    ),
    (
        "root-compose-missing-service",
        "compose",
        edit_yaml(ROOT_COMPOSE, _drop_service("qdrant")),
        "docker-compose config",
    ),
    (
        "root-compose-syntax-error",
        "compose",
        replace_once(ROOT_COMPOSE, "  clarity:\n", "  clarity\n"),
        ROOT_COMPOSE,
    ),
    (
        "team-compose-misspelled-key",
        "compose",
        edit_yaml(TEAM_COMPOSE, lambda d: rename_key(d["services"]["qdrant-2"], "depends_on", "depend_on")),
        "compose-spec schema",
    ),
    (
        "team-compose-missing-node",  # qdrant-2 and the team server depend on it
        "compose",
        edit_yaml(TEAM_COMPOSE, _drop_service("qdrant-1")),
        "docker-compose config",
    ),
    (
        "team-compose-syntax-error",
        "compose",
        replace_once(TEAM_COMPOSE, "        aliases: [qdrant]\n", "        aliases: [qdrant\n"),
        TEAM_COMPOSE,
    ),
    (
        "team-compose-start-interval",  # compose v2 only: docker-compose 1.29 refuses it
        "compose",
        edit_yaml(
            TEAM_COMPOSE,
            lambda d: d["services"]["qdrant-1"]["healthcheck"].__setitem__("start_interval", "1s"),
        ),
        "docker-compose config",
    ),
    (
        "workflow-misspelled-key",
        "workflow",
        edit_yaml(WORKFLOW, lambda d: rename_key(d["jobs"]["test"], "runs-on", "runs_on")),
        "GitHub workflow schema",
    ),
    (
        "workflow-service-without-image",
        "workflow",
        edit_yaml(WORKFLOW, lambda d: delete_key(d["jobs"]["test"]["services"]["qdrant"], "image")),
        "GitHub workflow schema",
    ),
    (
        "workflow-syntax-error",
        "workflow",
        replace_once(WORKFLOW, "name: CI\n", "name: 'CI\n"),
        "GitHub workflow schema",
    ),
    (
        "flake-misspelled-top-level-key",
        "nix",
        replace_once(FLAKE, "  description = ", "  descripton = "),
        "unknown top-level attribute(s): descripton",
    ),
    (
        "flake-misspelled-outputs-argument",
        "nix",
        replace_once(FLAKE, "{ self, nixpkgs }:", "{ self, nixpkgs, flake-utils }:"),
        "not inputs: flake-utils",
    ),
    (
        "flake-misspelled-outputs",
        "nix",
        replace_once(FLAKE, "  outputs =\n", "  output =\n"),
        "unknown top-level attribute(s): output ",
    ),
    (
        "flake-missing-description",
        "nix",
        drop_line(FLAKE, "  description = "),
        "missing top-level attribute(s): description",
    ),
    (
        "flake-syntax-error",
        "nix",
        replace_once(FLAKE, '"aarch64-darwin"\n      ];', '"aarch64-darwin"\n      ]'),
        "nix-instantiate --parse",
    ),
    (
        "flake-unpinned-nixpkgs",
        "nix",
        replace_once(FLAKE, f"github:NixOS/nixpkgs/{NIXPKGS_REV}", "github:NixOS/nixpkgs/nixos-25.05"),
        "not pinned to a full revision",
    ),
    (
        "flake-lock-syntax-error",
        "nix",
        replace_once(LOCK, '"version": 7\n', '"version": 7,\n'),
        "flake.lock",
    ),
    (
        "flake-lock-other-revision",
        "nix",
        replace_once(LOCK, f'"rev": "{NIXPKGS_REV}"', '"rev": "' + "0" * 40 + '"'),
        "flake.lock",
    ),
    (
        "flake-lock-original-by-branch",  # stale for a flake.nix that pins the revision
        "nix",
        edit_json(
            LOCK,
            lambda d: d["nodes"]["nixpkgs"].__setitem__(
                "original", {"owner": "NixOS", "ref": "nixos-25.05", "repo": "nixpkgs", "type": "github"}
            ),
        ),
        "original of input nixpkgs does not match",
    ),
    (
        "flake-lock-missing-input",
        "nix",
        edit_json(LOCK, lambda d: d["nodes"]["root"].__setitem__("inputs", {})),
        "differ from flake.nix inputs",
    ),
]


@pytest.fixture(scope="session")
def validation_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    """Run the validator on the real files, a clean copy and every broken copy, a few at a time.

    Each run is mostly tool start-up, so running them side by side keeps this file fast. Maps a
    run's id to the validator's result, or to a reason string: a missing tool (the test skips) or
    a mutation that no longer applies to the real file (the test fails).
    """
    runs: dict[str, tuple[Path, str | None]] = {}
    results: dict[str, Result] = {}

    all_groups = list(GROUP_TOOLS)
    if _missing_tools(all_groups):
        reason = _missing_tools(all_groups)
        results.update({"real": reason, "clean-copy": reason, "full-run-broken-lock": reason})
    else:
        runs["real"] = (REPO, None)
        runs["clean-copy"] = (copy_env_files(tmp_path_factory.mktemp("clean-copy")), None)
        root = copy_env_files(tmp_path_factory.mktemp("full-run-broken-lock"))
        replace_once(LOCK, f'"rev": "{NIXPKGS_REV}"', '"rev": "' + "1" * 40 + '"')(root)
        runs["full-run-broken-lock"] = (root, None)

    for case_id, group, mutate, _ in BROKEN:
        missing = _missing_tools([group])
        if missing:
            results[case_id] = missing
            continue
        root = copy_env_files(tmp_path_factory.mktemp(case_id))
        try:
            mutate(root)
        except AssertionError as exc:
            results[case_id] = f"mutation failed: {exc}"
            continue
        runs[case_id] = (root, group)

    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {run_id: pool.submit(run_validate, root, only) for run_id, (root, only) in runs.items()}
        for run_id, future in futures.items():
            results[run_id] = future.result()
    return results


def _result_or_skip(runs: dict[str, Result], run_id: str) -> subprocess.CompletedProcess[str]:
    result = runs[run_id]
    if isinstance(result, str):
        if result.startswith("mutation failed"):
            pytest.fail(result)
        pytest.skip(result)
    return result


@pytest.mark.parametrize("expected", [b[3] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_broken_copy_is_rejected(
    request: pytest.FixtureRequest, validation_runs: dict[str, Result], expected: str
) -> None:
    result = _result_or_skip(validation_runs, request.node.callspec.id)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"the broken copy was accepted:\n{output}"
    assert "validate-env: FAIL:" in output, output
    assert expected in output, f"expected {expected!r} in:\n{output}"


def test_missing_file_is_rejected(tmp_path: Path) -> None:
    root = copy_env_files(tmp_path)
    (root / ROOT_COMPOSE).unlink()
    _skip_without_tools(["compose"])
    result = run_validate(root, only="compose")
    assert result.returncode != 0
    assert "compose.yaml: file not found" in result.stderr


# --- what the schemas cannot see: pins, paths, wiring ---------------------------------------


def _qdrant_images() -> dict[str, str]:
    images = {}
    for rel in (DEVCONTAINER_COMPOSE, ROOT_COMPOSE):
        images[rel] = load_yaml(rel)["services"]["qdrant"]["image"]
    for name, service in load_yaml(TEAM_COMPOSE)["services"].items():
        if name.startswith("qdrant"):
            images[f"{TEAM_COMPOSE}:{name}"] = service["image"]
    for job_name, job in load_yaml(WORKFLOW)["jobs"].items():
        service = (job.get("services") or {}).get("qdrant")
        if service:
            images[f"{WORKFLOW}:{job_name}"] = service["image"]
    return images


def test_qdrant_image_pinned_to_one_release_everywhere() -> None:
    images = _qdrant_images()
    assert len(images) >= 6, images
    assert len(set(images.values())) == 1, f"Qdrant image differs between files: {images}"
    (image,) = set(images.values())
    assert re.fullmatch(r"qdrant/qdrant:v\d+\.\d+\.\d+", image), f"not an exact release tag: {image}"


def test_claude_code_pinned_everywhere() -> None:
    dockerfile = read(DEVCONTAINER_DOCKERFILE)
    assert f"ARG CLAUDE_CODE_VERSION={CLAUDE_CODE_VERSION}\n" in dockerfile
    assert '"@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}"' in dockerfile
    args = load_yaml(DEVCONTAINER_COMPOSE)["services"]["workspace"]["build"]["args"]
    assert str(args["CLAUDE_CODE_VERSION"]) == CLAUDE_CODE_VERSION
    assert f"grep -F {CLAUDE_CODE_VERSION}" in load_json(DEVCONTAINER_JSON)["onCreateCommand"]
    assert f'claudeCodeVersion = "{CLAUDE_CODE_VERSION}";' in read(FLAKE)
    assert "@anthropic-ai/claude-code@${claudeCodeVersion}" in read(FLAKE)
    workflow = load_yaml(WORKFLOW)
    assert str(workflow["env"]["CLAUDE_CODE_VERSION"]) == CLAUDE_CODE_VERSION
    assert '"@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}"' in read(WORKFLOW)
    # No install anywhere without a version.
    for rel in ENV_FILES:
        for line in read(rel).splitlines():
            if "install" in line and "@anthropic-ai/claude-code" in line:
                assert re.search(r"@anthropic-ai/claude-code@\S", line), (
                    f"unpinned Claude Code install in {rel}: {line}"
                )


def test_node_is_22_where_claude_code_is_installed() -> None:
    assert re.search(r"^ARG NODE_IMAGE=node:22\.\d+\.\d+-bookworm-slim$", read(DEVCONTAINER_DOCKERFILE), re.M)
    assert "nodejs = pkgs.nodejs_22;" in read(FLAKE)
    setup_node = [
        step
        for step in load_yaml(WORKFLOW)["jobs"]["test"]["steps"]
        if str(step.get("uses", "")).startswith("actions/setup-node@")
    ]
    assert setup_node and str(setup_node[0]["with"]["node-version"]) == "22"


def _dockerfile_user_home(rel: str) -> tuple[str, PurePosixPath]:
    """The final USER of a Dockerfile and that user's home directory."""
    text = read(rel)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    user = users[-1] if users else "root"
    if user in ("root", "0"):
        return "root", PurePosixPath("/root")
    m = re.search(
        rf"useradd\b[^\n]*?(?:--home-dir|-d)\s+(\S+)[^\n]*\s{re.escape(user)}\s*(?:\\|$|&&)", text, re.M
    )
    return user, PurePosixPath(m.group(1) if m else f"/home/{user}")


def _storage_root_relative_to_home() -> PurePosixPath:
    """Clarity's default storage root, relative to ~ (from clarity.config when it imports)."""
    default = "~/.claude/alunai-clarity"
    try:
        from clarity.config import DEFAULT_ROOT

        default = str(DEFAULT_ROOT)
    except Exception:  # the package is being written alongside; fall back to DESIGN.md's root
        pass
    assert default.startswith("~/"), f"storage root is not home-relative: {default}"
    return PurePosixPath(default[2:])


def _named_volume_targets(compose: dict[str, Any], service: str) -> dict[str, str]:
    """target -> volume name, for the named volumes (not bind mounts) of a service."""
    declared = set((compose.get("volumes") or {}).keys())
    targets = {}
    for entry in compose["services"][service].get("volumes", []):
        if isinstance(entry, dict):
            source, target = entry.get("source", ""), entry["target"]
        else:
            source, target = entry.split(":")[0], entry.split(":")[1]
        if source in declared:
            targets[target] = source
    return targets


@pytest.mark.parametrize(
    ("compose_rel", "service", "dockerfile_rel"),
    [
        (DEVCONTAINER_COMPOSE, "workspace", DEVCONTAINER_DOCKERFILE),
        (ROOT_COMPOSE, "clarity", ROOT_DOCKERFILE),
        (TEAM_COMPOSE, "team", ROOT_DOCKERFILE),
    ],
)
def test_storage_volume_is_mounted_at_the_container_users_storage_root(
    compose_rel: str, service: str, dockerfile_rel: str
) -> None:
    compose = load_yaml(compose_rel)
    build = compose["services"][service]["build"]
    built_from = (REPO / compose_rel).parent / build["context"] / build.get("dockerfile", "Dockerfile")
    assert built_from.resolve() == (REPO / dockerfile_rel).resolve()

    user, home = _dockerfile_user_home(dockerfile_rel)
    storage_root = str(home / _storage_root_relative_to_home())
    named = _named_volume_targets(compose, service)
    assert storage_root in named, (
        f"{compose_rel}: service {service} runs as {user} (home {home}) so Clarity stores in {storage_root}, "
        f"but its named volumes are mounted at {sorted(named)}"
    )
    # Nothing redirects the storage root elsewhere.
    env = compose["services"][service].get("environment") or {}
    assert str(env.get("CLARITY_STORAGE__ROOT", storage_root)) == storage_root
    # The image creates that directory, owned by the user, so Docker seeds the new volume with it.
    dockerfile = read(dockerfile_rel)
    assert f"mkdir -p {storage_root}" in dockerfile
    if user != "root":
        assert f"chown -R {user}:{user} {home}" in dockerfile


@pytest.mark.parametrize("compose_rel", [DEVCONTAINER_COMPOSE, ROOT_COMPOSE])
def test_qdrant_volume_is_at_qdrant_storage(compose_rel: str) -> None:
    named = _named_volume_targets(load_yaml(compose_rel), "qdrant")
    assert QDRANT_STORAGE in named, f"{compose_rel}: qdrant's named volumes are at {sorted(named)}"


def test_claude_config_dir_survives_rebuilds() -> None:
    compose = load_yaml(DEVCONTAINER_COMPOSE)
    user, home = _dockerfile_user_home(DEVCONTAINER_DOCKERFILE)
    claude_dir = str(home / ".claude")
    assert compose["services"]["workspace"]["environment"]["CLAUDE_CONFIG_DIR"] == claude_dir
    assert claude_dir in _named_volume_targets(compose, "workspace")
    devcontainer = load_json(DEVCONTAINER_JSON)
    assert devcontainer["remoteUser"] == user
    assert devcontainer["remoteEnv"]["CLAUDE_CONFIG_DIR"] == claude_dir


def test_devcontainer_json_wiring() -> None:
    dc = load_json(DEVCONTAINER_JSON)
    compose = load_yaml(DEVCONTAINER_COMPOSE)
    assert dc["dockerComposeFile"] == "compose.yaml"
    assert dc["service"] == "workspace"
    assert set(dc["runServices"]) == {"workspace", "qdrant"}
    assert dc["shutdownAction"] == "stopCompose"
    # The repo is mounted exactly at the workspace folder.
    mounts = compose["services"]["workspace"]["volumes"]
    assert any(str(m).split(":")[:2] == ["..", dc["workspaceFolder"]] for m in mounts), mounts
    assert 8000 in dc["forwardPorts"] and "qdrant:6333" in dc["forwardPorts"]
    for port in ("8000", "qdrant:6333"):
        assert dc["portsAttributes"][port]["label"]
    extensions = dc["customizations"]["vscode"]["extensions"]
    assert "ms-python.python" in extensions and "anthropic.claude-code" in extensions
    assert "./scripts/setup.sh" in dc["onCreateCommand"]
    assert "clarity hooks install --scope project" in dc["postCreateCommand"]
    assert "clarity serve" in dc["postStartCommand"] and "&" in dc["postStartCommand"]
    assert dc["hostRequirements"]["cpus"] >= 2
    assert "ANTHROPIC_API_KEY" in dc["secrets"]


def test_compose_wiring() -> None:
    dev = load_yaml(DEVCONTAINER_COMPOSE)["services"]
    root = load_yaml(ROOT_COMPOSE)["services"]
    for services in (dev, root):
        health = services["qdrant"]["healthcheck"]
        probe = " ".join(health["test"])
        assert "timeout" in probe and "bash" in probe and "/dev/tcp/127.0.0.1/6333" in probe, probe
        assert "start_interval" not in health  # docker-compose 1.29 refuses it
        ports = [str(p) for p in services["qdrant"]["ports"]]
        assert any(p.endswith(":6333") for p in ports) and any(p.endswith(":6334") for p in ports)
    workspace = dev["workspace"]
    assert workspace["command"] == "sleep infinity"
    assert workspace["environment"]["QDRANT_URL"] == "http://qdrant:6333"
    assert workspace["depends_on"] == {"qdrant": {"condition": "service_healthy"}}

    clarity = root["clarity"]
    assert clarity["depends_on"] == {"qdrant": {"condition": "service_healthy"}}
    assert "/healthz" in " ".join(clarity["healthcheck"]["test"])
    assert clarity["environment"]["QDRANT_URL"] == "http://qdrant:6333"
    assert str(clarity["environment"]["CLARITY_TOKEN"]).startswith("${CLARITY_TOKEN")
    published = [str(p) for p in clarity["ports"]]
    assert published and all(p.startswith("127.0.0.1:") and p.endswith(":8000") for p in published), published
    assert "./clarity:/app/clarity:ro" in clarity["volumes"]


TEAM_NODES = ["qdrant-1", "qdrant-2", "qdrant-3"]


def _compose_default(value: object) -> str:
    """A compose value with each ${VAR:-default} replaced by its default (what an unset
    environment gives)."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))


def test_team_compose_cluster_wiring() -> None:
    services = load_yaml(TEAM_COMPOSE)["services"]
    nodes = sorted(name for name in services if name.startswith("qdrant"))
    assert nodes == TEAM_NODES, nodes
    first_uri = None
    published = set()
    aliases = None
    for i, name in enumerate(nodes):
        node = services[name]
        env = {k: str(v) for k, v in node["environment"].items()}
        assert env["QDRANT__CLUSTER__ENABLED"] == "true", name
        p2p = env["QDRANT__CLUSTER__P2P__PORT"]
        # Each peer is reached by its own service name on the p2p port.
        assert env["QDRANT_URI"] == f"http://{name}:{p2p}", name
        if i == 0:
            assert "QDRANT_BOOTSTRAP" not in env, "the first node starts the cluster"
            first_uri = env["QDRANT_URI"]
            assert "depends_on" not in node
        else:
            assert env["QDRANT_BOOTSTRAP"] == first_uri, name
            # One join at a time: each node waits for the one before it to be ready.
            assert node["depends_on"] == {nodes[i - 1]: {"condition": "service_healthy"}}, name
        # Its own volumes, at the paths the image uses.
        named = _named_volume_targets(load_yaml(TEAM_COMPOSE), name)
        assert named.get(QDRANT_STORAGE) == f"{name}-storage", named
        assert named.get("/qdrant/snapshots") == f"{name}-snapshots", named
        # HTTP on loopback only, a port of its own; the p2p port (writes!) never published.
        (port,) = [_compose_default(p) for p in node["ports"]]
        host, host_port, container_port = port.split(":")
        assert (host, container_port) == ("127.0.0.1", "6333"), port
        assert host_port not in published, port
        published.add(host_port)
        health = node["healthcheck"]
        assert "/readyz" in " ".join(health["test"]) and "start_interval" not in health
        node_aliases = node["networks"]["default"]["aliases"]
        assert aliases in (None, node_aliases), "every node answers to the same alias"
        aliases = node_aliases
    assert aliases and len(aliases) == 1

    team = services["team"]
    env = {k: str(v) for k, v in team["environment"].items()}
    # The team server reaches whichever nodes run, through the shared alias, on the HTTP port.
    assert env["QDRANT_URL"] == f"http://{aliases[0]}:6333"
    assert team["depends_on"] == {n: {"condition": "service_healthy"} for n in nodes}
    assert team["command"][:3] == ["clarity", "serve", "--team"]
    assert team["command"][team["command"].index("--port") + 1] == "8443"
    assert [_compose_default(p).rsplit(":", 1)[1] for p in team["ports"]] == ["8443"]
    # Two copies of every shard on three nodes: any one node can be lost; at least one shard per node.
    shards = int(_compose_default(env["CLARITY_QDRANT__SHARD_NUMBER"]))
    replicas = int(_compose_default(env["CLARITY_QDRANT__REPLICATION_FACTOR"]))
    assert 2 <= replicas <= len(nodes) and shards >= len(nodes), (shards, replicas)
    # TLS: both files inside one read-only bind mount whose host folder must be given.
    (tls,) = [v for v in team["volumes"] if str(v).endswith(":ro")]
    source, target, _ = str(tls).rsplit(":", 2)
    assert source.startswith("${CLARITY_TEAM_TLS_DIR:?"), source
    for key in ("CLARITY_TEAM__TLS_CERT", "CLARITY_TEAM__TLS_KEY"):
        assert PurePosixPath(env[key]).parent == PurePosixPath(target), (key, env[key])


def test_team_compose_sets_only_settings_that_exist() -> None:
    """Each CLARITY_* name the team server gets is a setting, with a value the settings accept
    (a misspelled name would stop the server at start-up: every section forbids unknown keys)."""
    from pydantic import ValidationError

    from clarity.config import SettingsModel, describe_validation_error

    env = load_yaml(TEAM_COMPOSE)["services"]["team"]["environment"]
    data: dict[str, Any] = {"qdrant": {"url": env["QDRANT_URL"]}}
    for name, value in env.items():
        if not name.startswith("CLARITY_"):
            continue
        section, _, key = name.removeprefix("CLARITY_").lower().partition("__")
        assert key, f"{name}: not a section__key name"
        data.setdefault(section, {})[key] = _compose_default(value)
    try:
        settings = SettingsModel.model_validate(data)
    except ValidationError as exc:
        pytest.fail(f"{TEAM_COMPOSE}: " + "; ".join(describe_validation_error(exc)))
    assert settings.engine == "server"
    assert settings.qdrant.collection == "clarity_team"


def test_workflow_wiring() -> None:
    jobs = load_yaml(WORKFLOW)["jobs"]
    test = jobs["test"]
    assert "--health-cmd" in test["services"]["qdrant"]["options"]
    assert test["env"]["QDRANT_URL"].startswith("http://")
    assert str(test["env"]["CLARITY_REQUIRE_QDRANT"]) == "1"
    assert any(step.get("run") == "./scripts/test.sh" for step in test["steps"])
    devcontainer_steps = jobs["devcontainer"]["steps"]
    assert any(str(s.get("uses", "")).startswith("devcontainers/ci@") for s in devcontainer_steps)
    assert any("./scripts/test.sh" in str(s.get("with", {}).get("runCmd", "")) for s in devcontainer_steps)
    cluster = jobs["team-cluster"]
    runs = [str(step.get("run", "")) for step in cluster["steps"]]
    up = [r for r in runs if f"-f {TEAM_COMPOSE}" in r and " up " in r and "qdrant-1" in r]
    assert len(up) == 1 and up[0].split()[-len(TEAM_NODES) :] == TEAM_NODES, up
    assert '-p "$TEAM_COMPOSE_PROJECT"' in up[0] and "--wait" in up[0]
    # QDRANT_URL is qdrant-1 as compose.team.yaml publishes it.
    node_port = _compose_default(load_yaml(TEAM_COMPOSE)["services"]["qdrant-1"]["ports"][0])
    assert cluster["env"]["QDRANT_URL"] == "http://" + node_port.rsplit(":", 1)[0]
    # Names the tests read: tests/conftest.py clears CLARITY_* before they run.
    assert str(cluster["env"]["REQUIRE_TEAM_CLUSTER"]) == "1" and cluster["env"]["TEAM_COMPOSE_PROJECT"]
    assert "./scripts/test.sh -k team" in runs
    # The team server of the same file, then a memory through it onto the cluster.
    assert any(
        " up " in r and r.split("--wait-timeout")[1].split()[1:2] == ["team"]
        for r in runs
        if "--wait-timeout" in r
    )
    deployed = [s for s in cluster["steps"] if "-k deployed" in str(s.get("run", ""))]
    assert deployed and str(deployed[0]["env"]["REQUIRE_TEAM_SERVER"]) == "1", deployed
    down = [s for s in cluster["steps"] if " down -v" in str(s.get("run", ""))]
    assert down and down[0]["if"] == "always()"
    nix_steps = jobs["nix"]["steps"]
    assert any(str(s.get("uses", "")).startswith("cachix/install-nix-action@") for s in nix_steps)
    assert any(
        "nix develop" in str(s.get("run", "")) and "./scripts/test.sh" in str(s.get("run", ""))
        for s in nix_steps
    )


def test_flake_lock_pins_the_given_nixpkgs() -> None:
    lock = load_json(LOCK)
    assert lock["version"] == 7 and lock["root"] == "root"
    assert lock["nodes"]["root"]["inputs"] == {"nixpkgs": "nixpkgs"}
    locked = lock["nodes"]["nixpkgs"]["locked"]
    assert locked == {
        "lastModified": 1767313136,
        "narHash": NIXPKGS_NAR_HASH,
        "owner": "NixOS",
        "repo": "nixpkgs",
        "rev": NIXPKGS_REV,
        "type": "github",
    }
    assert f'nixpkgs.url = "github:NixOS/nixpkgs/{NIXPKGS_REV}";' in read(FLAKE)


# A stand-in for nixpkgs (which cannot be fetched here): enough to evaluate the flake's outputs
# and check their shape. Every `pkgs.NAME` the flake uses becomes a fake derivation.
_STUB_EVAL = r"""
{ flake, names }:
let
  f = import (/. + flake);
  systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
  genAttrs = ns: g: builtins.listToAttrs (map (n: { name = n; value = g n; }) ns);
  lib = {
    inherit genAttrs;
    makeLibraryPath = ps: builtins.concatStringsSep ":" (map (p: "${p}/lib") ps);
    optionalString = c: s: if c then s else "";
  };
  fake = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
    version = "0";
    interpreter = "/nix/store/00000000000000000000000000000000-${name}/bin/python3";
  };
  pkgsFor = system:
    genAttrs (builtins.filter (n: builtins.isString n && n != "") (builtins.split " " names)) fake
    // {
      inherit lib;
      stdenv = {
        isLinux = builtins.match ".*-linux" system != null;
        isDarwin = builtins.match ".*-darwin" system != null;
        cc.cc.lib = fake "gcc-lib";
      };
      writeShellApplication = args: fake args.name // { inherit (args) text runtimeInputs; };
      mkShell = args: args // { shell = true; };
    };
  nixpkgs = { inherit lib; legacyPackages = genAttrs systems pkgsFor; };
  out = f.outputs { self = out; inherit nixpkgs; };
in
{
  devShells = builtins.mapAttrs (s: shells: {
    names = builtins.attrNames shells;
    hook = shells.default.shellHook;
    packages = map (p: p.name) shells.default.packages;
  }) out.devShells;
  apps = builtins.mapAttrs (s: apps: builtins.mapAttrs (n: a: { inherit (a) type program; }) apps) out.apps;
  qdrantScripts = builtins.mapAttrs (s: p: p.qdrant-server.text) out.packages;
}
"""


def test_flake_outputs_shape_with_a_stub_nixpkgs() -> None:
    _skip_without_tools(["nix"])
    names = sorted(set(re.findall(r"\bpkgs\.([A-Za-z_][A-Za-z0-9_-]*)", read(FLAKE))))
    result = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "-E", _STUB_EVAL,
         "--argstr", "flake", str(REPO / FLAKE), "--argstr", "names", " ".join(names)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)

    assert sorted(out["devShells"]) == SYSTEMS
    assert sorted(out["apps"]) == SYSTEMS
    for system in SYSTEMS:
        shell = out["devShells"][system]
        assert shell["names"] == ["default"]
        packages = set(shell["packages"])
        assert packages >= {"nodejs_22", "ruff", "mypy", "qdrant"}, packages
        assert packages & {"python311", "python312"}, packages
        hook = shell["hook"]
        assert "-m venv" in hook and "/.venv" in hook
        assert 'install "torch==2.13.0"' in hook and "uv sync --frozen --inexact --extra dev" in hook
        assert f"@anthropic-ai/claude-code@{CLAUDE_CODE_VERSION}" in hook
        assert ("LD_LIBRARY_PATH" in hook) == system.endswith("-linux")

        app = out["apps"][system]["qdrant"]
        assert app["type"] == "app" and app["program"].endswith("/bin/clarity-qdrant")
        script = out["qdrantScripts"][system]
        assert "$HOME/.claude/alunai-clarity/qdrant-server" in script
        assert 'QDRANT__STORAGE__STORAGE_PATH="$root/storage"' in script
        assert "exec qdrant" in script


def test_shell_scripts() -> None:
    for rel in ("scripts/start-dev.sh", "scripts/validate-env.sh"):
        path = REPO / rel
        assert os.access(path, os.X_OK), f"{rel} is not executable"
        text = path.read_text(encoding="utf-8")
        assert text.startswith("#!/usr/bin/env bash\n")
        assert "\nset -euo pipefail\n" in text
        subprocess.run(["bash", "-n", str(path)], check=True, timeout=30)
    start = subprocess.run(
        ["bash", str(REPO / "scripts/start-dev.sh"), "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert start.returncode == 0 and "CLARITY_TOKEN" in start.stdout
    # The install commands .ci/run copies are at the top of the validator.
    head = read("scripts/validate-env.sh").split("set -euo pipefail")[0]
    assert "apt-get install -y docker-compose nix-bin" in head
    assert "pip install check-jsonschema" in head


def test_devcontainer_schema_is_vendored_with_its_license() -> None:
    schema = load_json("schemas/devContainer.base.schema.json")
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert "composeContainer" in schema["definitions"]
    assert "MIT License" in read("schemas/LICENSE-devcontainers-spec.txt")
