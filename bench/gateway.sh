#!/usr/bin/env bash
# Issue 6 and 13 figures: the mock model directly, the gateway in front of it over http,
# over https (the mock serving TLS with a throw-away certificate, trusted via ca_file),
# with translation (OpenAI chat in, the upstream an `anthropic` provider: Anthropic
# messages out and back), and nginx (proxy_pass with upstream keepalive), same wrk load.
# The model runs on core 0 (1 worker), the proxy on core 1 (1 worker / 1 nginx worker);
# for each proxy it also prints its own CPU time per request, user and system.
#   bench/gateway.sh [DURATION] [CONNECTIONS] [ROUNDS]   (default 5s, 16, 5; needs wrk
#                                                         and nginx: apt-get install -y wrk nginx)
# The three targets take turns, round after round, and the figures are medians: on a
# shared 2-core machine one run of each is at the mercy of whatever else ran just then.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-5s}"
conns="${2:-16}"
rounds="${3:-5}"
. bench/lib.sh
bench_setup wrk nginx openssl

serve model taskset -c 0 -- model
model=$url
printf 'upstreams: {default: "%s"}\n' "$model" >"$tmp/gateway.yaml"
serve gateway taskset -c 1 -- gateway --config "$tmp/gateway.yaml"
gateway=$url
gateway_pid=$pid
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/key.pem" -out "$tmp/cert.pem" -days 1 \
  -subj "/CN=localhost" -addext "subjectAltName=IP:127.0.0.1" \
  -addext "basicConstraints=critical,CA:FALSE" 2>/dev/null
printf 'tls: {cert: "%s", key: "%s"}\n' "$tmp/cert.pem" "$tmp/key.pem" >"$tmp/model-tls.yaml"
serve model_tls taskset -c 0 -- model --config "$tmp/model-tls.yaml"
model_tls=${url/http:/https:}
printf 'upstreams: {default: {url: "%s", provider: openai}}\nca_file: "%s"\n' "$model_tls" "$tmp/cert.pem" \
  >"$tmp/gateway-tls.yaml"
serve gateway_tls taskset -c 1 -- gateway --config "$tmp/gateway-tls.yaml"
gateway_tls=$url
gateway_tls_pid=$pid
printf 'upstreams: {default: {url: "%s", provider: anthropic}}\n' "$model" >"$tmp/gateway-tr.yaml"
serve gateway_tr taskset -c 1 -- gateway --config "$tmp/gateway-tr.yaml"
gateway_tr=$url
gateway_tr_pid=$pid
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
      proxy_set_header Host \$http_host;  # the model answers loopback names only (rebinding)
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

chat_lua "$tmp/chat.lua"

cpu() { awk '{print $14, $15}' "/proc/$1/stat"; }  # user, system ticks
results="$tmp/results"
run() {  # run NAME URL [PID]: one wrk run against URL; with PID, that process's CPU ticks
  local out before="" after=""
  [ -n "${3:-}" ] && before=$(cpu "$3")
  out=$(wrk -t1 -c"$conns" -d"$duration" --latency -s "$tmp/chat.lua" "$2/v1/chat/completions")
  [ -n "${3:-}" ] && after=$(cpu "$3")
  if grep -q "Non-2xx" <<<"$out"; then echo "warning: $1 answered errors" >&2; grep Non-2xx <<<"$out" >&2; fi
  printf '%s %s %s %s %s %s\n' "$1" \
    "$(awk '/requests in/ {print $1}' <<<"$out")" \
    "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '$1=="50%" {print $2}' <<<"$out")" \
    "$(awk '$1=="99%" {print $2}' <<<"$out")" \
    "${before:-0 0} ${after:-0 0}" >>"$results"
}

echo "non-streaming chat completions, wrk -c$conns, $duration per run, $rounds rounds (each target in turn);"
echo "model on core 0, proxy on core 1; medians over the rounds"
for target in "$model" "$gateway" "$gateway_tls" "$gateway_tr" "$nginx_url"; do  # warm-up
  wrk -t1 -c"$conns" -d1s -s "$tmp/chat.lua" "$target/v1/chat/completions" >/dev/null
done
for _ in $(seq 1 "$rounds"); do
  run direct "$model"
  run gateway "$gateway" "$gateway_pid"
  run https "$gateway_tls" "$gateway_tls_pid"
  run translate "$gateway_tr" "$gateway_tr_pid"
  run nginx "$nginx_url" "$nginx_worker"
done
python3 - "$results" "$(getconf CLK_TCK)" <<'PY'
import statistics, sys
def ms(v):
    for unit, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if v.endswith(unit):
            return float(v[: -len(unit)]) * f
    return float(v)
hz = int(sys.argv[2])
runs = {}
for line in open(sys.argv[1]):
    name, n, rps, p50, p99, u0, s0, u1, s1 = line.split()
    n = int(n)
    runs.setdefault(name, []).append((float(rps), ms(p50), ms(p99),
        (int(u1) - int(u0)) * 1e6 / hz / n, (int(s1) - int(s0)) * 1e6 / hz / n))
med = {k: [statistics.median(col) for col in zip(*v)] for k, v in runs.items()}
for name in ("direct", "gateway", "https", "translate", "nginx"):
    rps, p50, p99, user, system = med[name]
    line = f"{name:9} {rps:10.0f} req/s   p50 {p50:6.3f} ms   p99 {p99:6.3f} ms"
    if name != "direct":
        line += f"   CPU/request: user {user:.1f} us, system {system:.1f} us"
    print(line)
ratios = [g[0] / n[0] for g, n in zip(runs["gateway"], runs["nginx"])]
print("gateway/nginx throughput: " + f"{statistics.median(ratios):.2f}x (median; rounds: "
      + ", ".join(f"{r:.2f}" for r in ratios) + ")")
d, g, n = med["direct"], med["gateway"], med["nginx"]
print(f"added latency: gateway p50 +{g[1] - d[1]:.3f} ms, p99 +{g[2] - d[2]:.3f} ms;"
      f" nginx p50 +{n[1] - d[1]:.3f} ms, p99 +{n[2] - d[2]:.3f} ms")
for name, goal_p50, goal_cpu in (("https", 0.1, None), ("translate", 0.15, 15.0)):
    t = med[name]
    cpu = (t[3] + t[4]) - (g[3] + g[4])
    line = f"{name} over http: p50 +{t[1] - g[1]:.3f} ms (goal <= {goal_p50} ms), CPU/request +{cpu:.1f} us"
    if goal_cpu is not None:
        line += f" (goal <= {goal_cpu:.0f} us)"
    print(line)
PY
echo "gateway idle RSS: $((idle_rss / 1024)) MB ($idle_rss kB)"
