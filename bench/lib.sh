# Shared by the gateway benchmarks (sourced, not run): the tools they need, the release
# build, a scratch folder ($tmp) and the processes ($pids) ended on exit, `stack serve`
# started under a launcher, and the chat request wrk sends.

# bench_setup TOOL…: each tool must be there (else the apt line to get them); builds.
bench_setup() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install -y $*" >&2; exit 1; }
  done
  cargo build --release --quiet
  tmp="$(mktemp -d)"
  pids=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}

# serve NAME [LAUNCHER…] -- ARGS…: `LAUNCHER… stack serve ARGS… --port 0 --workers 1`, its
# output in $tmp/NAME.out and .err; sets $url and $pid once it listens (30 s at most).
serve() {
  local name=$1 launcher=()
  shift
  while [ "$1" != "--" ]; do launcher+=("$1"); shift; done
  shift
  RUST_LOG="${RUST_LOG_SERVE:-warn}" "${launcher[@]}" target/release/stack serve "$@" --port 0 --workers 1 \
    >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 1 3000); do grep -q listening "$tmp/$name.out" && break; sleep 0.01; done
  url=$(sed -n 's/^listening on //p' "$tmp/$name.out")
  [ -n "$url" ] || { echo "stack serve $name did not start:" >&2; cat "$tmp/$name.err" >&2; exit 1; }
}

# chat_lua FILE: the wrk script of one non-streaming chat completion.
chat_lua() {
  cat >"$1" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"mock-gpt","messages":[{"role":"user","content":"What is a context window?"}]}'
LUA
}
