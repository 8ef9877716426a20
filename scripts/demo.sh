#!/usr/bin/env bash
# make demo: a Jira stand-in, a dev gateway and an agent as real processes on
# loopback; real Jira calls through the tunnel with curl, over QUIC and then
# over TCP. Exits 0 only if every call answered as expected.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v curl >/dev/null || { echo "demo: curl is needed (apt-get install curl)" >&2; exit 1; }

work=.demo
rm -rf "$work" && mkdir -p "$work"
pids=()
cleanup() {
  local code=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ $code -ne 0 ]; then
    echo; echo "demo FAILED; logs:"
    for f in "$work"/*.log; do echo "--- $f"; tail -n 30 "$f"; done
  fi
}
trap cleanup EXIT

wait_file() { for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "demo: $1 did not appear" >&2; return 1; }

# The Jira token lives only in the stand-in and the agent: never in the
# gateway's files or on its side of the tunnel.
export JIRA_TOKEN="demo-jira-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"

echo "== starting the Jira stand-in"
JIRA_STANDIN_BEARER_TOKEN="$JIRA_TOKEN" bin/jira-standin --listen 127.0.0.1:0 --addr-file "$work/jira.addr" 2>"$work/jira.log" &
pids+=($!)
wait_file "$work/jira.addr"
jira=$(cat "$work/jira.addr")
echo "   Jira at http://$jira"

echo "== starting the gateway (oxbroker-gateway dev)"
bin/oxbroker-gateway dev --dir "$work/gw" --tunnel 127.0.0.1:0 --api 127.0.0.1:0 --jira-url "http://$jira" \
  >"$work/gateway.out" 2>"$work/gateway.log" &
pids+=($!)
wait_file "$work/gw/api.url"
api=$(cat "$work/gw/api.url")
token=$(cat "$work/gw/connector.token")
echo "   connector API at $api"

failures=0
# call METHOD PATH WANT_STATUS [BODY]: one connector call, printed.
call() {
  local method=$1 path=$2 want=$3 body=${4:-}
  local args=(-s -o "$work/body" -w '%{http_code}' -X "$method" -H "Authorization: Bearer ${TOKEN_OVERRIDE:-$token}")
  [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data "$body")
  local got
  got=$(curl "${args[@]}" "$api/b/dev/jira$path")
  local mark="ok"
  [ "$got" = "$want" ] || { mark="UNEXPECTED (want $want)"; failures=$((failures+1)); }
  printf '   %-6s %-58s -> %s %s\n' "$method" "$path" "$got" "$mark"
  printf '          %s\n' "$(head -c 160 "$work/body")"
}

wait_online() {
  local transport=$1
  for _ in $(seq 150); do
    if curl -s -H "Authorization: Bearer $token" "$api/v1/brokers/dev" | grep -q "\"transport\":\"$transport\""; then return 0; fi
    sleep 0.1
  done
  echo "demo: the agent did not connect over $transport" >&2; return 1
}

run_calls() {
  call POST "/rest/api/3/issue" 201 '{"fields":{"project":{"key":"DEMO"},"summary":"Found by OX: vulnerable dependency","issuetype":{"name":"Bug"}}}'
  local key; key=$(sed -n 's/.*"key":"\([A-Z]*-[0-9]*\)".*/\1/p' "$work/body")
  call GET "/rest/api/3/issue/$key" 200
  call GET "/rest/api/3/search/jql?jql=project%20%3D%20DEMO" 200
  call GET "/rest/api/3/myself" 200
  echo "   refused by the agent's allowlist (nothing reaches Jira):"
  call POST "/rest/api/3/user" 403 '{"emailAddress":"x@example.com"}'
  echo "   refused by the gateway (wrong connector token):"
  TOKEN_OVERRIDE=wrong-token call GET "/rest/api/3/myself" 401
}

echo "== starting the agent over QUIC (transport: auto)"
bin/oxbroker run --config "$work/gw/agent.yaml" 2>"$work/agent-quic.log" &
agent=$!; pids+=($agent)
wait_online quic
echo "   broker: $(curl -s -H "Authorization: Bearer $token" "$api/v1/brokers/dev" | head -c 200)…"
run_calls
kill "$agent"; wait "$agent" 2>/dev/null || true

echo "== restarting the agent over TCP (OXBROKER_GATEWAY_TRANSPORT=tcp)"
OXBROKER_GATEWAY_TRANSPORT=tcp bin/oxbroker run --config "$work/gw/agent.yaml" 2>"$work/agent-tcp.log" &
agent=$!; pids+=($agent)
wait_online tcp
run_calls

if grep -q "$JIRA_TOKEN" "$work"/gateway.* "$work"/gw/*.yaml 2>/dev/null; then
  echo "demo: the Jira token appeared on the gateway's side" >&2; exit 1
fi
if [ $failures -ne 0 ]; then echo "demo: $failures unexpected answers" >&2; exit 1; fi
echo
echo "demo passed: Jira calls went through QUIC and TCP tunnels; the gateway never held the Jira token."
