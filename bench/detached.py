#!/usr/bin/env python3
"""Issue 3 figures: the detached supervisor.

- `stack ps` and `stack down` wall times for the default three built-ins (context, model,
  gateway) brought up with `up -d`.
- The supervisor's idle RSS with those 3 services and with 100 (`sleep` processes).
- Restart latency: `kill -9` of a `restart: always` HTTP service until it is healthy again
  (polled through `stack ps --json`, and directly on its port).

Usage: bench/detached.py [--runs N]   (builds target/release/stack first)
"""
import json, os, re, shutil, signal, statistics, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STACK = os.path.join(ROOT, "target", "release", "stack")
RUNS = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 10
ENV = {**os.environ, "NO_COLOR": "1", "GATEWAY_PORT": "auto"}


def stack(dir, *args, check=True):
    return subprocess.run([STACK, *args], cwd=dir, env=ENV, capture_output=True, text=True, check=check)


def timed(dir, *args):
    t0 = time.perf_counter()
    stack(dir, *args)
    return time.perf_counter() - t0


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))


def ms(xs):
    return f"median {statistics.median(xs) * 1000:7.1f} ms  (min {min(xs) * 1000:.1f}, max {max(xs) * 1000:.1f})"


def main():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory() as d:
        shutil.copy(os.path.join(ROOT, "stack.yaml"), d)
        ups, pss, downs, idle3 = [], [], [], []
        for _ in range(RUNS):
            ups.append(timed(d, "up", "-d"))
            pss.append(min(timed(d, "ps") for _ in range(5)))
            doc = json.loads(stack(d, "ps", "--json").stdout)
            time.sleep(0.5)
            idle3.append(rss_kb(doc["supervisor_pid"]))
            downs.append(timed(d, "down"))
    print(f"default stack (context + model + gateway), {RUNS} runs")
    print(f"  up -d         {ms(ups)}")
    print(f"  ps            {ms(pss)}")
    print(f"  down          {ms(downs)}")
    print(f"  supervisor idle RSS with 3 services: {statistics.median(idle3) / 1024:.1f} MB")

    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "stack.yaml"), "w") as f:
            f.write("services:\n" + "".join(f"  s{i}:\n    command: sleep 600\n" for i in range(100)))
        t = timed(d, "up", "-d")
        doc = json.loads(stack(d, "ps", "--json").stdout)
        time.sleep(1)
        rss100 = rss_kb(doc["supervisor_pid"])
        td = timed(d, "down")
    print(f"100 services: up -d {t * 1000:.0f} ms, down {td * 1000:.0f} ms, supervisor idle RSS {rss100 / 1024:.1f} MB")

    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "stack.yaml"), "w") as f:
            f.write("""services:
  web:
    command: [python3, -m, http.server, "${PORT}", --bind, 127.0.0.1]
    port: auto
    restart: always
    health: {tcp: main, interval: 1s}
""")
        stack(d, "up", "-d")
        lat_ps, lat_port = [], []
        for _ in range(RUNS):
            doc = json.loads(stack(d, "ps", "--json").stdout)
            web = doc["services"][0]
            pid, port = web["pid"], web["ports"]["main"]["port"]
            # The python process is the shim's child: kill -9 what listens.
            child = int(open(f"/proc/{pid}/task/{pid}/children").read().split()[0])
            t0 = time.perf_counter()
            os.kill(child, signal.SIGKILL)
            up_at = None
            while True:
                if up_at is None:
                    try:
                        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=0.5).read()
                        up_at = time.perf_counter() - t0
                    except Exception:
                        pass
                doc = json.loads(stack(d, "ps", "--json").stdout)
                w = doc["services"][0]
                if w["pid"] not in (None, pid) and w["health"] == "healthy":
                    lat_ps.append(time.perf_counter() - t0)
                    lat_port.append(up_at or lat_ps[-1])
                    break
            time.sleep(11)  # past the stable-run window, so the back-off starts at 100 ms again
        stack(d, "down")
    print(f"restart after kill -9 (restart: always, first back-off 100 ms), {RUNS} runs")
    print(f"  answering on its port again  {ms(lat_port)}")
    print(f"  healthy again in `ps`        {ms(lat_ps)}")


if __name__ == "__main__":
    main()
