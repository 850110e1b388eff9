#!/usr/bin/env bash
# Issue 19: what tracing costs the gateway. The same gateway configuration three ways:
#   off        no OTLP endpoint (nothing installed: the default outside `stack up`)
#   collector  OTEL_EXPORTER_OTLP_ENDPOINT set, spans batched to a collector on loopback
#              (a sink that answers 200, so only the gateway's own work is counted)
#   baseline   (optional) BASELINE=path/to/an-older/stack: the binary before tracing
# For each: CPU time per request (user+system of the gateway process, wrk load, median of
# ROUNDS rounds taken in turn; model on core 0, gateway on core 1), and instructions per
# request under callgrind (steady where CPU time swings). Goals: ≤ 5% more with a
# collector, ≤ 1% more without one (against BASELINE when given).
#   bench/gateway_tracing.sh [DURATION] [ROUNDS]   (default 5s, 5; needs wrk and valgrind:
#                                                   apt-get install -y wrk valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-5s}"
rounds="${2:-5}"
. bench/lib.sh
bench_setup wrk valgrind

# The collector: accepts any OTLP/HTTP export.
python3 - "$tmp/sink.port" <<'PY' &
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
open(sys.argv[1], "w").write(str(s.server_address[1]))
s.serve_forever()
PY
pids+=($!)
for _ in $(seq 1 100); do [ -s "$tmp/sink.port" ] && break; sleep 0.05; done
sink="http://127.0.0.1:$(cat "$tmp/sink.port")"

serve model taskset -c 0 -- model
printf 'upstreams: {default: "%s"}\n' "$url" >"$tmp/gateway.yaml"
chat_lua "$tmp/chat.lua"

variants=(off collector)
declare -A bin=([off]=target/release/stack [collector]=target/release/stack)
declare -A env=([off]="OTEL_SDK_DISABLED=true" [collector]="OTEL_EXPORTER_OTLP_ENDPOINT=$sink")
if [ -n "${BASELINE:-}" ]; then
  variants=(baseline off collector)
  bin[baseline]="$BASELINE"
  env[baseline]="OTEL_SDK_DISABLED=true"
fi

# start VARIANT [LAUNCHER…]: the gateway of VARIANT; sets $url and $pid.
start() {
  local v=$1
  shift
  local out="$tmp/gw-$v.out"
  : >"$out"
  env ${env[$v]} RUST_LOG=warn "$@" "${bin[$v]}" serve gateway --config "$tmp/gateway.yaml" \
    --port 0 --workers 1 >"$out" 2>"$tmp/gw-$v.err" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 1 3000); do grep -q listening "$out" && break; sleep 0.01; done
  url=$(sed -n 's/^listening on //p' "$out")
  [ -n "$url" ] || { echo "gateway $v did not start:" >&2; cat "$tmp/gw-$v.err" >&2; exit 1; }
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

declare -A gw_url gw_pid
for v in "${variants[@]}"; do
  start "$v" taskset -c 1
  gw_url[$v]=$url
  gw_pid[$v]=$pid
  wrk -t1 -c16 -d1s -s "$tmp/chat.lua" "$url/v1/chat/completions" >/dev/null
done
hz=$(getconf CLK_TCK)
declare -A samples
for r in $(seq 1 "$rounds"); do
  for v in "${variants[@]}"; do
    before=$(cpu_ticks "${gw_pid[$v]}")
    n=$(taskset -c 0 wrk -t1 -c16 -d"$duration" -s "$tmp/chat.lua" "${gw_url[$v]}/v1/chat/completions" |
      awk '/requests in/ {print $1}')
    after=$(cpu_ticks "${gw_pid[$v]}")
    samples[$v]+="$(python3 -c "print(($after - $before) / $hz / $n * 1e6)") "
  done
done
for v in "${variants[@]}"; do kill "${gw_pid[$v]}" 2>/dev/null || true; done

# Instructions per request under callgrind (the exporter's thread included).
declare -A instr
for v in "${variants[@]}"; do
  start "$v" valgrind --tool=callgrind --callgrind-out-file="$tmp/cg-$v.out"
  wrk -t1 -c16 -d2s -s "$tmp/chat.lua" "$url/v1/chat/completions" >/dev/null
  callgrind_control -z "$pid" >/dev/null 2>&1
  n=$(wrk -t1 -c16 -d3s -s "$tmp/chat.lua" "$url/v1/chat/completions" | awk '/requests in/ {print $1}')
  # Let the batch exporter send what the run queued (it exports every 5 s at most).
  sleep 6
  callgrind_control -d "$pid" >/dev/null 2>&1
  for _ in $(seq 1 100); do [ -s "$tmp/cg-$v.out.1" ] && break; sleep 0.1; done
  total=$(grep -m1 '^summary:' "$tmp/cg-$v.out.1" | awk '{print $2}')
  [ -n "$total" ] || total=$(grep -m1 '^totals:' "$tmp/cg-$v.out.1" | awk '{print $2}')
  instr[$v]=$(python3 -c "print(${total:-0} / $n)")
  kill "$pid" 2>/dev/null || true
done

python3 - "$duration" "$rounds" "${variants[@]}" <<PY
import statistics, sys
duration, rounds, variants = sys.argv[1], sys.argv[2], sys.argv[3:]
cpu = {$(for v in "${variants[@]}"; do printf '"%s": [%s], ' "$v" "$(echo "${samples[$v]}" | tr ' ' ',')"; done)}
instr = {$(for v in "${variants[@]}"; do printf '"%s": %s, ' "$v" "${instr[$v]}"; done)}
med = {v: statistics.median(cpu[v]) for v in variants}
ref = "baseline" if "baseline" in variants else "off"
print(f"gateway CPU per proxied chat request ({rounds} rounds of {duration}, medians; callgrind over 3 s)")
print(f"{'variant':<11} {'CPU µs/req':>11} {'vs ' + ref:>9} {'instr/req':>11} {'vs ' + ref:>9}")
for v in variants:
    dc = 100 * (med[v] / med[ref] - 1)
    di = 100 * (instr[v] / instr[ref] - 1)
    print(f"{v:<11} {med[v]:>11.2f} {dc:>+8.1f}% {instr[v]:>11,.0f} {di:>+8.1f}%")
print("goal: collector ≤ +5% over off; off ≤ +1% over the build before tracing (BASELINE=…)")
PY
