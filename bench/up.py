#!/usr/bin/env python3
"""Issue 2 figures: `stack up` against the physical floor.

1. Time from `stack up` to all healthy for three dependent `python3 -m http.server`
   services (a <- b <- c, each waiting for the previous one to listen), next to a plain
   shell script that starts the same three and polls each before starting the next.
2. The supervisor's peak RSS (VmHWM) during that run.
3. Wall time for 1,000,000 log lines to reach the log file, with the count, next to the
   same program writing straight to a file.

Usage: bench/up.py [--runs N]   (builds target/release/stack first)
"""
import os, re, signal, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STACK = os.path.join(ROOT, "target", "release", "stack")
RUNS = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 10

CHAIN = """
services:
  a:
    command: [python3, -m, http.server, "${PORT}", --bind, 127.0.0.1]
    port: auto
    health: {tcp: main}
  b:
    command: [python3, -m, http.server, "${PORT}", --bind, 127.0.0.1]
    port: auto
    depends_on: {a: healthy}
    health: {tcp: main}
  c:
    command: [python3, -m, http.server, "${PORT}", --bind, 127.0.0.1]
    port: auto
    depends_on: {b: healthy}
    health: {tcp: main}
"""

FLOOR = r"""
set -e
poll() { until (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null; do sleep 0.001; done; }
python3 -m http.server $1 --bind 127.0.0.1 >/dev/null 2>&1 & A=$!; poll $1
python3 -m http.server $2 --bind 127.0.0.1 >/dev/null 2>&1 & B=$!; poll $2
python3 -m http.server $3 --bind 127.0.0.1 >/dev/null 2>&1 & C=$!; poll $3
echo ready
kill $A $B $C; wait 2>/dev/null || true
"""

LINES = """
services:
  burst:
    command: [python3, -c, "import sys\\nw=sys.stdout.write\\nfor i in range(1000000): w(f'line {i}\\\\n')"]
"""


def free_ports(n):
    import socket
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def vm_hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        m = re.search(r"VmHWM:\s+(\d+) kB", f.read())
    return int(m.group(1)) if m else 0


def stack_up_once(dir):
    t0 = time.perf_counter()
    p = subprocess.Popen([STACK, "up"], cwd=dir, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, env={**os.environ, "NO_COLOR": "1"})
    for line in p.stdout:
        if line.startswith("SERVICE"):
            break
    elapsed = time.perf_counter() - t0
    rss = vm_hwm_kb(p.pid)
    p.send_signal(signal.SIGINT)
    p.stdout.read()
    p.wait(timeout=30)
    return elapsed, rss


def floor_once():
    ports = free_ports(3)
    t0 = time.perf_counter()
    p = subprocess.Popen(["bash", "-c", FLOOR, "floor", *map(str, ports)],
                         stdout=subprocess.PIPE, text=True)
    for line in p.stdout:
        if line.strip() == "ready":
            break
    elapsed = time.perf_counter() - t0
    p.wait(timeout=30)
    return elapsed


def ms(xs):
    return f"median {statistics.median(xs) * 1000:7.1f} ms  (min {min(xs) * 1000:.1f}, max {max(xs) * 1000:.1f})"


def main():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "stack.yaml"), "w") as f:
            f.write(CHAIN)
        stack_up_once(d)  # warm the page cache
        ups, rsss = zip(*(stack_up_once(d) for _ in range(RUNS)))
        floors = [floor_once() for _ in range(RUNS)]
    print(f"three dependent http.server services, up to all healthy ({RUNS} runs)")
    print(f"  stack up      {ms(ups)}")
    print(f"  shell floor   {ms(floors)}")
    print(f"  overhead      {(statistics.median(ups) - statistics.median(floors)) * 1000:7.1f} ms (median - median)")
    print(f"supervisor peak RSS (VmHWM): {max(rsss) / 1024:.1f} MB (median {statistics.median(rsss) / 1024:.1f} MB)")

    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "stack.yaml"), "w") as f:
            f.write(LINES)
        t0 = time.perf_counter()
        subprocess.run([STACK, "up"], cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        took = time.perf_counter() - t0
        with open(os.path.join(d, ".stack/logs/burst.log"), "rb") as f:
            count = sum(1 for line in f if b" out line " in line)
        t0 = time.perf_counter()
        with open(os.path.join(d, "direct.txt"), "w") as out:
            subprocess.run(["python3", "-c", "import sys\nw=sys.stdout.write\nfor i in range(1000000): w(f'line {i}\\n')"],
                           stdout=out, check=True)
        direct = time.perf_counter() - t0
    print(f"1,000,000 log lines: {took * 1000:.0f} ms through stack up (to the file and the screen, "
          f"screen to /dev/null), {count:,} lines in the log file, {1_000_000 - count} lost; "
          f"the program alone writing to a file: {direct * 1000:.0f} ms")


if __name__ == "__main__":
    main()
