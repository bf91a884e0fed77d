"""`trail web`: first paint of a big run's page, state change to the page's DOM, and what
open pages cost the run.

    python benchmarks/bench_web.py [--steps 1000] [--changes 50] [--pages 20]

Needs Debian's chromium and chromium-driver (scripts/setup installs them) and selenium.
First paint: from asking for the run's page to its table holding every step's row (or, above
200 steps, its groups) and its diagram drawn. State change: from sending a ``pause`` call
(wall clock) to the table row's ``data-state`` changing, or (a grouped page, filtered to
``state=to*``) the row appearing (wall clock in the page, seen by a MutationObserver). Cost: a
chain of thread-executor steps run with no web process, then with one followed by
``--pages`` open event streams; steps per second each way (median of 3).
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from trail import StateChanged, Step, TrailClient, TrailServer  # noqa: E402


def noop(trail_env: object, context: object) -> None:
    return None


def chain(count: int) -> list[Step]:
    steps = [Step(noop, name=f"s{i}") for i in range(count)]
    for parent, child in zip(steps, steps[1:], strict=False):
        parent >> child
    return steps


def serve(runtime: Path, count: int, name: str) -> tuple[TrailServer, TrailClient]:
    steps = chain(count)
    server = TrailServer([(a, b) for a, b in zip(steps, steps[1:], strict=False)],
                         socket_file=str(runtime / "trail" / f"{name}.sock"),
                         executor="thread", name=name)
    server.serve(threaded=True)
    return server, TrailClient(server.socket_file, timeout=30)


def stop(server: TrailServer, client: TrailClient) -> None:
    client.shutdown(dry_run=False)
    server.join(30)


class Web:
    def __init__(self, runtime: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_RUNTIME_DIR": str(runtime)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "trail", "web", "--port", "0"], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.process.stdout is not None
        found = re.search(r"http://([\d.]+):(\d+)/\?token=(\S+)", self.process.stdout.readline())
        assert found, "trail web printed no URL"
        self.host, self.port, self.token = found.group(1), int(found.group(2)), found.group(3)
        self.base = f"http://{self.host}:{self.port}"

    def key(self, name: str) -> str:
        import json

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            conn.request("GET", "/api/trails", headers={"X-Trail-Token": self.token})
            trails = json.loads(conn.getresponse().read())["trails"]
            conn.close()
            for trail in trails:
                if trail["name"] == name and trail["live"]:
                    return str(trail["key"])
            time.sleep(0.05)
        raise RuntimeError(f"trail web never listed {name}")

    def stream(self, key: str) -> threading.Thread:
        """An open page's event stream, read (and thrown away) in a thread."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        conn.request("GET", f"/api/events?run={key}", headers={"X-Trail-Token": self.token})
        response = conn.getresponse()

        def read() -> None:
            try:
                while response.readline():
                    pass
            except (OSError, ValueError, AttributeError, http.client.HTTPException):
                return

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def browser():  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1400,1000"):
        options.add_argument(argument)
    return webdriver.Chrome(options=options,
                            service=Service(executable_path="/usr/bin/chromedriver"))


def page_figures(runtime: Path, steps: int, changes: int) -> None:
    server, client = serve(runtime, steps, "paint")
    web = Web(runtime)
    driver = browser()
    try:
        key = web.key("paint")
        driver.get(f"{web.base}/?token={web.token}")  # the cookie; not timed
        started = time.perf_counter()
        driver.get(f"{web.base}/runs/{key}")
        # A page of more than 200 steps is grouped (a line per group, not a row per step).
        while driver.execute_script(
                "return (document.querySelectorAll('#steps tbody tr').length < arguments[0]"
                " && !document.querySelector('#steps tr.section'))"
                " || !document.querySelector('#diagram svg, #diagram [data-no-diagram]')",
                steps):
            time.sleep(0.005)
        paint = time.perf_counter() - started
        grouped = driver.execute_script("return document.body.classList.contains('grouped')")
        print(f"first paint of a {steps}-step run's page: {paint:.2f} s "
              f"({'grouped' if grouped else 'rows'} and diagram in the DOM)")
        if grouped:  # list the steps being paused, as an operator would find them
            driver.find_element("css selector", "#filter").send_keys("state=to*")
        driver.execute_script("""
            window.seen = {};
            const note = (tr) => { if (tr.getAttribute && tr.getAttribute('data-state') ===
                'To Pause') window.seen[tr.getAttribute('data-n')] ??= Date.now(); };
            new MutationObserver((records) => { for (const r of records) {
                note(r.target); for (const node of r.addedNodes) note(node); } })
              .observe(document.querySelector('#steps tbody'), {subtree: true,
                       childList: true, attributes: true, attributeFilter: ['data-state']});""")
        latencies = []
        for n in range(1, changes + 1):
            sent = time.time() * 1000
            client.pause(dry_run=False, n=n)
            while (seen := driver.execute_script("return window.seen[arguments[0]]",
                                                 str(n))) is None:
                time.sleep(0.001)
            latencies.append(max(0.0, seen - sent))
        latencies.sort()
        print(f"state change to the page's DOM, {changes} changes: "
              f"p50 {statistics.median(latencies):.0f} ms, "
              f"p95 {latencies[int(len(latencies) * 0.95) - 1]:.0f} ms")
    finally:
        driver.quit()
        web.stop()
        stop(server, client)


def run_rate(runtime: Path, steps: int, pages: int, name: str) -> float:
    server, client = serve(runtime, steps, name)
    web = Web(runtime) if pages else None
    try:
        if web is not None:
            key = web.key(name)
            for _ in range(pages):
                web.stream(key)
            time.sleep(1)  # the streams are open and greeted
        with client.subscribe() as events:
            started = time.perf_counter()
            client.start(dry_run=False)
            last = f"s{steps - 1}"
            for event in events:
                if isinstance(event, StateChanged) and event.name == last \
                        and event.state == "Succeeded":
                    break
            return steps / (time.perf_counter() - started)
    finally:
        if web is not None:
            web.stop()
        stop(server, client)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--pages", type=int, default=20)
    options = parser.parse_args()
    # SIGTERM ends it as Ctrl-C does: the web server it starts (in a session of its own)
    # and the browser are stopped on the way out, not left running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    runtime = Path(tempfile.mkdtemp(prefix="bw-"))
    state = Path(tempfile.mkdtemp(prefix="bw-state-"))
    os.environ["XDG_STATE_HOME"] = str(state)  # a journal of its own
    (runtime / "trail").mkdir(mode=0o700)
    try:
        page_figures(runtime, options.steps, options.changes)
        without = [run_rate(runtime, options.steps, 0, f"bare{i}") for i in range(3)]
        with_pages = [run_rate(runtime, options.steps, options.pages, f"watched{i}")
                      for i in range(3)]
        print(f"{options.steps}-step thread chain: {statistics.median(without):.0f} steps/s "
              f"without trail web ({', '.join(f'{r:.0f}' for r in without)}); "
              f"{statistics.median(with_pages):.0f} steps/s with it and {options.pages} open "
              f"pages ({', '.join(f'{r:.0f}' for r in with_pages)})")
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
