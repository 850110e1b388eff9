#!/usr/bin/env python3
"""Per-request latency of `stack serve context` seen by one keep-alive client (what an
application or the gateway sees), as p50/p99: durable REST store in both durability
modes, and retrieve over a 10,000-entry session with a 4,000-token budget; on SQLite and
on PostgreSQL (loopback, `scripts/postgres.sh`) in one run, next to the goals for
PostgreSQL (store p99 <= 3 ms, retrieve p99 <= 5 ms).

Usage: bench/context_latency.py [N] [--db sqlite|postgres|both]   (N per figure, default 5000)
"""
import http.client, json, os, random, statistics, subprocess, sys, tempfile, time, urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STACK = os.path.join(ROOT, "target", "release", "stack")
ARGS = [a for a in sys.argv[1:] if not a.startswith("--db")]
N = int(ARGS[0]) if ARGS and ARGS[0].isdigit() else 5000
DB = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--db=")), None)
if DB is None and "--db" in sys.argv:
    DB = sys.argv[sys.argv.index("--db") + 1]
DB = DB or "both"
PG_BASE = os.environ.get("STACK_TEST_POSTGRES", "postgres://postgres:stack@127.0.0.1:5432/postgres")


def postgres_db():
    """A new database on the loopback PostgreSQL server; its URL."""
    subprocess.run(["bash", os.path.join(ROOT, "scripts", "postgres.sh")], check=True,
                   stdout=subprocess.DEVNULL)
    name = f"stack_bench_{os.getpid()}_{int(time.time() * 1000)}"
    subprocess.run(["psql", PG_BASE, "-qtAc", f"CREATE DATABASE {name}"], check=True)
    return PG_BASE.rsplit("/", 1)[0] + "/" + name


def serve(tmp, durability, db):
    cfg = os.path.join(tmp, f"{durability}.yaml")
    with open(cfg, "w") as f:
        f.write(f"db: {db}\ndurability: {durability}\n")
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
    stores = [("sqlite", d) for d in ("normal", "full")] if DB in ("sqlite", "both") else []
    if DB in ("postgres", "both"):
        stores.append(("postgres", "normal"))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, durability in stores:
            db = postgres_db() if kind == "postgres" else f"{tmp}/{durability}.db"
            p, conn = serve(tmp, durability, db)
            label = f"{kind}" + (f" ({durability})" if kind == "sqlite" else "")
            body = json.dumps({"role": "user", "content": "We deploy billing to the eu-west cluster on Tuesdays."})
            lat = [timed(conn, "POST", "/v1/sessions/s/entries", body) for _ in range(N)]
            results[(label, "store")] = lat
            print(f"{label:18} durable store                      {pct(lat)}  ({N} sequential writes)")
            if durability == "normal":
                for i in range(10000):
                    text = f"Turn {i}: " + " ".join(rng.choice(words) for _ in range(rng.randint(8, 40))) + "."
                    timed(conn, "POST", "/v1/sessions/big/entries",
                          json.dumps({"role": "user" if i % 2 == 0 else "assistant", "content": text}))
                q = "/v1/sessions/big/context?max_tokens=4000&query=billing%20rollback%20owner"
                lat = [timed(conn, "GET", q) for _ in range(max(500, N // 5))]
                results[(label, "retrieve")] = lat
                print(f"{label:18} retrieve 10,000 entries, query   {pct(lat)}")
                lat = [timed(conn, "GET", "/v1/sessions/big/context?max_tokens=4000") for _ in range(max(500, N // 5))]
                print(f"{label:18} retrieve 10,000 entries, no query {pct(lat)}")
            p.terminate()
            p.wait()
    if ("postgres", "store") in results:
        p99 = lambda xs: sorted(xs)[int(len(xs) * 0.99)] * 1000
        store, retrieve = p99(results[("postgres", "store")]), p99(results[("postgres", "retrieve")])
        base = "sqlite (normal)"
        print()
        print(f"PostgreSQL vs SQLite (p99): store {store:.3f} ms vs {p99(results[(base, 'store')]):.3f} ms "
              f"(goal <= 3 ms: {'met' if store <= 3 else 'NOT met'}); retrieve {retrieve:.3f} ms vs "
              f"{p99(results[(base, 'retrieve')]):.3f} ms (goal <= 5 ms: {'met' if retrieve <= 5 else 'NOT met'})"
              if (base, "store") in results else
              f"PostgreSQL p99: store {store:.3f} ms (goal <= 3 ms), retrieve {retrieve:.3f} ms (goal <= 5 ms)")


if __name__ == "__main__":
    main()
