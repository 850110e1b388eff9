#!/usr/bin/env bash
# Issue 5 figures for `stack serve context` (release build, wrk on loopback):
#  - REST store (durable: committed and fsynced before the 201) and retrieve, req/s, p50/p99
#  - retrieve over a 10,000-entry session with a 4,000-token budget and a query, p50/p99
#  - MCP tools/call (retrieve_context) p50/p99 in each protocol era
#   bench/context.sh [DURATION]        (default 10s; needs wrk: apt-get install -y wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-10s}"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
cargo build --release --quiet
tmp="$(mktemp -d)"
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

report() { grep -E "Requests/sec|^ +50%|^ +99%|Non-2xx|Socket errors" | sed 's/^/  /'; }
start() {  # start DURABILITY: a fresh server with that durability
  printf 'db: %s/%s.db\ndurability: %s\n' "$tmp" "$1" "$1" >"$tmp/context-$1.yaml"
  target/release/stack serve context --port 0 --config "$tmp/context-$1.yaml" >"$tmp/out-$1" 2>"$tmp/err-$1" &
  server=$!
  for _ in $(seq 1 300); do grep -q listening "$tmp/out-$1" && break; sleep 0.01; done
  url="$(sed -n 's/^listening on //p' "$tmp/out-$1")"
  echo "context server at $url (pid $server, durability: $1), database on $(df --output=source "$tmp" | tail -1)"
}

cat >"$tmp/store.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"role":"user","content":"We decided to deploy the billing service to the eu-west cluster on Tuesdays."}'
LUA
start full
echo "== REST store (POST /v1/sessions/{id}/entries), durability: full (fsync per commit), 1 connection, $duration"
wrk -t1 -c1 -d"$duration" --latency -s "$tmp/store.lua" "$url/v1/sessions/bench-store/entries" | report
kill "$server"; wait "$server" 2>/dev/null || true
echo
start normal
echo "== REST store, durability: normal (the default: survives kill -9), 1 connection, $duration"
wrk -t1 -c1 -d"$duration" --latency -s "$tmp/store.lua" "$url/v1/sessions/bench-store/entries" | report
echo; echo "== REST store, durability: normal, 8 connections (8 writers into one session), $duration"
wrk -t2 -c8 -d"$duration" --latency -s "$tmp/store.lua" "$url/v1/sessions/bench-store/entries" | report

echo; echo "== REST retrieve on that session (budget 4000, query), 8 connections, $duration"
wrk -t2 -c8 -d"$duration" --latency "$url/v1/sessions/bench-store/context?max_tokens=4000&query=billing%20cluster" | report

echo; echo "== seeding a 10,000-entry session"
python3 - "$url" <<'PY'
import http.client, json, random, sys, time, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
words = ("deploy billing cluster token budget gateway context memory session rust python "
         "incident database latency cache retry queue schema migration tuesday owner "
         "rotation alert dashboard metric trace span pipeline release rollback").split()
rng = random.Random(7)
conn = http.client.HTTPConnection(u.hostname, u.port)
t0 = time.perf_counter()
for i in range(10000):
    text = f"Turn {i}: " + " ".join(rng.choice(words) for _ in range(rng.randint(8, 40))) + "."
    body = json.dumps({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    conn.request("POST", "/v1/sessions/big/entries", body, {"Content-Type": "application/json"})
    r = conn.getresponse(); r.read()
    assert r.status == 201, r.status
print(f"  10,000 sequential durable writes in {time.perf_counter() - t0:.1f} s")
PY

echo; echo "== retrieve over 10,000 entries, budget 4,000 tokens, with a query, 4 connections, $duration"
wrk -t2 -c4 -d"$duration" --latency "$url/v1/sessions/big/context?max_tokens=4000&query=billing%20rollback%20owner" | report
echo "  (answer: $(curl -s "$url/v1/sessions/big/context?max_tokens=4000&query=billing%20rollback%20owner" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d["entries"]), "entries,", d["tokens"], "tokens,", d["omitted"], "omitted")'))"

for i in $(seq 1 50); do
  curl -s -o /dev/null "$url/v1/sessions/small/entries" -H 'content-type: application/json' \
    -d "{\"role\":\"user\",\"content\":\"small turn $i about billing and clusters\"}"
done
call='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"retrieve_context","arguments":{"session_id":"small","query":"billing","max_tokens":500}'
cat >"$tmp/mcp2026.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2026-07-28"
wrk.headers["Mcp-Method"] = "tools/call"
wrk.headers["Mcp-Name"] = "retrieve_context"
wrk.body = '$call,"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"bench","version":"1"}}}}'
LUA
echo; echo "== MCP tools/call retrieve_context, 2026-07-28 (stateless), 1 connection, $duration"
wrk -t1 -c1 -d"$duration" --latency -s "$tmp/mcp2026.lua" "$url/mcp" | report

session=$(curl -s -D - -o /dev/null "$url/mcp" -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
  -d '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}' \
  | tr -d '\r' | awk -F': ' 'tolower($1)=="mcp-session-id" {print $2}')
curl -s -o /dev/null "$url/mcp" -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
  -H "mcp-session-id: $session" -H 'mcp-protocol-version: 2025-11-25' -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
cat >"$tmp/mcp2025.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-11-25"
wrk.headers["Mcp-Session-Id"] = "$session"
wrk.body = '$call}}'
LUA
echo; echo "== MCP tools/call retrieve_context, 2025-11-25 (session $session), 1 connection, $duration"
wrk -t1 -c1 -d"$duration" --latency -s "$tmp/mcp2025.lua" "$url/mcp" | report
echo; echo "server RSS: $(awk '/VmRSS/ {print $2 " " $3}' /proc/$server/status)"
