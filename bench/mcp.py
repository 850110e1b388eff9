#!/usr/bin/env python3
"""Issue 20 figures: `stack mcp` round trips over stdio, next to the goals and to the
shell commands an agent would run otherwise (`stack ps --json`, `stack logs -n 1000`).

A stack of two services (`web`: python3 -m http.server; `worker`: 1,200 log lines, then
idle) runs detached; one `stack mcp` process answers 100 `list_services` calls and 100
`service_logs` calls of 1,000 lines (raw JSON-RPC, newline-delimited, 2025-11-25
handshake). Goals: list_services p99 <= 5 ms, service_logs (1,000 lines) p99 <= 20 ms.

    bench/mcp.py [CALLS]   (default 100)
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STACK = os.path.join(ROOT, "target", "release", "stack")
CALLS = int(sys.argv[1]) if len(sys.argv) > 1 else 100

STACK_YAML = """
services:
  web:
    command: [python3, -m, http.server, '${PORT}', --bind, 127.0.0.1]
    port: auto
    health: {http: /}
  worker:
    command: sh -c 'i=0; while [ $i -lt 1200 ]; do i=$((i+1)); echo "worker line $i of a steady log"; done; exec sleep 600'
"""


def pct(values, p):
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


class Mcp:
    def __init__(self, project):
        self.p = subprocess.Popen([STACK, "-f", os.path.join(project, "stack.yaml"), "mcp"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self.next = 0
        self.call("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                 "clientInfo": {"name": "bench", "version": "1"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def send(self, msg):
        self.p.stdin.write(json.dumps(msg) + "\n")
        self.p.stdin.flush()

    def call(self, method, params):
        self.next += 1
        self.send({"jsonrpc": "2.0", "id": self.next, "method": method, "params": params})
        while True:
            msg = json.loads(self.p.stdout.readline())
            if msg.get("id") == self.next:
                if "error" in msg:
                    raise RuntimeError(msg["error"])
                return msg["result"]

    def tool(self, name, args):
        r = self.call("tools/call", {"name": name, "arguments": args})
        if r.get("isError"):
            raise RuntimeError(r)
        return r["structuredContent"]

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=10)


def timed(f, n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        out.append((time.perf_counter() - t) * 1000)
    return out


def main():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    project = tempfile.mkdtemp(prefix="bench-mcp-")
    with open(os.path.join(project, "stack.yaml"), "w") as f:
        f.write(STACK_YAML)
    run = lambda *a: subprocess.run([STACK, *a], cwd=project, check=True, capture_output=True, text=True)
    try:
        run("up", "-d")
        for _ in range(200):  # the worker's 1,200 lines
            logs = run("logs", "worker", "-n", "2000").stdout
            if "line 1200 " in logs:
                break
            time.sleep(0.05)
        mcp = Mcp(project)
        assert len(mcp.tool("service_logs", {"lines": 1000})["lines"]) == 1000
        mcp.tool("list_services", {})  # warm
        ls = timed(lambda: mcp.tool("list_services", {}), CALLS)
        lg = timed(lambda: mcp.tool("service_logs", {"lines": 1000}), CALLS)
        mcp.close()
        shell_n = max(10, CALLS // 5)
        ps = timed(lambda: run("ps", "--json"), shell_n)
        cli_logs = timed(lambda: run("logs", "-n", "1000"), shell_n)
    finally:
        subprocess.run([STACK, "down"], cwd=project, capture_output=True)
        shutil.rmtree(project, ignore_errors=True)

    print(f"stack mcp over stdio, {CALLS} calls each (ms); the shell commands {shell_n} runs each")
    print(f"{'':38} {'p50':>8} {'p99':>8}   goal")
    rows = [
        ("list_services (stack mcp)", ls, "p99 <= 5 ms"),
        ("`stack ps --json` (a new process)", ps, ""),
        ("service_logs, 1,000 lines (stack mcp)", lg, "p99 <= 20 ms"),
        ("`stack logs -n 1000` (a new process)", cli_logs, ""),
    ]
    for name, v, goal in rows:
        print(f"{name:38} {statistics.median(v):8.2f} {pct(v, 99):8.2f}   {goal}")
    ok = pct(ls, 99) <= 5 and pct(lg, 99) <= 20
    print("goals met" if ok else "goals NOT met")


if __name__ == "__main__":
    main()
