#!/usr/bin/env python3
"""Issue 17 figures: the inner loop, next to the references the issue names.

1. Edit to new content: the time from a file write to the service answering with the
   new content, for a small Python HTTP server that reads its page at start (so only a
   restart shows the edit). `stack up -d` with `watch: restart` against the shell floor
   in the same run: `inotifywait` + kill + start + the same poll (Debian's inotify-tools;
   installed with apt-get when missing). Goal: stack <= floor + debounce (100 ms) + 10 ms.
2. Reconcile: one changed service in a 20-service stack (19 `sleep`s and the server):
   the wall time of `stack up` against the server's own start-to-healthy time (started
   by hand, polled the same way). Goal: <= 1.1x, the other 19 pids unchanged.
3. Idle CPU of a supervisor whose service watches a tree of 50,000 files: CPU time over
   10 s of idling. Goal: about 0.

    bench/watch.py [TRIALS]   (default 10; needs `cargo build --release`)
"""
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STACK = os.path.join(ROOT, "target", "release", "stack")
TRIALS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
DEBOUNCE_MS = 100

# Reads its page once, at start: only a restart serves an edit.
SERVER = r"""
import http.server, os, sys
page = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "page.txt"), "rb").read()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(port):
    """The page, or None when nothing answers (one connection, no client library)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
            c.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            data = b""
            while True:
                chunk = c.recv(65536)
                if not chunk:
                    break
                data += chunk
        return data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else None
    except OSError:
        return None


def until_page(port, want, deadline=20.0):
    end = time.perf_counter() + deadline
    while time.perf_counter() < end:
        if get(port) == want:
            return time.perf_counter()
        time.sleep(0.001)
    raise RuntimeError(f"never served {want!r}")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def stack(project, *args, check=True):
    r = subprocess.run([STACK, "-f", os.path.join(project, "stack.yaml"), *args],
                       capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
    if check and r.returncode != 0:
        raise RuntimeError(f"stack {' '.join(args)}: {r.stderr}")
    return r


def ps(project):
    return {s["name"]: s for s in json.loads(stack(project, "ps", "--json").stdout)["services"]}


def pct(values, p):
    values = sorted(values)
    return values[max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))]


def ms(v):
    return f"{v * 1000:7.1f} ms"


def edit_to_content(tmp):
    app = os.path.join(tmp, "edit", "app")
    os.makedirs(app)
    write(os.path.join(app, "server.py"), SERVER)
    write(os.path.join(app, "page.txt"), "v0")
    project = os.path.dirname(app)
    write(os.path.join(project, "stack.yaml"), f"""
services:
  app:
    command: [python3, app/server.py, "${{PORT}}"]
    port: auto
    health: {{http: /}}
    watch:
      - path: ./app/page.txt
""")
    stack(project, "up", "-d")
    port = ps(project)["app"]["ports"]["main"]["port"]
    until_page(port, b"v0")
    ours = []
    try:
        for i in range(1, TRIALS + 1):
            time.sleep(0.3)
            t = time.perf_counter()
            write(os.path.join(app, "page.txt"), f"s{i}")
            ours.append(until_page(port, f"s{i}".encode()) - t)
    finally:
        stack(project, "down")

    # The floor: inotifywait, kill, start, poll; nothing else.
    port = free_port()
    floor_dir = os.path.join(tmp, "floor")
    os.makedirs(floor_dir)
    write(os.path.join(floor_dir, "server.py"), SERVER)
    write(os.path.join(floor_dir, "page.txt"), "f0")
    script = f"""
cd {floor_dir}
python3 server.py {port} & pid=$!
while inotifywait -qq -e close_write,moved_to page.txt; do
  kill $pid; wait $pid 2>/dev/null
  python3 server.py {port} & pid=$!
done
"""
    floor_proc = subprocess.Popen(["bash", "-c", script], start_new_session=True)
    floor = []
    try:
        until_page(port, b"f0")
        for i in range(1, TRIALS + 1):
            time.sleep(0.3)
            t = time.perf_counter()
            write(os.path.join(floor_dir, "page.txt"), f"f{i}")
            floor.append(until_page(port, f"f{i}".encode()) - t)
    finally:
        os.killpg(floor_proc.pid, signal.SIGTERM)
        floor_proc.wait()
    return ours, floor


def reconcile(tmp):
    project = os.path.join(tmp, "twenty")
    os.makedirs(project)
    write(os.path.join(project, "server.py"), SERVER)
    write(os.path.join(project, "page.txt"), "r")

    def yaml(level):
        lines = ["services:"]
        for i in range(19):
            lines += [f"  s{i}:", "    command: [sleep, '600']"]
        lines += ["  app:", "    command: [python3, server.py, '${PORT}']", "    port: auto",
                  "    health: {http: /, interval: 1s}", f"    env: {{LEVEL: '{level}'}}"]
        return "\n".join(lines) + "\n"

    write(os.path.join(project, "stack.yaml"), yaml(0))
    stack(project, "up", "-d", "--no-watch")
    walls, unchanged = [], True
    try:
        before = ps(project)
        for i in range(1, TRIALS + 1):
            write(os.path.join(project, "stack.yaml"), yaml(i))
            t = time.perf_counter()
            stack(project, "up")
            walls.append(time.perf_counter() - t)
        after = ps(project)
        unchanged = all(after[f"s{i}"]["pid"] == before[f"s{i}"]["pid"] for i in range(19))
    finally:
        stack(project, "down")
    # The server's own start-to-healthy time, polled the same way.
    own = []
    for _ in range(TRIALS):
        port = free_port()
        t = time.perf_counter()
        p = subprocess.Popen(["python3", os.path.join(project, "server.py"), str(port)])
        until_page(port, b"r")
        own.append(time.perf_counter() - t)
        p.terminate()
        p.wait()
    return walls, own, unchanged


def idle_cpu(tmp):
    project = os.path.join(tmp, "tree")
    src = os.path.join(project, "src")
    for d in range(500):
        folder = os.path.join(src, f"d{d:03}")
        os.makedirs(folder)
        for f in range(100):
            write(os.path.join(folder, f"f{f:03}.txt"), "x")
    write(os.path.join(project, "stack.yaml"), """
services:
  app:
    command: [sleep, '600']
    watch:
      - path: ./src
""")
    t = time.perf_counter()
    stack(project, "up", "-d")
    started = time.perf_counter() - t
    try:
        sup = json.loads(stack(project, "ps", "--json").stdout)["supervisor_pid"]
        tick = os.sysconf("SC_CLK_TCK")

        def cpu():
            fields = open(f"/proc/{sup}/stat").read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / tick

        time.sleep(2)
        c0, t0 = cpu(), time.perf_counter()
        time.sleep(10)
        used, span = cpu() - c0, time.perf_counter() - t0
        rss = next(int(l.split()[1]) for l in open(f"/proc/{sup}/status") if l.startswith("VmRSS"))
    finally:
        stack(project, "down")
    return started, used, span, rss


def main():
    if not os.path.exists(STACK):
        sys.exit("build first: cargo build --release")
    if not shutil.which("inotifywait"):
        subprocess.run(["apt-get", "install", "-y", "inotify-tools"], check=True,
                       stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp:
        ours, floor = edit_to_content(tmp)
        walls, own, unchanged = reconcile(tmp)
        started, used, span, rss = idle_cpu(tmp)
    f50, o50 = statistics.median(floor), statistics.median(ours)
    print(f"1. file write -> new content served ({TRIALS} edits each)")
    print(f"   shell floor (inotifywait + kill + start + poll)  p50 {ms(f50)}  p90 {ms(pct(floor, 90))}")
    print(f"   stack up -d, watch: restart                      p50 {ms(o50)}  p90 {ms(pct(ours, 90))}")
    goal = f50 + (DEBOUNCE_MS + 10) / 1000
    print(f"   goal: <= floor + debounce + 10 ms = {ms(goal)} (p50)  -> {'met' if o50 <= goal else 'NOT met'}")
    w50, s50 = statistics.median(walls), statistics.median(own)
    print(f"2. reconcile one changed service of 20 ({TRIALS} edits)")
    print(f"   the service's own start-to-healthy                p50 {ms(s50)}")
    print(f"   `stack up` wall time                              p50 {ms(w50)}  p90 {ms(pct(walls, 90))}")
    print(f"   ratio {w50 / s50:.2f}x (goal <= 1.1x); the other 19 pids unchanged: {unchanged}")
    print("3. supervisor watching 50,000 files (500 folders)")
    print(f"   `up -d` with the watch set up: {ms(started)}; idle CPU over {span:.1f} s: "
          f"{used * 1000:.0f} ms ({100 * used / span:.2f} %); RSS {rss / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
