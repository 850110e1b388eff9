#!/usr/bin/env bash
# Issue 4 figures: the mock model on ONE core (taskset -c 0, one worker thread) under wrk
# on the other core: non-streaming chat completions per second with p50/p99 latency, and
# streamed tokens per second. Issue 14: a structured-output request (a 20-property nested
# JSON Schema) next to the plain one, in the same run (goal: at most 1.5x the plain cost).
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

# A 20-property nested schema, as Pydantic writes it (enums, formats, bounds, lists, $defs).
python3 - "$tmp/structured.lua" <<'PY'
import json, sys
person = {"type": "object", "additionalProperties": False, "required": ["name", "email", "role"],
          "properties": {"name": {"type": "string"}, "email": {"type": "string", "format": "email"},
                         "role": {"enum": ["host", "guest", "speaker"]}}}
props = {
    "id": {"type": "string", "format": "uuid"}, "title": {"type": "string", "minLength": 3, "maxLength": 60},
    "starts_at": {"type": "string", "format": "date-time"}, "day": {"type": "string", "format": "date"},
    "link": {"type": "string", "format": "uri"}, "priority": {"type": "integer", "minimum": 1, "maximum": 5},
    "budget": {"type": "number", "minimum": 0, "maximum": 1000}, "confirmed": {"type": "boolean"},
    "host": {"$ref": "#/$defs/Person"}, "attendees": {"type": "array", "items": {"$ref": "#/$defs/Person"}, "minItems": 1},
    "tags": {"type": "array", "items": {"type": "string"}}, "room": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    "minutes": {"type": "integer", "minimum": 15, "maximum": 120, "multipleOf": 15},
    "status": {"enum": ["draft", "sent", "done"]}, "notes": {"type": "string"},
    "location": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                 "required": ["city", "zip"]},
    "agenda": {"type": "array", "items": {"type": "object", "properties": {"topic": {"type": "string"},
               "minutes": {"type": "integer", "minimum": 1}}, "required": ["topic", "minutes"]}},
    "recurring": {"type": "boolean"}, "timezone": {"enum": ["UTC", "CET", "PST"]}, "version": {"const": 1},
}
assert len(props) == 20
schema = {"$defs": {"Person": person}, "type": "object", "properties": props, "required": list(props)}
body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "What is a context window?"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "meeting", "strict": True, "schema": schema}}}
text = json.dumps(body, separators=(",", ":"))
head = 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
with open(sys.argv[1], "w") as f:
    f.write(head + "wrk.body = [[" + text + "]]\n")
# The same schema with a new prompt each request: a new document every time.
with open(sys.argv[1].replace(".lua", "_varied.lua"), "w") as f:
    f.write(head + "local body = [[" + text + "]]\nlocal n = 0\n"
            "request = function()\n  n = n + 1\n"
            "  local b = string.gsub(body, 'What is a context window%?', 'Question number ' .. n)\n"
            "  return wrk.format(nil, nil, nil, b)\nend\n")
PY

# Warm up, then measure.
taskset -c 1 wrk -t1 -c32 -d2s -s "$tmp/chat.lua" "$url/v1/chat/completions" >/dev/null
echo
echo "== non-streaming /v1/chat/completions, 32 connections, $duration"
taskset -c 1 wrk -t1 -c32 -d"$duration" --latency -s "$tmp/chat.lua" "$url/v1/chat/completions" | tee "$tmp/chat.txt" \
  | grep -E "Requests/sec|^ +50%|^ +99%|Non-2xx|Socket errors"

echo
echo "== structured output (20-property nested json_schema), 32 connections, $duration"
taskset -c 1 wrk -t1 -c32 -d"$duration" --latency -s "$tmp/structured.lua" "$url/v1/chat/completions" | tee "$tmp/structured.txt" \
  | grep -E "Requests/sec|^ +50%|^ +99%|Non-2xx|Socket errors"
echo
echo "== structured output, the same schema with a new prompt each request, 32 connections, $duration"
taskset -c 1 wrk -t1 -c32 -d"$duration" --latency -s "$tmp/structured_varied.lua" "$url/v1/chat/completions" | tee "$tmp/varied.txt" \
  | grep -E "Requests/sec|^ +50%|^ +99%|Non-2xx|Socket errors"
figures() { awk '/Requests\/sec/ {r=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} END {printf "%10.0f req/s   p50 %8s   p99 %8s", r, p50, p99}' "$1"; }
echo
echo "                    plain vs structured, same run"
echo "  plain       $(figures "$tmp/chat.txt")"
echo "  structured  $(figures "$tmp/structured.txt")   (the same request again)"
echo "  new prompt  $(figures "$tmp/varied.txt")   (a new document each request)"
ratio() { awk -v a="$(awk '/Requests\/sec/ {print $2}' "$1")" -v b="$(awk '/Requests\/sec/ {print $2}' "$2")" 'BEGIN {printf "%.2fx", a/b}'; }
echo "  cost ratio, plain req/s over structured req/s: $(ratio "$tmp/chat.txt" "$tmp/structured.txt") the same request, $(ratio "$tmp/chat.txt" "$tmp/varied.txt") a new prompt (goal <= 1.5x)"

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
