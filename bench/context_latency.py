#!/usr/bin/env python3
"""Per-request latency of `stack serve context` seen by one keep-alive client (what an
application or the gateway sees), as p50/p99: durable REST store in both durability
modes, and retrieve over a 10,000-entry session with a 4,000-token budget.

Usage: bench/context_latency.py [N]     (N requests per figure, default 5000)
"""
import http.client, json, os, random, statistics, subprocess, sys, tempfile, time, urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STACK = os.path.join(ROOT, "target", "release", "stack")
N = int(sys.argv[1]) if len(sys.argv) > 1 else 5000


def serve(tmp, durability):
    cfg = os.path.join(tmp, f"{durability}.yaml")
    with open(cfg, "w") as f:
        f.write(f"db: {tmp}/{durability}.db\ndurability: {durability}\n")
    p = subprocess.Popen([STACK, "serve", "context", "--port", "0", "--config", cfg],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    url = urllib.parse.urlparse(line.split("listening on ")[1].strip())
    return p, http.client.HTTPConnection(url.hostname, url.port)


def timed(conn, method, path, body=None):
    t = time.perf_counter()
    conn.request(method, path, body, {"Content-Type": "application/json"})
    r = conn.getresponse()
    r.read()
    assert r.status in (200, 201), r.status
    return time.perf_counter() - t


def pct(xs):
    xs = sorted(xs)
    return f"p50 {xs[len(xs) // 2] * 1000:.3f} ms  p99 {xs[int(len(xs) * 0.99)] * 1000:.3f} ms  max {xs[-1] * 1000:.1f} ms"


def main():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    words = ("deploy billing cluster token budget gateway context memory session rust python "
             "incident database latency cache retry queue schema migration tuesday owner "
             "rotation alert dashboard metric trace span pipeline release rollback").split()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        for durability in ("normal", "full"):
            p, conn = serve(tmp, durability)
            body = json.dumps({"role": "user", "content": "We deploy billing to the eu-west cluster on Tuesdays."})
            lat = [timed(conn, "POST", "/v1/sessions/s/entries", body) for _ in range(N)]
            print(f"durable store, durability: {durability:6}  {pct(lat)}  ({N} sequential writes)")
            if durability == "normal":
                for i in range(10000):
                    text = f"Turn {i}: " + " ".join(rng.choice(words) for _ in range(rng.randint(8, 40))) + "."
                    timed(conn, "POST", "/v1/sessions/big/entries",
                          json.dumps({"role": "user" if i % 2 == 0 else "assistant", "content": text}))
                q = "/v1/sessions/big/context?max_tokens=4000&query=billing%20rollback%20owner"
                lat = [timed(conn, "GET", q) for _ in range(max(500, N // 5))]
                print(f"retrieve, 10,000 entries, 4,000-token budget, query  {pct(lat)}")
                lat = [timed(conn, "GET", "/v1/sessions/big/context?max_tokens=4000") for _ in range(max(500, N // 5))]
                print(f"retrieve, 10,000 entries, 4,000-token budget, no query  {pct(lat)}")
            p.terminate()
            p.wait()


if __name__ == "__main__":
    main()
