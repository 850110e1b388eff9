#!/usr/bin/env bash
# Issue 15 figures, through the gateway, same wrk load (the chat request of bench/lib.sh):
#  - replay (`replay_speed: 0`, the mock answering from a cassette) next to the plain mock
#    answering the same request in the same run: throughput, p50, p99; goal replay p50
#    <= 1.2x the mock's;
#  - recording overhead on a live request to the mock over TLS: the gateway with
#    `llm: record` next to the same gateway live, every request a new prompt (so every
#    one is recorded and written: a request asked again in a run is not recorded again);
#    goal <= 0.2 ms p50 added.
# The model runs on core 0 (1 worker), the gateway on core 1 (1 worker).
#   bench/replay.sh [DURATION] [CONNECTIONS] [ROUNDS]   (default 5s, 16, 5; needs wrk:
#                                                       apt-get install -y wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-5s}"
conns="${2:-16}"
rounds="${3:-5}"
. bench/lib.sh
bench_setup wrk openssl curl
chat_lua "$tmp/chat.lua"
body=$(sed -n "s/^wrk.body = '\(.*\)'$/\1/p" "$tmp/chat.lua")
cat >"$tmp/unique.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil,
    '{"model":"mock-gpt","messages":[{"role":"user","content":"What is a context window? ' .. n .. '"}]}')
end
LUA

# The plain mock, and a gateway in front of it.
serve model taskset -c 0 -- model
model=$url
printf 'upstreams: {default: "%s"}\n' "$model" >"$tmp/gw-mock.yaml"
serve gw_mock taskset -c 1 -- gateway --config "$tmp/gw-mock.yaml"
gw_mock=$url

# Record the request once, then a mock that replays it, and a gateway in front of that.
printf 'upstreams: {default: "%s"}\nllm: record\ncassettes: "%s"\n' "$model" "$tmp/cassettes" >"$tmp/gw-rec0.yaml"
serve gw_rec0 -- gateway --config "$tmp/gw-rec0.yaml"
curl -sf -o /dev/null -H 'content-type: application/json' -d "$body" "$url/v1/chat/completions"
for _ in $(seq 1 200); do [ -n "$(find "$tmp/cassettes" -name '*.yaml' 2>/dev/null)" ] && break; sleep 0.01; done
printf 'replay: {cassettes: "%s", speed: 0}\n' "$tmp/cassettes" >"$tmp/model-replay.yaml"
serve model_replay taskset -c 0 -- model --config "$tmp/model-replay.yaml"
printf 'upstreams: {default: "%s"}\n' "$url" >"$tmp/gw-replay.yaml"
serve gw_replay taskset -c 1 -- gateway --config "$tmp/gw-replay.yaml"
gw_replay=$url

# The mock over TLS as the provider; the gateway live, and recording.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/key.pem" -out "$tmp/cert.pem" -days 1 \
  -subj "/CN=localhost" -addext "subjectAltName=IP:127.0.0.1" \
  -addext "basicConstraints=critical,CA:FALSE" 2>/dev/null
printf 'tls: {cert: "%s", key: "%s"}\n' "$tmp/cert.pem" "$tmp/key.pem" >"$tmp/model-tls.yaml"
serve model_tls taskset -c 0 -- model --config "$tmp/model-tls.yaml"
tls=${url/http:/https:}
printf 'upstreams: {default: {url: "%s", provider: openai}}\nca_file: "%s"\n' "$tls" "$tmp/cert.pem" >"$tmp/gw-live.yaml"
serve gw_live taskset -c 1 -- gateway --config "$tmp/gw-live.yaml"
gw_live=$url
{ cat "$tmp/gw-live.yaml"; printf 'llm: record\ncassettes: "%s"\n' "$tmp/cassettes-rec"; } >"$tmp/gw-record.yaml"
serve gw_record taskset -c 1 -- gateway --config "$tmp/gw-record.yaml"
gw_record=$url

results="$tmp/results"
run() {  # run NAME URL [SCRIPT]: one wrk run
  local out
  out=$(wrk -t1 -c"$conns" -d"$duration" --latency -s "${3:-$tmp/chat.lua}" "$2/v1/chat/completions")
  if grep -q "Non-2xx" <<<"$out"; then echo "warning: $1 answered errors" >&2; grep Non-2xx <<<"$out" >&2; fi
  printf '%s %s %s %s\n' "$1" \
    "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '$1=="50%" {print $2}' <<<"$out")" \
    "$(awk '$1=="99%" {print $2}' <<<"$out")" >>"$results"
}

echo "non-streaming chat completions through the gateway, wrk -c$conns, $duration per run,"
echo "$rounds rounds (each target in turn); model on core 0, gateway on core 1; medians"
for target in "$gw_mock" "$gw_replay" "$gw_live" "$gw_record"; do  # warm-up
  wrk -t1 -c"$conns" -d1s -s "$tmp/chat.lua" "$target/v1/chat/completions" >/dev/null
done
for _ in $(seq 1 "$rounds"); do
  run mock "$gw_mock"
  run replay "$gw_replay"
  run live "$gw_live" "$tmp/unique.lua"
  run record "$gw_record" "$tmp/unique.lua"
done
python3 - "$results" <<'PY'
import statistics, sys
def ms(v):
    for unit, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if v.endswith(unit):
            return float(v[: -len(unit)]) * f
    return float(v)
runs = {}
for line in open(sys.argv[1]):
    name, rps, p50, p99 = line.split()
    runs.setdefault(name, []).append((float(rps), ms(p50), ms(p99)))
med = {k: [statistics.median(c) for c in zip(*v)] for k, v in runs.items()}
labels = {"mock": "gateway -> mock", "replay": "gateway -> replay (speed 0)",
          "live": "gateway -> TLS mock, live", "record": "gateway -> TLS mock, record"}
for name in ("mock", "replay", "live", "record"):
    rps, p50, p99 = med[name]
    print(f"{labels[name]:28} {rps:9.0f} req/s   p50 {p50:6.3f} ms   p99 {p99:6.3f} ms")
m, r, l, c = med["mock"], med["replay"], med["live"], med["record"]
print(f"replay p50 / mock p50: {r[1] / m[1]:.2f}x (goal <= 1.2x); throughput {r[0] / m[0]:.2f}x")
print(f"recording adds p50 {c[1] - l[1]:+.3f} ms (goal <= 0.2 ms), p99 {c[2] - l[2]:+.3f} ms;"
      f" throughput {c[0] / l[0]:.2f}x")
PY
echo "cassettes written while recording: $(find "$tmp/cassettes-rec" -name '*.yaml' | wc -l)"
