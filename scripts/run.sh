#!/usr/bin/env bash
# meshward demo (`make run`): the mock LLM provider, the audit sink when it can
# serve, and Envoy with the meshward filter, on the DESIGN.md §3 ports. Prints a
# ready-to-paste curl. Ctrl-C stops everything this script started.
#
#   scripts/run.sh                     run the demo (after `make build envoy`)
#   scripts/run.sh --render-only DIR   only render DIR/envoy.yaml, then exit
#
# Overrides (environment): MESHWARD_LISTEN (127.0.0.1:10000), MESHWARD_ADMIN
# (127.0.0.1:9901), MESHWARD_PROVIDER (127.0.0.1:8300), MESHWARD_SINK
# (127.0.0.1:8400), MESHWARD_POLICY (policies/demo.json: the default policy with audit on), MESHWARD_ENVOY,
# MESHWARD_WASM, MESHWARD_RUN_DIR (.run), MESHWARD_PLACEHOLDER_KEY (random per
# session when unset), MESHWARD_ENVOY_CONCURRENCY (2). Hosts are IP literals.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

LISTEN=${MESHWARD_LISTEN:-127.0.0.1:10000}
ADMIN=${MESHWARD_ADMIN:-127.0.0.1:9901}
PROVIDER=${MESHWARD_PROVIDER:-127.0.0.1:8300}
SINK=${MESHWARD_SINK:-127.0.0.1:8400}
POLICY=${MESHWARD_POLICY:-$ROOT/policies/demo.json}
ENVOY=${MESHWARD_ENVOY:-$ROOT/.venv/bin/envoy}
WASM=${MESHWARD_WASM:-$ROOT/target/wasm32-wasip1/release/meshward_filter.wasm}
RUN_DIR=${MESHWARD_RUN_DIR:-$ROOT/.run}
TEMPLATE=$ROOT/envoy/envoy.template.yaml
MOCK_BIN=$ROOT/target/release/meshward-mock-provider
SINK_BIN=$ROOT/target/release/meshward-sink
CONCURRENCY=${MESHWARD_ENVOY_CONCURRENCY:-2}

say() { printf 'meshward run: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# need FILE WHAT MAKE_TARGET
need() { [[ -e "$1" ]] || die "$2 not found at $1 — run \`make $3\` first"; }

host_of() { printf '%s' "${1%:*}"; }
port_of() { printf '%s' "${1##*:}"; }

# render OUT_FILE: substitutes the template's {{TOKENS}} (see its header);
# WASM_PATH and POLICY_JSON are JSON-quoted, which YAML reads as a
# double-quoted scalar whatever the policy contains. Comment lines are left
# alone. Same rules as e2e/src/render.rs; a test validates both with Envoy.
render() {
  local out=$1
  need "$TEMPLATE" "the Envoy template" "run"
  need "$POLICY" "the policy" "run"
  T_TEMPLATE=$TEMPLATE T_POLICY=$POLICY T_WASM=$WASM \
  T_LISTENER_HOST=$(host_of "$LISTEN") T_LISTENER_PORT=$(port_of "$LISTEN") \
  T_ADMIN_HOST=$(host_of "$ADMIN") T_ADMIN_PORT=$(port_of "$ADMIN") \
  T_PROVIDER_HOST=$(host_of "$PROVIDER") T_PROVIDER_PORT=$(port_of "$PROVIDER") \
  T_SINK_HOST=$(host_of "$SINK") T_SINK_PORT=$(port_of "$SINK") \
  python3 - "$out" <<'PY'
import ipaddress, json, os, sys

env = os.environ
values = {}
for name in ("LISTENER", "ADMIN", "PROVIDER", "SINK"):
    host, port = env[f"T_{name}_HOST"], env[f"T_{name}_PORT"]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        sys.exit(f"{name.lower()} host {host!r} is not an IP literal")
    if not port.isdigit() or int(port) > 65535:
        sys.exit(f"{name.lower()} port {port!r} is not a port number")
    values[f"{name}_HOST"], values[f"{name}_PORT"] = host, port
values["WASM_PATH"] = json.dumps(os.path.abspath(env["T_WASM"]), ensure_ascii=False)
with open(env["T_POLICY"], encoding="utf-8") as f:
    policy = f.read()
values["POLICY_JSON"] = json.dumps(policy, ensure_ascii=False)

out = []
with open(env["T_TEMPLATE"], encoding="utf-8") as f:
    for line in f:
        if line.lstrip().startswith("#"):
            out.append(line)
            continue
        rendered, rest = "", line
        while "{{" in rest:
            i = rest.index("{{")
            rendered, after = rendered + rest[:i], rest[i:]
            for key, value in values.items():
                token = "{{" + key + "}}"
                if after.startswith(token):
                    rendered, rest = rendered + value, after[len(token):]
                    break
            else:
                sys.exit(f"unknown token in template line: {line.strip()}")
        out.append(rendered + rest)
with open(sys.argv[1], "w", encoding="utf-8") as f:
    f.write("".join(out))
PY
}

# http_get HOST PORT PATH: prints the raw response; fails if nothing answers.
http_get() {
  timeout 2 bash -c '
    exec 3<>"/dev/tcp/$1/$2" || exit 1
    printf "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" "$3" "$1" >&3
    cat <&3' _ "$1" "$2" "$3" 2>/dev/null
}

port_open() { timeout 1 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null; }

if [[ "${1:-}" == "--render-only" ]]; then
  [[ -n "${2:-}" ]] || die "usage: $0 --render-only DIR"
  mkdir -p "$2"
  render "$2/envoy.yaml"
  say "rendered $2/envoy.yaml"
  exit 0
elif [[ $# -gt 0 ]]; then
  die "usage: $0 [--render-only DIR]"
fi

need "$ENVOY" "Envoy" "envoy"
need "$WASM" "the filter module" "wasm"
need "$MOCK_BIN" "the mock provider" "build"
command -v python3 >/dev/null || die "python3 is needed to render the Envoy config"
command -v setsid >/dev/null || die "setsid (util-linux) is needed"

for hp in "$LISTEN" "$ADMIN" "$PROVIDER"; do
  if port_open "$(host_of "$hp")" "$(port_of "$hp")"; then
    die "something already listens on $hp (another \`make run\`?)"
  fi
done

mkdir -p "$RUN_DIR"
render "$RUN_DIR/envoy.yaml"

# Secrets reach the filter only through Envoy's environment (host_env_keys).
if [[ -z "${MESHWARD_PLACEHOLDER_KEY:-}" ]]; then
  MESHWARD_PLACEHOLDER_KEY=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
  say "generated a random MESHWARD_PLACEHOLDER_KEY for this session"
fi
export MESHWARD_PLACEHOLDER_KEY
# The filter signs audit events with it and the sink verifies them.
if [[ -z "${MESHWARD_AUDIT_SECRET:-}" ]]; then
  MESHWARD_AUDIT_SECRET="whsec_$(head -c 24 /dev/urandom | base64 | tr -d '\n')"
  say "generated a random MESHWARD_AUDIT_SECRET for this session"
fi
export MESHWARD_AUDIT_SECRET

PIDS=()
NAMES=()
cleanup() {
  trap - EXIT INT TERM
  trap "" PIPE # a closed terminal or pipe must not cut the clean-up short
  local i
  for i in "${!PIDS[@]}"; do
    kill -TERM "${PIDS[$i]}" 2>/dev/null || true
  done
  for i in "${!PIDS[@]}"; do
    # Up to 5 s each to exit cleanly, then SIGKILL.
    for _ in $(seq 50); do
      kill -0 "${PIDS[$i]}" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "${PIDS[$i]}" 2>/dev/null; then
      kill -KILL "${PIDS[$i]}" 2>/dev/null || true
    fi
    wait "${PIDS[$i]}" 2>/dev/null || true
  done
  if [[ ${#PIDS[@]} -gt 0 ]]; then say "stopped: ${NAMES[*]}"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME LOG CMD...: runs CMD in the background in its own session (so a
# Ctrl-C reaches only this script, which then stops everything in order),
# and remembers its pid (setsid execs in place: the pid is CMD's).
start() {
  local name=$1 log=$2
  shift 2
  setsid "$@" >"$log" 2>&1 </dev/null &
  PIDS+=($!)
  NAMES+=("$name")
}

# wait_until NAME PID SECONDS CMD...: polls CMD until it succeeds.
wait_until() {
  local name=$1 pid=$2 secs=$3 log=$4
  shift 4
  local deadline=$((SECONDS + secs))
  until "$@"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      say "$name exited while starting; last lines of $log:"
      tail -n 30 "$log" >&2
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      say "$name not ready after ${secs}s; last lines of $log:"
      tail -n 30 "$log" >&2
      exit 1
    fi
    sleep 0.1
  done
}

mock_ready() { http_get "$(host_of "$PROVIDER")" "$(port_of "$PROVIDER")" /__mock/health | grep -q '^ok'; }
envoy_ready() { http_get "$(host_of "$ADMIN")" "$(port_of "$ADMIN")" /ready | grep -q '^LIVE'; }
sink_ready() { port_open "$(host_of "$SINK")" "$(port_of "$SINK")"; }

start mock-provider "$RUN_DIR/mock-provider.log" "$MOCK_BIN" --listen "$PROVIDER"
wait_until "the mock provider" "${PIDS[-1]}" 15 "$RUN_DIR/mock-provider.log" mock_ready
say "mock provider on http://$PROVIDER (log: $RUN_DIR/mock-provider.log)"

SINK_NOTE="not started: $SINK_BIN does not support \`serve\` yet (the filter's events to $SINK are dropped)"
if [[ -x "$SINK_BIN" ]] && SINK_HELP=$("$SINK_BIN" serve --help 2>&1); then
  if port_open "$(host_of "$SINK")" "$(port_of "$SINK")"; then
    die "something already listens on $SINK (another \`make run\`?)"
  fi
  SINK_ARGS=(serve)
  if grep -q -- '--listen' <<<"$SINK_HELP"; then SINK_ARGS+=(--listen "$SINK"); fi
  if grep -q -- '--data-dir' <<<"$SINK_HELP"; then SINK_ARGS+=(--data-dir "$RUN_DIR/sink"); fi
  mkdir -p "$RUN_DIR/sink"
  start audit-sink "$RUN_DIR/audit-sink.log" "$SINK_BIN" "${SINK_ARGS[@]}"
  wait_until "the audit sink" "${PIDS[-1]}" 15 "$RUN_DIR/audit-sink.log" sink_ready
  SINK_NOTE="on http://$SINK (log: $RUN_DIR/audit-sink.log, data: $RUN_DIR/sink)"
fi
say "audit sink $SINK_NOTE"

start envoy "$RUN_DIR/envoy.log" "$ENVOY" -c "$RUN_DIR/envoy.yaml" \
  --concurrency "$CONCURRENCY" --disable-hot-restart -l info
wait_until "Envoy" "${PIDS[-1]}" 120 "$RUN_DIR/envoy.log" envoy_ready
say "Envoy with the meshward filter on http://$LISTEN, admin http://$ADMIN (log: $RUN_DIR/envoy.log)"

cat <<EOF

meshward is running. Send a chat request with an e-mail address and a card number:

  curl -s http://$LISTEN/v1/chat/completions \\
    -H 'content-type: application/json' -H 'x-request-id: demo-1' \\
    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Mail jane.doe@example.com, card 4111 1111 1111 1111."}]}'

What to look for:
  - the reply is the provider's view of the conversation: the e-mail and the card
    number show up as [EMAIL_xxxxxx] and [CREDIT_CARD_xxxxxx] placeholders;
  - what the provider received, raw:   curl -s http://$PROVIDER/__mock/requests
    (it never holds the real values; DELETE the same URL to clear it);
  - streaming: add "stream":true to the body and use curl -N — an SSE stream of
    chat.completion.chunk events ending in data: [DONE];
  - a malformed body (-d '{oops') gets a 400 application/problem+json with the request id;
  - the audit trail (one signed event per request, counts and hashes, never values;
    events leave every 0.5 s):   curl -s http://$SINK/v1/entries
    its signed checkpoint:        curl -s http://$SINK/checkpoint
  - Envoy stats: curl -s http://$ADMIN/stats | grep wasm
  - logs: $RUN_DIR/*.log

Ctrl-C stops everything.
EOF

# Run until Ctrl-C (or TERM), or until one of the processes dies.
INTERRUPTED=
trap 'INTERRUPTED=1' INT TERM
set +e
wait -n "${PIDS[@]}"
status=$?
set -e
if [[ -n "$INTERRUPTED" ]]; then
  exit 0 # the EXIT trap stops everything
fi
for i in "${!PIDS[@]}"; do
  if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
    say "${NAMES[$i]} exited (status $status); see $RUN_DIR/${NAMES[$i]}.log"
  fi
done
exit 1
