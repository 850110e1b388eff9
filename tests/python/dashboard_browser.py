"""Drives the dashboard in headless Chromium (Selenium + chromedriver) as a user would:
services listed, a restart, a new log line, a model request's trace, a session's
prepended context. Writes screenshots to SCREENSHOTS and prints the timings as JSON.

Env: DASHBOARD_URL, GATEWAY_URL, PROJECT_DIR, SCREENSHOTS, CHROMEDRIVER, CHROMIUM.
"""
import json
import os
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

url = os.environ["DASHBOARD_URL"]
gateway = os.environ["GATEWAY_URL"]
project = os.environ["PROJECT_DIR"]
shots = os.environ["SCREENSHOTS"]
timings = {}

opts = webdriver.ChromeOptions()
opts.binary_location = os.environ["CHROMIUM"]
for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1800"]:
    opts.add_argument(a)
driver = webdriver.Chrome(service=Service(os.environ["CHROMEDRIVER"]), options=opts)
# The page redraws its tables as events arrive: an element found a moment ago may be gone.
wait = lambda t=10: WebDriverWait(driver, t, poll_frequency=0.01,
                                  ignored_exceptions=(StaleElementReferenceException,))


def click(css):
    """Clicks what `css` finds, finding it again if the page redrew it meanwhile."""
    def go(d):
        d.find_element(By.CSS_SELECTOR, css).click()
        return True
    wait().until(go)


def shot(name):
    driver.save_screenshot(os.path.join(shots, name + ".png"))


def chat(session, text):
    req = urllib.request.Request(
        gateway + "/v1/chat/completions",
        data=json.dumps({"model": "mock-gpt", "messages": [{"role": "user", "content": text}]}).encode(),
        headers={"content-type": "application/json", "authorization": "Bearer dev-key", "x-session-id": session})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def trigger(name, content):
    tmp = os.path.join(project, name + ".tmp")
    with open(tmp, "w") as f:
        f.write(content)
    os.rename(tmp, os.path.join(project, name))


try:
    # First paint, and the services listed.
    driver.get(url)
    wait().until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#services tbody tr")) >= 4)
    paint = driver.execute_script(
        "const p = performance.getEntriesByName('first-contentful-paint')[0]; return p ? p.startTime : null")
    listed = driver.execute_script("return performance.now()")
    timings["first_contentful_paint_ms"] = paint
    timings["services_listed_ms"] = listed
    names = [r.get_attribute("data-service") for r in driver.find_elements(By.CSS_SELECTOR, "#services tbody tr")]
    assert {"context", "model", "gateway", "echoer"} <= set(names), names
    # State is written out, not only coloured.
    state = driver.find_element(By.CSS_SELECTOR, '#services tr[data-service="gateway"] td[data-state]').text
    assert "running" in state, state
    shot("01-services")

    # A restart from the page: the service's pid changes.
    # The table is redrawn as states change: read it fresh each time.
    cell = lambda what: driver.execute_script(
        "const c = document.querySelector(arguments[0]); return c ? c.textContent : ''",
        f'#services tr[data-service="echoer"] td{what}')
    pid_cell = lambda: cell(".pid")
    before = pid_cell()
    click('button[data-act="restart"][data-name="echoer"]')
    wait(20).until(lambda d: pid_cell() not in (before, "–", "") and "running" in cell("[data-state]"))
    timings["restart_pid"] = [before, pid_cell()]
    shot("02-restarted")

    # A line a service prints appears within a second.
    def line_latency(marker):
        trigger("say", marker)
        start = time.monotonic()
        wait(10).until(lambda d: d.execute_script(
            "return [...document.querySelectorAll('#logspace .logrow')].some(r => r.textContent.includes(arguments[0]))", marker))
        return (time.monotonic() - start) * 1000
    timings["log_line_ms"] = line_latency("marker-one")
    assert timings["log_line_ms"] < 1000, timings

    # 100,000 lines loaded, then a new line: still quick, and the page still answers.
    trigger("flood", "100000")
    wait(60).until(lambda d: d.execute_script(
        "return lines.filter(l => l[1] === 'echoer' && l[4].startsWith('flood ')).length") >= 100000)
    timings["lines_loaded"] = driver.execute_script("return lines.length")
    timings["log_line_after_100k_ms"] = line_latency("marker-two")
    start = time.monotonic()
    driver.find_element(By.ID, "ltext").send_keys("flood 99999")
    wait().until(lambda d: d.execute_script("return shown.length") == 1)
    timings["filter_100k_ms"] = (time.monotonic() - start) * 1000
    driver.find_element(By.ID, "ltext").clear()
    driver.execute_script("refilter()")
    shot("03-logs-100k")

    # A model request through the gateway: one trace across gateway, context and model,
    # with its tokens; and the session's second turn shows what was prepended.
    chat("dash-session", "remember the lighthouse")
    answer = chat("dash-session", "what did I ask?")
    usage = answer["usage"]
    trace = wait(20).until(lambda d: next((r.get_attribute("data-trace") for r in d.find_elements(By.CSS_SELECTOR, "#traces tbody tr")
                                           if "context" in r.text and "model" in r.text and "gateway" in r.text), None))
    click(f'#traces tr[data-trace="{trace}"]')
    wait().until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#waterfall tr[data-span]")) >= 4)
    waterfall = driver.find_element(By.ID, "waterfall").text
    for svc in ["gateway", "context", "model"]:
        assert svc in waterfall, waterfall
    assert "gen_ai.usage.input_tokens" in waterfall and "gen_ai.usage.output_tokens" in waterfall, waterfall
    assert "chat mock-gpt" in waterfall, waterfall
    shot("04-trace")

    Select(wait().until(lambda d: d.find_element(By.ID, "session"))).select_by_visible_text("dash-session")
    wait(10).until(lambda d: "remember the lighthouse" in " ".join(
        e.text for e in d.find_elements(By.CSS_SELECTOR, "#sessiondetail .prepended")))
    shot("05-session")
    timings["usage"] = usage
    print(json.dumps(timings))
finally:
    driver.quit()
