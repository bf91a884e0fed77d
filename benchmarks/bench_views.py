"""The views at fleet scale: one frame of the live view, and the web page's handling of a
batch of events, for a run of 10,000 steps (a step per host per phase).

    python benchmarks/bench_views.py [--steps 10000] [--repeat 30] [--no-browser]

Live view: one frame is ``RunView.render`` (the grouped view: what needs you, running, a
line per phase) drawn by rich into a 160x40 terminal that writes to a StringIO; the floor
is a plain rich Table of 40 rows of five columns drawn the same way, timed interleaved in
the same run. Also: applying a batch of 1,000 events to the view, and (once, for scale)
the row-per-step table this view had before, at 10,000 rows.

Web page (headless chromium, as bench_web.py; skipped with --no-browser): a real trail of
that size followed by a real ``trail web``; the first paint of its page; then, in the page,
1,000 state-change messages (500 steps start, the 500 started before end) handed to its
event handler and the grouped table redrawn once (performance.now(), with a forced
layout), against a floor of building a 40-row table and laying it out in the same page.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from trail import Step, TrailClient, TrailServer  # noqa: E402
from trail.layer1.events import Prompt, StateChanged  # noqa: E402
from trail.layer1.wire import StatusField as F  # noqa: E402
from trail.layer2.cli.follow import RunView  # noqa: E402
from trail.layer2.cli.liveview import Frame, render  # noqa: E402

PHASES = ("drain", "upgrade", "restart", "verify")


def console() -> Console:
    return Console(file=io.StringIO(), width=160, height=40, color_system="truecolor",
                   force_terminal=True)


def fleet_rows(steps: int) -> list[dict[str, Any]]:
    """Status rows of a fleet run part way: a quarter done, some running, one failed."""
    hosts = steps // len(PHASES)
    rows: list[dict[str, Any]] = []
    now = time.time()
    for phase in PHASES:
        for i in range(hosts):
            n = len(rows)
            state = ("Succeeded" if n < steps // 4 else "Running" if n < steps // 4 + 300
                     else "Waiting")
            rows.append({F.N: n, F.NAME: f"{phase}@web{i}", F.STATE: state,
                         F.UNREPLIED_PROMPT_MESSAGE: None, F.STARTED_AT: now - 30,
                         F.FINISHED_AT: None, F.OUTPUT_MESSAGES: [f"{phase} web{i}: ok"],
                         F.PROMPT_MESSAGES: [], F.INPUT_MESSAGES: [],
                         F.TAGS: {"n": n, "name": f"{phase}@web{i}", "host": f"web{i}",
                                  "phase": phase}})
    rows[17][F.STATE] = "Paused due to failure"
    return rows


def floor_table() -> Table:
    table = Table(expand=True)
    for column in ("n", "step", "state", "time", "last output"):
        table.add_column(column)
    for i in range(40):
        table.add_row(str(i), f"drain@web{i}", "Succeeded", "1.2 s", f"drain web{i}: ok")
    return table


def timed(action: Any) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def live_view(steps: int, repeat: int) -> None:
    view = RunView(None, "trail fleet")  # type: ignore[arg-type]  # rows only, no server
    view.reset(fleet_rows(steps))
    first = steps // 4 + 300
    view.apply(Prompt(n=first, name="", message="Drain web now?"))
    frames, floors = [], []
    for _ in range(repeat):  # interleaved: the machine's noise falls on both alike
        # Each a fresh terminal (its making counted on both sides).
        frames.append(timed(lambda: console().print(render(view, keys=True, height=40))))
        floors.append(timed(lambda: console().print(floor_table())))
    frame, floor = statistics.median(frames), statistics.median(floors)
    print(f"live view, one frame at {steps:,} steps: median {frame:.1f} ms; floor (a rich "
          f"Table of 40 rows) {floor:.1f} ms; ratio {frame / floor:.2f}")
    events = [StateChanged(seq=0, time=time.time(), n=n, name="", state="Running",
                           previous="Waiting") for n in range(first + 1, first + 1001)]
    def apply_all() -> None:
        for event in events:
            view.apply(event)
    batch = timed(apply_all)
    print(f"live view, 1,000 events applied: {batch:.1f} ms ({batch:.1f} µs an event)")
    out = console()
    flat = timed(lambda: out.print(Frame(view, time.time()).table(sorted(view.rows))))
    print(f"for scale, the row-per-step table at {steps:,} rows: {flat:.0f} ms "
          f"({flat / floor:.0f}x the floor)")


def serve_fleet(runtime: Path, steps: int) -> tuple[TrailServer, TrailClient]:
    hosts = steps // len(PHASES)

    def noop(trail_env: object, context: object) -> None:
        return None

    pairs = []
    for i in range(hosts):
        chain = [Step(noop, name=f"{phase}@web{i}", host=f"web{i}", phase=phase)
                 for phase in PHASES]
        pairs += list(zip(chain, chain[1:], strict=False))
    server = TrailServer(pairs, socket_file=str(runtime / "trail" / "fleet.sock"),
                         executor="thread", name="fleet")
    server.serve(threaded=True)
    return server, TrailClient(server.socket_file, timeout=60)


BATCH = """
// A batch of events as a busy run sends them: half start steps, half end the ones started
// by the batch before.
const [offset, half] = arguments;
const keys = [...run.rows.keys()];
const change = (n, state) => {
  const row = Object.assign({}, run.rows.get(n), {State: state, "Started at": Date.now() / 1000});
  onEvent({data: JSON.stringify({type: "event", event: {kind: "state"}, row: row, counts: {}})});
};
const started = performance.now();
for (const n of keys.slice(offset, offset + half)) change(n, "Running");
for (const n of keys.slice(Math.max(0, offset - half), offset)) change(n, "Succeeded");
const applied = performance.now();
drawGrouped();
document.body.offsetHeight;  // the layout, too
return [applied - started, performance.now() - applied];
"""

FLOOR = """
const started = performance.now();
const table = document.createElement("table");
const body = document.createElement("tbody");
for (let i = 0; i < 40; i++) {
  const tr = document.createElement("tr");
  for (const text of [i, "drain@web" + i, "Succeeded", "1.2 s", "drain web" + i + ": ok"]) {
    const td = document.createElement("td"); td.textContent = text; tr.append(td);
  }
  body.append(tr);
}
table.append(body);
document.body.append(table);
document.body.offsetHeight;
const spent = performance.now() - started;
table.remove();
return spent;
"""


def web_page(steps: int, repeat: int) -> None:
    from benchmarks.bench_web import Web, browser

    runtime = Path(tempfile.mkdtemp(prefix="bv-"))
    (runtime / "trail").mkdir(mode=0o700)
    server, client = serve_fleet(runtime, steps)
    web = Web(runtime)
    driver = browser()
    try:
        key = web.key("fleet")
        driver.get(f"{web.base}/?token={web.token}")
        started = time.perf_counter()
        driver.get(f"{web.base}/runs/{key}")
        while not driver.execute_script(
                "return document.querySelector('#steps tr.group') !== null"):
            time.sleep(0.005)
        paint = time.perf_counter() - started
        rows = driver.execute_script("return document.querySelectorAll('#steps tr').length")
        print(f"web page of {steps:,} steps: first paint {paint:.2f} s, {rows} table rows "
              f"in the DOM")
        handled, drawn, floors = [], [], []
        for i in range(repeat):
            apply_ms, draw_ms = driver.execute_script(BATCH, (i + 1) * 500, 500)
            handled.append(apply_ms)
            drawn.append(draw_ms)
            floors.append(driver.execute_script(FLOOR))
        floor = statistics.median(floors)
        print(f"web page, a batch of 1,000 events at {steps:,} steps: applied in median "
              f"{statistics.median(handled):.1f} ms, drawn once in "
              f"{statistics.median(drawn):.1f} ms; floor (40 table rows built and laid out) "
              f"{floor:.1f} ms; ratio {statistics.median(drawn) / floor:.2f}")
    finally:
        driver.quit()
        web.stop()
        client.shutdown(dry_run=False)
        server.join(30)
        shutil.rmtree(runtime, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--no-browser", action="store_true")
    options = parser.parse_args()
    # SIGTERM ends it as Ctrl-C does: the web server it starts (in a session of its own)
    # and the browser are stopped on the way out, not left running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    state = Path(tempfile.mkdtemp(prefix="bv-state-"))
    os.environ["XDG_STATE_HOME"] = str(state)  # a journal of its own
    try:
        live_view(options.steps, options.repeat)
        if not options.no_browser:
            web_page(options.steps, max(options.repeat // 3, 5))
    finally:
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
