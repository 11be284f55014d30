#!/usr/bin/env bash
# Start Clarity (daemon + Qdrant) as containers from the root compose.yaml, for Claude Code
# running on the host, then print how to point Claude Code at it.
#
#   ./scripts/start-dev.sh            build if needed, start, wait for /healthz
#   CLARITY_PORT=8100 ./scripts/start-dev.sh
#
# The daemon listens on 0.0.0.0 inside its container, so it requires CLARITY_TOKEN. If the
# variable is not set, a random token is made once and kept (mode 600) in
# ~/.claude/alunai-clarity/compose-token, so restarts keep the same one.
# Memories live in named volumes: `docker compose down` keeps them, `down -v` deletes them.
set -euo pipefail

usage() {
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
}

case "${1:-}" in
    -h | --help) usage; exit 0 ;;
    "") ;;
    *) echo "start-dev.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
esac

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    compose=(docker-compose)
else
    echo "start-dev.sh: neither 'docker compose' nor 'docker-compose' is available" >&2
    exit 1
fi
if ! docker info >/dev/null 2>&1; then
    echo "start-dev.sh: the Docker engine is not reachable ('docker info' failed)" >&2
    exit 1
fi

port="${CLARITY_PORT:-8000}"
export CLARITY_PORT="$port"

token_file="$HOME/.claude/alunai-clarity/compose-token"
if [ -n "${CLARITY_TOKEN:-}" ]; then
    # shellcheck disable=SC2016  # printed for the user's shell to expand, not expanded here
    token_hint='$CLARITY_TOKEN'
else
    if [ ! -s "$token_file" ]; then
        mkdir -p "$(dirname "$token_file")"
        (
            umask 077
            if command -v openssl >/dev/null 2>&1; then
                openssl rand -hex 32
            else
                od -An -N32 -tx1 /dev/urandom | tr -d ' \n'
                echo
            fi >"$token_file"
        )
    fi
    CLARITY_TOKEN="$(tr -d '\n' <"$token_file")"
    token_hint="\$(cat $token_file)"
fi
export CLARITY_TOKEN

echo "start-dev.sh: starting qdrant and clarity (${compose[*]} up -d --build)"
"${compose[@]}" up -d --build

url="http://127.0.0.1:${port}"
healthy() {
    if command -v curl >/dev/null 2>&1; then
        curl -fsS -m 2 -o /dev/null "$url/healthz" 2>/dev/null
    else
        python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
            "$url/healthz" 2>/dev/null
    fi
}
printf 'start-dev.sh: waiting for %s/healthz ' "$url"
for _ in $(seq 1 120); do
    healthy && break
    printf '.'
    sleep 1
done
if ! healthy; then
    echo
    echo "start-dev.sh: the daemon did not become healthy; see: ${compose[*]} logs clarity" >&2
    exit 1
fi
echo " up"

cat <<EOF

Clarity is running at ${url} (Qdrant on 127.0.0.1:${QDRANT_HTTP_PORT:-6333}).

Point Claude Code at it:

  # MCP tools (streamable HTTP), for every project of this user:
  claude mcp add --transport http --scope user clarity ${url}/mcp \\
      --header "Authorization: Bearer ${token_hint}"

  # Hooks, in a project (needs the clarity CLI on the host, e.g. pipx install -e ${repo_root}):
  export CLARITY_URL=${url} CLARITY_TOKEN="${token_hint}"
  clarity hooks install --scope project

Logs:   ${compose[*]} logs -f clarity
Stop:   ${compose[*]} down        (keeps memories; 'down -v' deletes them)
EOF
