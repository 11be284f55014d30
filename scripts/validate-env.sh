#!/usr/bin/env bash
# Validate Clarity's reproducible-environment files offline (no Docker engine, no network).
#
# Tools (the exact install commands used on the dev machine; .ci/run runs the same):
#   apt-get update
#   apt-get install -y docker-compose nix-bin
#   .venv/bin/python -m pip install check-jsonschema
#
# Usage: scripts/validate-env.sh [DIR]
#   DIR (default: the repository root) holds the files to check. Stops at the first failure with
#   a message naming the file and the check, and exits non-zero.
#
#   devcontainer  .devcontainer/devcontainer.json: strict JSON (no comments, no trailing commas,
#                 no duplicate keys); the devcontainer base JSON schema vendored in
#                 schemas/devContainer.base.schema.json (from the devcontainers spec, MIT,
#                 schemas/LICENSE-devcontainers-spec.txt); its dockerComposeFile exists and its
#                 service / runServices are services of that compose file.
#   compose       .devcontainer/compose.yaml, compose.yaml and compose.team.yaml: check-jsonschema's
#                 compose-spec schema, then `docker-compose -f FILE config -q` (Debian's
#                 docker-compose 1.29).
#   workflow      .github/workflows/*.yml: check-jsonschema's GitHub workflow schema.
#   nix           flake.nix: `nix-instantiate --parse`, then an --eval of its top-level structure
#                 (description, inputs, outputs only; outputs a function whose arguments are
#                 self and the inputs; every input pinned to a full revision) against flake.lock
#                 (version 7, same revision, matching "original"); then, where the `nix` command
#                 exists, `nix flake metadata --offline --no-update-lock-file` on a copy of the
#                 two files, which fails if Nix would have to re-lock.
#
# VALIDATE_ENV_ONLY=compose,nix (any of devcontainer, compose, workflow, nix) runs only those
# groups; the tests use it to show that each broken copy is rejected by its own check.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$(cd "${1:-$repo_root}" && pwd)"
only="${VALIDATE_ENV_ONLY:-devcontainer,compose,workflow,nix}"
schema="$repo_root/schemas/devContainer.base.schema.json"

say() { echo "validate-env: $*"; }
fail() {
    echo "validate-env: FAIL: $*" >&2
    exit 1
}
want() { [[ ",$only," == *",$1,"* ]]; }
need_file() { [ -f "$1" ] || fail "${1#"$dir"/}: file not found"; }
need_tool() {
    command -v "$1" >/dev/null 2>&1 || fail "$1 not found; install it ($2)"
}

if [ -n "${CHECK_JSONSCHEMA:-}" ]; then
    check_jsonschema="$CHECK_JSONSCHEMA"
elif command -v check-jsonschema >/dev/null 2>&1; then
    check_jsonschema="$(command -v check-jsonschema)"
elif [ -x "$repo_root/.venv/bin/check-jsonschema" ]; then
    check_jsonschema="$repo_root/.venv/bin/check-jsonschema"
else
    check_jsonschema=""
fi
need_check_jsonschema() {
    [ -n "$check_jsonschema" ] || fail "check-jsonschema not found; install it (python -m pip install check-jsonschema)"
}

# docker-compose interpolates ${VAR:?...}; the root compose.yaml requires CLARITY_TOKEN and
# compose.team.yaml CLARITY_TEAM_TLS_DIR.
compose_config() {
    CLARITY_TOKEN="${CLARITY_TOKEN:-validate-env-placeholder}" \
        CLARITY_TEAM_TLS_DIR="${CLARITY_TEAM_TLS_DIR:-/validate-env-placeholder}" \
        docker-compose -f "$1" "${@:2}"
}

devcontainer_json="$dir/.devcontainer/devcontainer.json"
devcontainer_compose="$dir/.devcontainer/compose.yaml"
root_compose="$dir/compose.yaml"
team_compose="$dir/compose.team.yaml"
flake="$dir/flake.nix"
lock="$dir/flake.lock"

# --- devcontainer ---------------------------------------------------------------------------
if want devcontainer; then
    need_file "$devcontainer_json"
    need_check_jsonschema
    need_tool python3 "apt-get install -y python3"
    need_tool docker-compose "apt-get install -y docker-compose"
    # Strict JSON: the spec tolerates comments, this project does not (other tools read the file).
    compose_refs="$(
        python3 - "$devcontainer_json" <<'PY'
import json, sys

def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ValueError(f"duplicate key(s): {', '.join(dupes)}")
    return dict(pairs)

path = sys.argv[1]
try:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh, object_pairs_hook=no_duplicates)
except ValueError as exc:
    sys.exit(f"{path}: not strict JSON: {exc}")
if not isinstance(data, dict):
    sys.exit(f"{path}: the top level must be an object")
files = data.get("dockerComposeFile", [])
files = [files] if isinstance(files, str) else files
services = [data.get("service", "")] + list(data.get("runServices", []))
print(" ".join(str(x) for x in files))
print(" ".join(dict.fromkeys(str(x) for x in services if x)))
PY
    )" || fail ".devcontainer/devcontainer.json: not strict JSON (see above)"
    "$check_jsonschema" --schemafile "$schema" "$devcontainer_json" \
        || fail ".devcontainer/devcontainer.json: rejected by the devcontainer schema (schemas/devContainer.base.schema.json, see above)"
    read -r -a dc_files <<<"$(sed -n 1p <<<"$compose_refs")"
    read -r -a dc_services <<<"$(sed -n 2p <<<"$compose_refs")"
    [ "${#dc_files[@]}" -gt 0 ] || fail ".devcontainer/devcontainer.json: no dockerComposeFile"
    compose_args=()
    for f in "${dc_files[@]}"; do
        [ -f "$dir/.devcontainer/$f" ] || fail ".devcontainer/devcontainer.json: dockerComposeFile $f not found"
        compose_args+=(-f "$dir/.devcontainer/$f")
    done
    defined="$(CLARITY_TOKEN="${CLARITY_TOKEN:-validate-env-placeholder}" docker-compose "${compose_args[@]}" config --services)" \
        || fail ".devcontainer/devcontainer.json: its compose file(s) do not load (see above)"
    for s in "${dc_services[@]}"; do
        grep -qxF "$s" <<<"$defined" \
            || fail ".devcontainer/devcontainer.json: service '$s' is not defined in ${dc_files[*]} (defined: $(tr '\n' ' ' <<<"$defined"))"
    done
    say "ok: .devcontainer/devcontainer.json (strict JSON, devcontainer schema, services ${dc_services[*]})"
fi

# --- compose --------------------------------------------------------------------------------
if want compose; then
    need_check_jsonschema
    need_tool docker-compose "apt-get install -y docker-compose"
    for f in "$devcontainer_compose" "$root_compose" "$team_compose"; do
        rel="${f#"$dir"/}"
        need_file "$f"
        "$check_jsonschema" --builtin-schema vendor.compose-spec "$f" \
            || fail "$rel: rejected by the compose-spec schema (check-jsonschema: YAML or schema error, see above)"
        compose_config "$f" config -q \
            || fail "$rel: rejected by 'docker-compose config' (see above)"
        say "ok: $rel (compose-spec schema, docker-compose config)"
    done
fi

# --- workflow -------------------------------------------------------------------------------
if want workflow; then
    need_check_jsonschema
    shopt -s nullglob
    workflows=("$dir"/.github/workflows/*.yml "$dir"/.github/workflows/*.yaml)
    shopt -u nullglob
    [ "${#workflows[@]}" -gt 0 ] || fail ".github/workflows: no workflow file found"
    for f in "${workflows[@]}"; do
        rel="${f#"$dir"/}"
        "$check_jsonschema" --builtin-schema vendor.github-workflows "$f" \
            || fail "$rel: rejected by the GitHub workflow schema (check-jsonschema: YAML or schema error, see above)"
        say "ok: $rel (GitHub workflow schema)"
    done
fi

# --- nix ------------------------------------------------------------------------------------
if want nix; then
    need_file "$flake"
    need_file "$lock"
    need_tool nix-instantiate "apt-get install -y nix-bin"
    nix-instantiate --parse "$flake" >/dev/null \
        || fail "flake.nix: rejected by nix-instantiate --parse (syntax error or undefined variable, see above)"
    # shellcheck disable=SC2016  # a Nix expression, not shell
    nix-instantiate --eval --strict --argstr flake "$flake" --argstr lock "$lock" -E '
{ flake, lock }:
let
  f = import (/. + flake);
  l = builtins.fromJSON (builtins.readFile (/. + lock));
  check = cond: msg: if cond then true else throw msg;
  names = builtins.attrNames f;
  allowed = [ "description" "inputs" "outputs" "nixConfig" ];
  unknown = builtins.filter (n: !(builtins.elem n allowed)) names;
  missing = builtins.filter (n: !(builtins.hasAttr n f)) [ "description" "inputs" "outputs" ];
  inputNames = builtins.attrNames (f.inputs or { });
  formals = builtins.functionArgs f.outputs;
  required = builtins.filter (n: !formals.${n}) (builtins.attrNames formals);
  badFormals = builtins.filter (n: n != "self" && !(builtins.elem n inputNames)) required;
  rootInputs = (l.nodes.${l.root or "root"} or { }).inputs or { };
  checkInput = name:
    let
      url = f.inputs.${name}.url or "";
      m = builtins.match "github:([^/]+)/([^/?]+)/([0-9a-f]{40})" url;
      at = builtins.elemAt m;
      nodeName = rootInputs.${name} or "";
      node = l.nodes.${nodeName} or { };
      pinned = { type = "github"; owner = at 0; repo = at 1; rev = at 2; };
      locked = node.locked or { };
    in
    check (m != null) "flake.nix: input ${name} is not pinned to a full revision (github:OWNER/REPO/<40-hex rev>): \"${url}\""
    && check (node != { }) "flake.lock: no lock node for input ${name}"
    && check ((node.original or { }) == pinned) "flake.lock: original of input ${name} does not match flake.nix (${url}); re-lock"
    && check (builtins.intersectAttrs pinned locked == pinned) "flake.lock: input ${name} is locked to ${locked.owner or "?"}/${locked.repo or "?"}/${locked.rev or "?"}, flake.nix pins ${url}"
    && check (builtins.match "sha256-[A-Za-z0-9+/]{43}=" (locked.narHash or "") != null) "flake.lock: input ${name} has no valid narHash"
    && check (builtins.isInt (locked.lastModified or null)) "flake.lock: input ${name} has no lastModified";
in
check (unknown == [ ]) "flake.nix: unknown top-level attribute(s): ${toString unknown} (allowed: ${toString allowed})"
&& check (missing == [ ]) "flake.nix: missing top-level attribute(s): ${toString missing}"
&& check (builtins.isString f.description) "flake.nix: description must be a string"
&& check (builtins.isAttrs f.inputs) "flake.nix: inputs must be an attribute set"
&& check (builtins.isFunction f.outputs) "flake.nix: outputs must be a function"
&& check (badFormals == [ ]) "flake.nix: outputs takes argument(s) that are not inputs: ${toString badFormals}"
&& check ((l.version or 0) == 7) "flake.lock: version must be 7"
&& check (builtins.attrNames rootInputs == inputNames) "flake.lock: root inputs (${toString (builtins.attrNames rootInputs)}) differ from flake.nix inputs (${toString inputNames})"
&& builtins.all checkInput inputNames
' >/dev/null || fail "flake.nix / flake.lock: structure check failed (see the error above)"
    if command -v nix >/dev/null 2>&1; then
        # A copy holding only the two files: a path: flake of DIR would copy all of DIR (.venv...)
        # into the store.
        tmp="$(mktemp -d)"
        trap 'rm -rf "$tmp"' EXIT
        cp "$flake" "$lock" "$tmp/"
        nix --extra-experimental-features "nix-command flakes" flake metadata \
            --offline --no-update-lock-file --json "path:$tmp" >/dev/null \
            || fail "flake.lock: Nix does not accept it for flake.nix as it is (nix flake metadata --offline --no-update-lock-file)"
    fi
    say "ok: flake.nix, flake.lock (parse, top-level structure, pinned and locked inputs)"
fi

say "all checks passed for $dir"
