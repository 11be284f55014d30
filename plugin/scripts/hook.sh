#!/bin/sh
# Clarity plugin: hand one Claude Code hook event to the local Clarity daemon.
#
#   sh hook.sh EVENT [--url=BASE] [--timeout=SECONDS]      (Claude Code pipes the event JSON in)
#
# Claude Code shows the user every hook that fails (an http hook that cannot connect, a command
# that exits non-zero or times out), in the terminal and on stderr, so every event runs through
# here: curl posts the JSON to BASE/hooks/EVENT, the script exits 0 whatever happens, and it
# prints nothing but the daemon's reply. curl starts in about 5 ms where python3 takes 15-90 ms
# (more behind a pyenv shim), and Claude Code waits for SessionStart, UserPromptSubmit and
# PreToolUse before it goes on (scripts/bench/session_start.py measures it).
#
# When nothing listens on the daemon's port: at SessionStart, a daemon is started in the
# background and the session goes on without waiting for it; a learning event (a tool's
# result, the end of a turn or session) is kept in <storage root>/app-data/pending-hooks.jsonl,
# which the daemon learns from once it answers (clarity/hooks/spool.py), so the first session
# after install or a reboot is not lost while the daemon starts.
#
# session_start.py does all this in Python where curl is missing, or when CLARITY_TOKEN is set
# (on curl's command line the token could be read by other users of the machine).
# CLARITY_DISABLED=1 makes this a no-op.
event=$1
shift
url=http://127.0.0.1:8000
timeout=2
for arg in "$@"; do
  case $arg in
    --url=*) url=${arg#--url=} ;;
    --timeout=*) timeout=${arg#--timeout=} ;;
  esac
done
case ${CLARITY_DISABLED:-} in
  1 | [Tt][Rr][Uu][Ee] | [Yy][Ee][Ss] | [Oo][Nn]) exit 0 ;;
esac
here=${0%/*}
if [ -n "${CLARITY_TOKEN:-}" ] || ! command -v curl >/dev/null 2>&1; then
  python3 -S "$here/session_start.py" "$event" "$@" 2>/dev/null
  exit 0
fi
body=$(cat)
root=${CLARITY_STORAGE__ROOT:-$HOME/.claude/alunai-clarity}
case $root in "~"/*) root=$HOME/${root#"~/"} ;; esac
# A daemon that accepts and never answers made every hook wait out its budget (about 10 s before
# the first model request, 20-24 s more per session). After one hook times out, the hooks of the
# next 30 s skip it (their learning events are kept, as when nobody listens); the first answer lifts
# it. clarity/hooks/command_client.py keeps the same mark.
breaker=$root/app-data/hooks-unanswered

keep() {
  # One line per event: JSON has no raw newline but between tokens, where a space is the same.
  (
    umask 077
    mkdir -p "$root/app-data" || exit 0
    file=$root/app-data/pending-hooks.jsonl
    if [ -f "$file" ] && [ "$(wc -c <"$file")" -gt 8388608 ]; then exit 0; fi
    line=$(printf '%s' "$body" | tr '\n\r' '  ')
    printf '%s\n' "$line" >>"$file" # one write: concurrent hooks append whole lines
  ) 2>/dev/null
}

start_daemon() {
  # Nothing listens at SessionStart: start a daemon (`clarity service start`, which the daemon's
  # start lock keeps to one among racing sessions) in a session of its own, so it outlives this
  # hook and Claude Code, and do not wait for it. Done here where setsid is (Linux): python3
  # costs 15-90 ms more on the first request (scripts/bench/session_start.py, plugin daemon down).
  hostport=${url#*://}
  hostport=${hostport%%/*}
  case $hostport in
    127.0.0.1:* | localhost:*) host=${hostport%%:*} port=${hostport##*:} ;;
    *) hostport= ;;
  esac
  clarity=${CLARITY_BIN:-$(command -v clarity)}
  [ -n "$clarity" ] || clarity=$HOME/.local/bin/clarity
  if [ -z "$hostport" ] || [ ! -x "$clarity" ] || ! command -v setsid >/dev/null 2>&1; then
    # IPv6, no clarity to run (session_start.py says so), or no setsid (macOS)
    python3 -S "$here/session_start.py" --start "$@" </dev/null 2>/dev/null
    return
  fi
  (
    # The daemon is shared by every session: it must not inherit this one's identity.
    for name in $(env | sed -n 's/^\(CLAUDE[A-Za-z0-9_]*\)=.*/\1/p'); do
      [ "$name" = CLAUDE_CONFIG_DIR ] || unset "$name"
    done
    export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" TRANSFORMERS_OFFLINE="${TRANSFORMERS_OFFLINE:-1}"
    cd "$HOME" 2>/dev/null || cd /
    exec setsid "$clarity" service start --wait 60 --host "$host" --port "$port" </dev/null >/dev/null 2>&1
  ) &
}

learning_event() {
  case $event in PostToolUse | PostToolUseFailure | Stop | SessionEnd) return 0 ;; esac
  return 1
}

if [ -e "$breaker" ]; then # the common case costs this one test
  marked=$(stat -c %Y "$breaker" 2>/dev/null || stat -f %m "$breaker" 2>/dev/null || echo 0)
  age=$(($(date +%s) - marked))
  if [ "$age" -ge 0 ] && [ "$age" -lt 30 ]; then
    if learning_event; then keep; fi
    exit 0
  fi
fi

# -q: no ~/.curlrc; --noproxy: loopback traffic never goes through a proxy; --fail: an error
# answer prints nothing.
reply=$(printf '%s' "$body" | curl -q --silent --fail --noproxy '*' --max-time "$timeout" \
  -H 'Content-Type: application/json' --data-binary @- "$url/hooks/$event" 2>/dev/null)
status=$?
case $status in
  7) # nothing listens there
    if [ "$event" = SessionStart ]; then start_daemon "$@"; elif learning_event; then keep; fi ;;
  28) # accepted and never answered in time: the daemon has the event (kept, it would be learned
    # twice); the hooks of the next 30 s do not ask it
    [ -d "$root/app-data" ] && (umask 077 && : >"$breaker") 2>/dev/null ;;
  *) [ -e "$breaker" ] && rm -f "$breaker" ;;
esac
case $reply in
  '' | '{}') ;;
  '{'*'}') printf '%s\n' "$reply" ;;
esac
exit 0
