#!/usr/bin/env python3
"""Issue 19 figures: the dashboard and the supervisor that serves it.

1. The supervisor's RSS with 10,000 spans in its window and the dashboard open (goal
   <= 40 MB): the AI stack up (release build), 10,000 spans sent as OTLP/JSON in batches
   of 500, a headless Chromium on the dashboard; and again after the browser session of
   2., which sends 100,000 log lines through the dashboard's event stream.
2. From the same browser session (tests/python/dashboard_browser.py): first paint and the
   time for a new log line to appear with 100,000 lines loaded (goals <= 300 ms, <= 200 ms).

Usage: bench/dashboard.py   (builds target/release/stack; needs the SDK venv
       `.venv/current` (scripts/sdk-venv.sh current) and chromium + chromedriver
       (scripts/chromium.sh))
"""
import json, os, secrets, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STACK = os.path.join(ROOT, "target", "release", "stack")
PYTHON = os.path.join(ROOT, ".venv", "current", "bin", "python")

# Holds the dashboard open (traces, gateway, sessions loaded) until its stdin closes.
VIEWER = """
import sys
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
o = webdriver.ChromeOptions(); o.binary_location = "/usr/bin/chromium"
for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage"]: o.add_argument(a)
d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
try:
    d.get(sys.argv[1])
    WebDriverWait(d, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#traces tbody tr")) > 0)
    print("open", flush=True)
    sys.stdin.read()
finally:
    d.quit()
"""

STACK_YAML = """
services:
  context: {builtin: context, port: auto}
  model: {builtin: model, port: auto, config: {models: [mock-gpt]}}
  gateway:
    builtin: gateway
    port: auto
    depends_on: {context: healthy, model: healthy}
    config:
      keys: [dev-key]
      upstreams: {default: "${services.model.url}"}
      context_url: "${services.context.url}"
  echoer:
    command:
      - sh
      - -c
      - |
        echo "echoer up"
        while true; do
          if [ -f say ]; then echo "$(cat say)"; rm -f say; fi
          if [ -f flood ]; then n=$(cat flood); rm -f flood; seq 1 "$n" | sed 's/^/flood /'; fi
          sleep 0.02
        done
"""


def stack(cwd, *args):
    return subprocess.run([STACK, *args], cwd=cwd, capture_output=True, text=True, timeout=180)


def post(url, doc):
    req = urllib.request.Request(url, data=json.dumps(doc).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return r.status


def spans_batch(n):
    now = time.time_ns()
    spans = []
    for _ in range(n):
        spans.append({"traceId": secrets.token_hex(16), "spanId": secrets.token_hex(8),
                      "name": "chat mock-gpt", "kind": 2,
                      "startTimeUnixNano": str(now - 5_000_000), "endTimeUnixNano": str(now),
                      "attributes": [
                          {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                          {"key": "gen_ai.request.model", "value": {"stringValue": "mock-gpt"}},
                          {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}},
                          {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "30"}}]})
    return {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "load"}}]},
        "scopeSpans": [{"spans": spans}]}]}


def main():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    for need in [PYTHON, "/usr/bin/chromium", "/usr/bin/chromedriver"]:
        if not os.path.exists(need):
            sys.exit(f"{need} is missing: scripts/sdk-venv.sh current; scripts/chromium.sh")
    with tempfile.TemporaryDirectory(prefix="stack-bench-dash-") as d:
        open(os.path.join(d, "stack.yaml"), "w").write(STACK_YAML)
        up = stack(d, "up", "-d", "--wait")
        if up.returncode != 0:
            sys.exit(up.stderr)
        try:
            doc = json.loads(stack(d, "ps", "--json").stdout)
            otlp = f"http://127.0.0.1:{doc['telemetry_port']}"
            dashboard = doc["dashboard"]
            gateway = next(s for s in doc["services"] if s["name"] == "gateway")["ports"]["main"]["url"]
            for _ in range(20):
                post(otlp + "/v1/traces", spans_batch(500))
            # The dashboard open in a browser on those spans: the supervisor's RSS then.
            viewer = subprocess.Popen([PYTHON, "-c", VIEWER, dashboard], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True)
            assert viewer.stdout.readline().strip() == "open"
            with urllib.request.urlopen(dashboard + "api/stats") as r:
                open_stats = json.load(r)
            viewer.stdin.close()
            viewer.wait(timeout=60)
            shots = os.path.join(d, "shots")
            os.makedirs(shots)
            env = dict(os.environ, DASHBOARD_URL=dashboard, GATEWAY_URL=gateway, PROJECT_DIR=d,
                       SCREENSHOTS=shots, CHROMEDRIVER="/usr/bin/chromedriver",
                       CHROMIUM="/usr/bin/chromium")
            browser = subprocess.run([PYTHON, os.path.join(ROOT, "tests/python/dashboard_browser.py")],
                                     env=env, capture_output=True, text=True, timeout=300)
            if browser.returncode != 0:
                sys.exit(browser.stderr)
            timings = json.loads(browser.stdout.strip().splitlines()[-1])
            with urllib.request.urlopen(dashboard + "api/stats") as r:
                stats = json.load(r)
        finally:
            stack(d, "down")
    print(f"{'figure':<46} {'measured':>10} {'goal':>8}")
    print(f"{'supervisor RSS, ' + str(open_stats['spans_held']) + ' spans held, dashboard open':<46} "
          f"{open_stats['rss_bytes'] / 2**20:>8.1f}MB {'40 MB':>8}")
    print(f"{'  the same after 100,000 log lines went by':<46} {stats['rss_bytes'] / 2**20:>8.1f}MB {'':>8}")
    print(f"{'first contentful paint':<46} {timings['first_contentful_paint_ms']:>8.0f}ms {'300 ms':>8}")
    print(f"{'services listed (page start to table filled)':<46} {timings['services_listed_ms']:>8.0f}ms {'':>8}")
    print(f"{'new log line, page idle':<46} {timings['log_line_ms']:>8.0f}ms {'1 s':>8}")
    print(f"{'new log line, ' + format(timings['lines_loaded'], ',') + ' lines loaded':<46} "
          f"{timings['log_line_after_100k_ms']:>8.0f}ms {'200 ms':>8}")
    print(f"{'filter 100k lines by text':<46} {timings['filter_100k_ms']:>8.0f}ms {'':>8}")


if __name__ == "__main__":
    main()
