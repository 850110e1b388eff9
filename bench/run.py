#!/usr/bin/env python3
"""Issue 8 figures: `stack run -- true` on the `ai-stack` template (up + wait healthy +
down), alone and eight copies in parallel (`-p copy-N`).

Usage: bench/run.py [--runs N]   (builds target/release/stack first)
"""
import os, statistics, subprocess, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STACK = os.path.join(ROOT, "target", "release", "stack")
RUNS = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 10
ENV = {**os.environ, "NO_COLOR": "1"}


def run(dir, project=None):
    args = [STACK] + (["-p", project] if project else []) + ["-q", "run", "--", "true"]
    t0 = time.perf_counter()
    r = subprocess.run(args, cwd=dir, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(args)} exited {r.returncode}:\n{r.stderr}")
    return time.perf_counter() - t0


def ms(xs):
    return f"median {statistics.median(xs) * 1000:7.1f} ms  (min {min(xs) * 1000:.1f}, max {max(xs) * 1000:.1f})"


def main():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        d = os.path.join(tmp, "app")
        subprocess.run([STACK, "-q", "new", "ai-stack", d], check=True)
        run(d)  # warm up
        alone = [run(d) for _ in range(RUNS)]
        parallel = []
        for _ in range(max(1, RUNS // 2)):
            t0 = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda i: run(d, f"copy-{i}"), range(8)))
            parallel.append(time.perf_counter() - t0)
    print("stack run -- true on the ai-stack template (context + model + gateway)")
    print(f"  one copy            {ms(alone)}")
    print(f"  eight in parallel   {ms(parallel)}  (wall time until all eight are done)")


if __name__ == "__main__":
    main()
