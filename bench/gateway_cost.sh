#!/usr/bin/env bash
# The gateway's CPU cost per proxied request, in instructions, counted by callgrind: a
# steady figure where requests/s on a shared machine swing from run to run, so one change
# to the hot path can be judged on its own. The mock model serves; the gateway (one
# worker) runs under callgrind; wrk warms it up, the counters are zeroed, wrk runs again,
# and the counts are dumped. Prints instructions per request and the functions that cost
# the most (self cost).
# With `translate`, the upstream is an `anthropic` provider: OpenAI chat in, Anthropic
# messages out and back.
#   bench/gateway_cost.sh [SECONDS] [TOP] [plain|translate]
#       (default 5, 25, plain; needs wrk and valgrind: apt-get install -y wrk valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-5}"
top="${2:-25}"
mode="${3:-plain}"
. bench/lib.sh
bench_setup wrk valgrind

serve model -- model
model=$url
case "$mode" in
  plain) printf 'upstreams: {default: "%s"}\n' "$model" >"$tmp/gateway.yaml" ;;
  translate) printf 'upstreams: {default: {url: "%s", provider: anthropic}}\n' "$model" >"$tmp/gateway.yaml" ;;
  *) echo "mode is plain or translate, not $mode" >&2; exit 2 ;;
esac
serve gateway valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" -- \
  gateway --config "$tmp/gateway.yaml"
gateway=$url
gateway_pid=$pid
chat_lua "$tmp/chat.lua"
wrk -t1 -c16 -d2s -s "$tmp/chat.lua" "$gateway/v1/chat/completions" >/dev/null
callgrind_control -z "$gateway_pid" >/dev/null 2>&1
requests=$(wrk -t1 -c16 -d"${seconds}s" -s "$tmp/chat.lua" "$gateway/v1/chat/completions" |
  awk '/requests in/ {print $1}')
callgrind_control -d "$gateway_pid" >/dev/null 2>&1
for _ in $(seq 1 50); do [ -s "$tmp/cg.out.1" ] && break; sleep 0.1; done

python3 - "$tmp/cg.out.1" "$requests" "$top" "$mode" <<'PY'
import collections, re, sys
path, requests, top = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
names, cost = {}, collections.Counter()
function, skip = None, False
for line in open(path, errors="replace"):
    if line.startswith("fn="):
        m = re.match(r"fn=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
        if m and m.group(2):
            names[m.group(1)] = m.group(2)
        function = names.get(m.group(1), m.group(1)) if m else line[3:].strip()
    elif line.startswith("cfn="):
        m = re.match(r"cfn=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
        if m and m.group(2):
            names[m.group(1)] = m.group(2)
    elif line.startswith("calls="):
        skip = True  # the next cost line is the callee's inclusive cost
    elif line[:1].isdigit() or line[:1] in "+-*":
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            if not skip:
                cost[function] += int(parts[1])
            skip = False
total = sum(cost.values())
print(f"{requests} requests through the gateway ({sys.argv[4]}) under callgrind; "
      f"{total / requests:,.0f} instructions per request")
for name, c in cost.most_common(top):
    print(f"{c / requests:9,.0f} {100 * c / total:5.1f}%  {name[:150]}")
PY
