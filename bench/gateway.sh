#!/usr/bin/env bash
# Issue 6 figures: the mock model directly, the gateway in front of it, and nginx
# (proxy_pass with upstream keepalive) in front of it, under the same wrk load.
# The model runs on core 0 (1 worker), the proxy on core 1 (1 worker / 1 nginx worker);
# for each proxy it also prints its own CPU time per request, user and system.
#   bench/gateway.sh [DURATION] [CONNECTIONS]   (default 10s, 16; needs wrk and nginx:
#                                                apt-get install -y wrk nginx)
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-10s}"
conns="${2:-16}"
for tool in wrk nginx; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install -y wrk nginx" >&2; exit 1; }
done
cargo build --release --quiet
tmp="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

url=""; pid=""
serve() {  # serve NAME CORE ARGS…: start `stack serve` pinned to CORE; sets $url and $pid
  local name=$1 core=$2; shift 2
  RUST_LOG="${RUST_LOG_SERVE:-warn}" taskset -c "$core" target/release/stack serve "$@" --port 0 --workers 1 \
    >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 1 300); do grep -q listening "$tmp/$name.out" && break; sleep 0.01; done
  url=$(sed -n 's/^listening on //p' "$tmp/$name.out")
}

serve model 0 model
model=$url
printf 'upstreams: {default: "%s"}\n' "$model" >"$tmp/gateway.yaml"
serve gateway 1 gateway --config "$tmp/gateway.yaml"
gateway=$url
gateway_pid=$pid
sleep 0.3
idle_rss=$(awk '/VmRSS/ {print $2}' /proc/$gateway_pid/status)

nport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$tmp/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp/body;
  proxy_temp_path $tmp/proxy;
  upstream model { server ${model#http://}; keepalive 256; }
  server {
    listen 127.0.0.1:$nport;
    location / {
      proxy_pass http://model;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
NGINX
taskset -c 1 nginx -c "$tmp/nginx.conf" &
nginx_master=$!
pids+=($nginx_master)
for _ in $(seq 1 200); do curl -s -o /dev/null "http://127.0.0.1:$nport/health" && break; sleep 0.01; done
nginx_url="http://127.0.0.1:$nport"
nginx_worker=$(pgrep -P "$nginx_master" | head -n 1)

cat >"$tmp/chat.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"mock-gpt","messages":[{"role":"user","content":"What is a context window?"}]}'
LUA

declare -A rps p50 p99
cpu() { awk '{print $14 + $15, $14, $15}' "/proc/$1/stat"; }  # total, user, system ticks
run() {  # run NAME URL [PID]: wrk against URL; with PID, that process's CPU time per request
  wrk -t1 -c"$conns" -d2s -s "$tmp/chat.lua" "$2/v1/chat/completions" >/dev/null
  local out before after
  [ -n "${3:-}" ] && before=$(cpu "$3")
  out=$(wrk -t1 -c"$conns" -d"$duration" --latency -s "$tmp/chat.lua" "$2/v1/chat/completions")
  [ -n "${3:-}" ] && after=$(cpu "$3")
  rps[$1]=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50[$1]=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99[$1]=$(awk '$1=="99%" {print $2}' <<<"$out")
  if grep -q "Non-2xx" <<<"$out"; then echo "warning: $1 answered errors" >&2; grep Non-2xx <<<"$out" >&2; fi
  printf '%-8s %10s req/s   p50 %9s   p99 %9s' "$1" "${rps[$1]}" "${p50[$1]}" "${p99[$1]}"
  if [ -n "${3:-}" ]; then
    local n hz
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    hz=$(getconf CLK_TCK)
    python3 -c 'import sys; b, a, n, hz = sys.argv[1].split(), sys.argv[2].split(), int(sys.argv[3]), int(sys.argv[4])
us = lambda i: (int(a[i]) - int(b[i])) * 1e6 / hz / n
print(f"   CPU/request: user {us(1):.1f} us, system {us(2):.1f} us")' "$before" "$after" "$n" "$hz"
  else
    echo
  fi
}

echo "non-streaming chat completions, wrk -c$conns, $duration each; model on core 0, proxy on core 1"
run direct "$model"
run gateway "$gateway" "$gateway_pid"
run nginx "$nginx_url" "$nginx_worker"
python3 - "${rps[gateway]}" "${rps[nginx]}" "${p50[direct]}" "${p50[gateway]}" "${p99[direct]}" "${p99[gateway]}" "${p50[nginx]}" "${p99[nginx]}" <<'PY'
import sys
def ms(v):
    v = v.strip()
    for unit, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if v.endswith(unit):
            return float(v[: -len(unit)]) * f
    return float(v)
g, n = float(sys.argv[1]), float(sys.argv[2])
d50, g50, d99, g99, n50, n99 = map(ms, sys.argv[3:9])
print(f"gateway/nginx throughput: {g / n:.2f}x")
print(f"added latency: gateway p50 +{g50 - d50:.3f} ms, p99 +{g99 - d99:.3f} ms;"
      f" nginx p50 +{n50 - d50:.3f} ms, p99 +{n99 - d99:.3f} ms")
PY
echo "gateway idle RSS: $((idle_rss / 1024)) MB ($idle_rss kB)"
