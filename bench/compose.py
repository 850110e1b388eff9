#!/usr/bin/env python3
"""Issue 7 figures: the containerised default stack, `stack` vs docker-compose.

Both run the same three built-ins (context, model, gateway) from the same image (the one
`stack` builds from itself), with the same commands, configuration files, bind mount,
user, init, and the same fixed ports published on 127.0.0.1:

- stack:   `stack up -d` (returns once its own health checks pass; the gateway waits for
           context and model to be healthy) and `stack down`.
- compose: the same stack as a compose file: a healthcheck per service
           (`stack __probe http://127.0.0.1:PORT/health` inside the container, every
           100 ms) and `depends_on: {context: service_healthy, model: service_healthy}`
           for the gateway; `docker-compose up -d`, then polling every service's /health
           from the host until all answer 200; `docker-compose down`.

Usage: bench/compose.py [--runs N]   (needs a Docker engine and docker-compose:
                                      apt-get install -y docker.io docker-compose)
"""
import json, os, shutil, socket, statistics, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STACK = os.path.join(ROOT, "target", "release", "stack")
RUNS = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 5
ENV = {**os.environ, "NO_COLOR": "1"}
SERVICES = ["context", "model", "gateway"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args, cwd):
    return subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True, check=True)


def timed(args, cwd):
    t0 = time.perf_counter()
    run(args, cwd)
    return time.perf_counter() - t0


def healthy(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def ms(xs):
    return f"median {statistics.median(xs) * 1000:7.0f} ms  (min {min(xs) * 1000:.0f}, max {max(xs) * 1000:.0f})"


def main():
    compose = shutil.which("docker-compose")
    if not compose:
        sys.exit("docker-compose is missing: apt-get install -y docker-compose")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    ports = {s: free_port() for s in SERVICES}
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "stack.yaml"), "w") as f:
            f.write(
                f"""name: benchstack
runtime: container
services:
  context: {{builtin: context, port: {ports['context']}}}
  model: {{builtin: model, port: {ports['model']}}}
  gateway:
    builtin: gateway
    port: {ports['gateway']}
    depends_on: {{context: healthy, model: healthy}}
    config:
      keys: [dev-key]
      upstreams: {{default: "${{services.model.url}}"}}
      context_url: "${{services.context.url}}"
"""
            )
        # Warm-up: builds the image once (not timed) and leaves the configuration files.
        run([STACK, "up", "-d"], d)
        doc = json.loads(run([STACK, "ps", "--json"], d).stdout)
        cid = doc["services"][0]["container_id"]
        image = run(["docker", "inspect", "--format", "{{.Config.Image}}", cid], d).stdout.strip()
        run([STACK, "down"], d)
        run_dir = os.path.join(d, ".stack", "run")
        saved = os.path.join(d, "compose-config")
        shutil.copytree(run_dir, saved)
        user = f"{os.getuid()}:{os.getgid()}"
        with open(os.path.join(d, "docker-compose.yml"), "w") as f:
            f.write("version: '2.4'\nservices:\n")
            for s in SERVICES:
                p = ports[s]
                f.write(
                    f"""  {s}:
    image: {image}
    command: [serve, {s}, --host, 0.0.0.0, --port, "{p}", --config, {saved}/{s}.yaml]
    environment: {{PORT: "{p}"}}
    ports: ["127.0.0.1:{p}:{p}"]
    volumes: ["{d}:{d}"]
    working_dir: {d}
    user: "{user}"
    init: true
    healthcheck:
      test: [CMD, /stack, __probe, "http://127.0.0.1:{p}/health"]
      interval: 100ms
      timeout: 2s
      retries: 30
"""
                )
                if s == "gateway":
                    f.write(
                        "    depends_on:\n"
                        "      context: {condition: service_healthy}\n"
                        "      model: {condition: service_healthy}\n"
                    )
        stack_up, stack_down, compose_up, compose_down = [], [], [], []
        for _ in range(RUNS):
            stack_up.append(timed([STACK, "up", "-d"], d))
            assert all(healthy(p) for p in ports.values())
            stack_down.append(timed([STACK, "down"], d))

            t0 = time.perf_counter()
            run([compose, "-p", "benchcompose", "up", "-d"], d)
            while not all(healthy(p) for p in ports.values()):
                time.sleep(0.005)
            compose_up.append(time.perf_counter() - t0)
            compose_down.append(timed([compose, "-p", "benchcompose", "down"], d))
    version = run([compose, "version", "--short"], ROOT).stdout.strip()
    print(f"containerised default stack (context + model + gateway), image {image}, {RUNS} runs")
    print(f"  stack up -d (all healthy)        {ms(stack_up)}")
    print(f"  docker-compose {version} up -d + poll {ms(compose_up)}")
    print(f"  ratio                            {statistics.median(stack_up) / statistics.median(compose_up):.2f}x")
    print(f"  stack down                       {ms(stack_down)}")
    print(f"  docker-compose down              {ms(compose_down)}")
    print(f"  ratio                            {statistics.median(stack_down) / statistics.median(compose_down):.2f}x")


if __name__ == "__main__":
    main()
