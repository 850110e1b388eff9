#!/usr/bin/env python3
"""`stack export` of a 100-service stack (97 images, each with a port, a health check, env
referring to two others and a dependency, plus the three built-ins), to compose and to
Kubernetes, wall time as a new process (median of N runs), next to the goal (<= 100 ms)
and to `stack validate` of the same file (loading and checking alone: the floor).

Usage: bench/export.py [N]   (runs per figure, default 20)
"""
import os, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STACK = os.path.join(ROOT, "target", "release", "stack")
N = int(sys.argv[1]) if len(sys.argv) > 1 else 20


def stack_file(n):
    lines = ["runtime: container", "services:",
             "  context: {builtin: context, port: auto}",
             "  model: {builtin: model, port: auto}",
             "  gateway:",
             "    builtin: gateway",
             "    port: 8000",
             "    depends_on: {context: healthy, model: healthy}",
             '    config: {keys: ["${GATEWAY_KEY:-dev-key}"], upstreams: {default: "${services.model.url}"}, context_url: "${services.context.url}"}']
    for i in range(n - 3):
        dep = f"svc{i - 1}" if i > 0 else "gateway"
        lines += [f"  svc{i}:",
                  f"    image: registry.example/team/svc{i}:1.0",
                  "    port: {host: auto, container: 8080}",
                  "    health: {http: /health}",
                  f"    env: {{GATEWAY_URL: \"${{services.gateway.url}}\", PEER: \"${{services.{dep}.url}}\", API_KEY: \"${{API_KEY:-k}}\"}}",
                  f"    depends_on: {{{dep}: started}}"]
    return "\n".join(lines) + "\n"


def timed(args, cwd):
    t = time.perf_counter()
    subprocess.run([STACK, *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - t) * 1000


def main():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "stack.yaml"), "w") as f:
            f.write(stack_file(100))
        rows = [("stack validate (the floor)", ["validate"]),
                ("stack export compose", ["export", "compose", "--no-build"]),
                ("stack export kubernetes", ["export", "kubernetes", "--no-build"])]
        for label, args in rows:
            timed(args, tmp)  # warm
            xs = [timed(args, tmp) for _ in range(N)]
            goal = "" if "validate" in label else f"  (goal <= 100 ms: {'met' if statistics.median(xs) <= 100 else 'NOT met'})"
            print(f"{label:28} median {statistics.median(xs):6.1f} ms  max {max(xs):6.1f} ms{goal}")
        print(f"100 services; {len(os.listdir(os.path.join(tmp, 'k8s')))} Kubernetes files, "
              f"{os.path.getsize(os.path.join(tmp, 'docker-compose.yml')) // 1024} KiB of compose")


if __name__ == "__main__":
    main()
