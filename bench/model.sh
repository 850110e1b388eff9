#!/usr/bin/env bash
# Issue 4 figures: the mock model on ONE core (taskset -c 0, one worker thread) under wrk
# on the other core: non-streaming chat completions per second with p50/p99 latency, and
# streamed tokens per second.
#   bench/model.sh [DURATION]      (default 10s; needs wrk: apt-get install -y wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-10s}"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
cargo build --release --quiet
tmp="$(mktemp -d)"
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

taskset -c 0 target/release/stack serve model --port 0 --workers 1 >"$tmp/out" 2>"$tmp/err" &
server=$!
for _ in $(seq 1 200); do grep -q listening "$tmp/out" && break; sleep 0.01; done
url="$(sed -n 's/^listening on //p' "$tmp/out")"
echo "mock model at $url (pid $server, pinned to core 0, 1 worker)"

cat >"$tmp/chat.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"mock-gpt","messages":[{"role":"user","content":"What is a context window?"}]}'
LUA
cat >"$tmp/stream.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"mock-gpt","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"Write a long answer about context windows and budgets"}]}'
LUA

# Warm up, then measure.
taskset -c 1 wrk -t1 -c32 -d2s -s "$tmp/chat.lua" "$url/v1/chat/completions" >/dev/null
echo
echo "== non-streaming /v1/chat/completions, 32 connections, $duration"
taskset -c 1 wrk -t1 -c32 -d"$duration" --latency -s "$tmp/chat.lua" "$url/v1/chat/completions" | tee "$tmp/chat.txt" \
  | grep -E "Requests/sec|^ +50%|^ +99%|Non-2xx|Socket errors"

echo
echo "== streaming /v1/chat/completions (SSE), 32 connections, $duration"
taskset -c 1 wrk -t1 -c32 -d"$duration" --latency -s "$tmp/stream.lua" "$url/v1/chat/completions" | tee "$tmp/stream.txt" \
  | grep -E "Requests/sec|^ +50%|^ +99%|Non-2xx"
tokens=$(curl -s "$url/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"model":"mock-gpt","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"Write a long answer about context windows and budgets"}]}' \
  | grep -c '"content":"[^"]')
rps=$(awk '/Requests\/sec/ {print $2}' "$tmp/stream.txt")
awk -v r="$rps" -v t="$tokens" 'BEGIN { printf "streamed tokens/s: %.0f (%d tokens a stream x %.0f streams/s)\n", r*t, t, r }'
echo "server RSS: $(awk '/VmRSS/ {print $2 " " $3}' /proc/$server/status)"
