"""`trail web` in a real headless browser (Debian's chromium driven by Selenium through
Debian's chromedriver; nothing is downloaded): the token gate, a run's diagram and table,
a state change seen without a reload, steering with the dry-run preview then confirm, a
question answered from the page, a step's output shown as text, the run's timeline, a
run whose server went away shown as ended."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.layer2.test_web import html_and_question, start
from tests.layer2.webtools import WebProcess
from tests.support import DEADLINE, require, states, wait_states, wait_until
from trail import Step

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
HTML_OUTPUT = "<script>alert('x')</script> & <b>bold</b>"


def _missing(what: str) -> None:
    message = f"{what} is missing (scripts/setup installs it)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def browser() -> Iterator[Any]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("the selenium package (pip install -e '.[dev]')")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            _missing(path)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1400,1000", "--no-first-run"):
        options.add_argument(argument)
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager: never download a driver
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(DEADLINE)
    yield driver
    driver.quit()


@pytest.fixture
def runtime() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="twb-"))
    (path / "trail").mkdir(mode=0o700)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def web(runtime: Path) -> Iterator[WebProcess]:
    require("dot")
    process = WebProcess(runtime, "--user", "tester")
    yield process
    process.stop()


def css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def wait_css(driver: Any, selector: str, what: str = "") -> Any:
    return wait_until(lambda: (found := css(driver, selector)) and found[0],
                      what or f"{selector} on the page")


def click(driver: Any, selector: str, what: str = "") -> None:
    """Click the first element ``selector`` finds; the page may redraw it between the
    finding and the click (a stale element), then it is found again."""
    from selenium.common.exceptions import StaleElementReferenceException

    def clicked() -> bool:
        found = css(driver, selector)
        if not found:
            return False
        try:
            found[0].click()
        except StaleElementReferenceException:
            return False
        return True

    wait_until(clicked, what or f"{selector} to click")


def steer(driver: Any, control: str, step: str | None = None) -> list[str]:
    """Click ``control``, check the dry-run preview (returning the steps it names), then
    confirm."""
    click(driver, control)
    dialog = wait_css(driver, "dialog#confirm[open]", "the dry-run preview")
    names = [li.get_attribute("data-step") for li in css(driver, "#confirm-steps li")]
    if step is not None:
        assert names == [step], dialog.text
    dialog.find_element("css selector", "[data-confirm]").click()
    wait_until(lambda: not css(driver, "dialog#confirm[open]"), "the preview to close")
    return names


def test_without_the_token_the_page_says_so(browser: Any, web: WebProcess) -> None:
    browser.get(web.base + "/")
    assert "needs the token" in browser.find_element("tag name", "body").text
    browser.get(web.url)
    wait_css(browser, "#no-trails")
    assert browser.find_element("tag name", "h1").text == "Trails"


def test_a_run_watched_steered_and_answered_from_the_page(
        browser: Any, web: WebProcess, serve: Any, runtime: Path, tmp_path: Path) -> None:
    client = start(serve, runtime, html_and_question(), "page")
    browser.get(web.url)  # the list, with the token; the page keeps it from here on
    wait_css(browser, "#trails a", "the trail in the list")
    key = web.key_of("first")
    click(browser, "#trails a")
    wait_until(lambda: browser.current_url.endswith(f"/runs/{key}"), "the run's page")
    node = wait_css(browser, '#diagram g.node[data-step="ask"][data-state="Ready"]',
                    "the diagram")
    assert node.is_displayed()
    assert [tr.get_attribute("data-step") for tr in css(browser, "#steps tbody tr")] == [
        "first", "ask", "last"]

    # Pause ask: the preview names it and changes nothing; confirm pauses it.
    click(browser, '#steps tr[data-step="ask"]')
    wait_css(browser, '#step-panel[data-step="ask"] [data-action="pause"]')
    click(browser, '#step-panel [data-action="pause"]')
    wait_css(browser, "dialog#confirm[open]")
    assert texts(browser, "#confirm-steps li") == ["1: ask"]
    assert texts(browser, "#confirm-stranded li") == ["2: last"]
    assert states(client)["ask"] == "Ready"  # only a dry run so far
    click(browser, "dialog#confirm [data-confirm]")
    wait_css(browser, '#steps tr[data-step="ask"][data-state="To Pause"]',
             "the table to show the pause without a reload")
    wait_css(browser, '#diagram g.node[data-step="ask"][data-state="To Pause"]')
    assert states(client)["ask"] == "To Pause"

    # Start the whole trail: first runs (its HTML-looking output shows as text), ask waits.
    steer(browser, '#trail-actions [data-action="start"]')
    wait_css(browser, '#steps tr[data-step="first"][data-state="Succeeded"]')
    wait_css(browser, '#steps tr[data-step="ask"][data-state="Paused"]')
    last = wait_until(lambda: (cell := css(browser, '#steps tr[data-step="first"] td.last'))
                      and cell[0].text == HTML_OUTPUT and cell[0], "first's output as text")
    assert "&lt;script&gt;" in last.get_attribute("innerHTML")
    assert not css(browser, "#steps script, #step-panel script, #questions script")
    click(browser, '#steps tr[data-step="first"]')
    wait_until(lambda: HTML_OUTPUT in "".join(texts(browser, "#step-output")),
               "the output in the step's panel")

    # Resume ask; its question shows with a field; the answer from the page is given.
    click(browser, '#steps tr[data-step="ask"]')
    wait_css(browser, '#step-panel[data-step="ask"]')
    steer(browser, '#step-panel [data-action="resume"]', "ask")
    field = wait_css(browser, '[data-answer-for="ask"]', "the question's answer field")
    assert texts(browser, '[data-question-for="ask"] .asked') == ["which replica?"]
    browser.save_screenshot(str(os.environ.get("TRAIL_WEB_SCREENSHOT")
                                or tmp_path / "run-page.png"))
    field.send_keys("db2")
    steer(browser, '[data-question-for="ask"] [data-action="send_message_to_steps"]', "ask")
    wait_css(browser, '#steps tr[data-step="ask"][data-state="Succeeded"]')
    wait_css(browser, '#steps tr[data-step="last"][data-state="Succeeded"]')
    wait_states(client, {"ask": "Succeeded", "last": "Succeeded"})
    assert client.status(fields=["Return value"])[1]["Return value"] == "db2"
    assert not css(browser, "[data-question-for]")
    assert texts(browser, "#counts .count") == ["3 Succeeded"]

    # The server goes away: the page says so, and the journal's timeline is there.
    client.shutdown(dry_run=False)
    assert client.server.join(30)  # type: ignore[attr-defined]
    wait_until(lambda: "ended" in "".join(texts(browser, "#live")), "the run shown as ended")
    assert not css(browser, "#trail-actions [data-action]")
    wait_css(browser, '#timeline tr[data-kind="input"]', "the answer in the timeline")
    wanted = {"api:pause by web:tester", "api:start by web:tester",
              "api:resume by web:tester"}
    wait_until(lambda: wanted <= set(texts(browser, "#timeline td:last-child")),
               "who paused, started and resumed, in the timeline")


def test_a_steps_output_streams_into_its_panel(browser: Any, web: WebProcess, serve: Any,
                                               runtime: Path) -> None:
    def talk(env: Any, context: Any) -> str:
        env.output("line 1")
        env.input("go on?")
        env.output("line 2")
        return "over"

    client = start(serve, runtime, Step(talk, name="talk"), "stream")
    key = web.key_of("talk")
    browser.get(f"{web.base}/runs/{key}?token={web.token}")
    wait_css(browser, '#steps tr[data-step="talk"]')
    click(browser, '#steps tr[data-step="talk"]')
    client.start(dry_run=False)
    wait_css(browser, "#step-output")
    wait_until(lambda: texts(browser, "#step-output") == ["line 1"], "the first line in the panel")
    field = wait_css(browser, '[data-answer-for="talk"]')
    field.send_keys("yes")
    steer(browser, '[data-question-for="talk"] [data-action="send_message_to_steps"]', "talk")
    wait_until(lambda: texts(browser, "#step-output") == ["line 1\nline 2\n→ over"],
               "the rest, as it came")
    assert css(browser, '#steps tr[data-step="talk"]')[0].get_attribute("data-state") == \
        "Succeeded"


def test_a_chatty_steps_panel_shows_its_newest_lines_and_links_to_all(
        browser: Any, web: WebProcess, serve: Any, runtime: Path) -> None:
    def chatty(env: Any, context: Any) -> None:
        for i in range(230):
            env.output(f"line {i}")

    client = start(serve, runtime, Step(chatty, name="chatty"), "chatty")
    key = web.key_of("chatty")
    browser.get(f"{web.base}/runs/{key}?token={web.token}")
    wait_css(browser, '#steps tr[data-step="chatty"]')
    click(browser, '#steps tr[data-step="chatty"]')
    client.start(dry_run=False)
    wait_until(lambda: texts(browser, "#step-output-earlier")
               == ["30 earlier line(s) not shown: all 230 lines"], "the note of earlier lines")
    (shown,) = texts(browser, "#step-output")
    assert shown.splitlines() == [f"line {i}" for i in range(30, 230)]
    link = css(browser, "#step-output-earlier a")[0].get_attribute("href")
    browser.get(link)  # the whole output, as text
    wait_until(lambda: texts(browser, "body") and
               texts(browser, "body")[0].splitlines() == [f"line {i}" for i in range(230)],
               "every line at the link")


def test_a_run_killed_and_taken_up_comes_back_on_the_page(browser: Any, runtime: Path) -> None:
    from tests.support import RunbookProcess

    require("dot")
    book = str(Path(__file__).parents[1] / "e2e" / "crash_runbook.py")
    trail_run = RunbookProcess(book, runtime / "trail", "crash", CRASH_LOG=str(runtime / "log"),
                               CRASH_STEPS="3", CRASH_ASK_AT="1")
    web = WebProcess(runtime, "--journal", trail_run.journal)
    try:
        trail_run.start()
        key = web.key_of("crash_runbook")
        browser.get(f"{web.base}/runs/{key}?token={web.token}")
        wait_css(browser, '[data-answer-for="s1"]', "s1's question")
        trail_run.kill()  # SIGKILL: no goodbye from the server
        wait_until(lambda: "ended" in "".join(texts(browser, "#live")), "the run shown as ended")
        trail_run.start()  # takes the run up from the journal
        wait_css(browser, '#steps tr[data-step="s1"][data-state="Interrupted"]',
                 "the taken-up run on the same page, without a reload")
        assert texts(browser, "#live") == ["live"]
        assert key.isdigit()  # the journal's run id: the same page, the same run
    finally:
        trail_run.stop()
        web.stop()


def test_a_past_run_from_the_journal(browser: Any, web: WebProcess, serve: Any,
                                     runtime: Path) -> None:
    client = start(serve, runtime, html_and_question(), "past")
    key = web.key_of("first")
    client.pause(dry_run=False, name="ask")
    client.start(dry_run=False)
    wait_states(client, {"first": "Succeeded", "ask": "Paused"})
    client.shutdown(dry_run=False)
    assert client.server.join(30)  # type: ignore[attr-defined]
    later = WebProcess(runtime)  # knows the run from the journal only
    try:
        browser.get(f"{later.base}/runs/{key}?token={later.token}")
        wait_css(browser, '#diagram g.node[data-step="first"][data-state="Succeeded"]')
        wait_css(browser, '#steps tr[data-step="ask"][data-state="Paused"]')
        assert texts(browser, "#live") == ["past run"]
        wait_css(browser, '#timeline tr[data-state="Succeeded"]')
        browser.get(later.url)
        wait_css(browser, f'#past tr[data-run="{key}"] a', "the run among the past runs")
    finally:
        later.stop()


def table(driver: Any) -> list[tuple[str, str, str]]:
    """The steps table's rows at one moment (a grouped view redraws as events come): each
    row's step, group or section, its state, and its text."""
    return [tuple(row) for row in driver.execute_script(
        "return [...document.querySelectorAll('#steps tbody tr')].map((tr) => ["
        "tr.getAttribute('data-step') || tr.getAttribute('data-group') ||"
        " tr.getAttribute('data-section') || '', tr.getAttribute('data-state') || '',"
        " tr.innerText.replace(/\\s+/g, ' ').trim()])")]


def texts(driver: Any, selector: str) -> list[str]:
    return list(driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map((e) => e.innerText)",
        selector))


def test_a_fleet_of_thousands_of_steps_is_grouped_with_what_needs_you_on_top(
        browser: Any, web: WebProcess, serve: Any, runtime: Path) -> None:
    """2,001 steps (a drain and an upgrade per host): the page lists the question and the
    failed drain on top, a line per phase with its counts, the steps done counted; a few
    dozen rows, not thousands; any step found by the filter, or in its expanded group."""
    from tests.e2e.fleet_runbook import fleet

    client = serve(fleet(1000), socket_file=str(runtime / "trail" / "fleet.sock"),
                   executor="thread", name="fleet")
    client.start(dry_run=False)
    wait_until(lambda: client.steps_waiting_for_user_input(), "approve's question")
    wait_until(lambda: sum(state == "Succeeded" for state in states(client).values()) == 999,
               "the drains done but web17's", timeout=60)
    key = web.key_of("fleet")
    browser.get(f"{web.base}/runs/{key}?token={web.token}")
    wait_until(lambda: ("drain", "", "▸ drain 1000 steps 1 Paused due to failure 999 "
                        "Succeeded") in table(browser), f"the drain phase: {table(browser)}")
    rows = table(browser)
    assert len(rows) < 20  # not a row per step
    assert rows[:3] == [
        ("attention", "", "2 need you"),
        ("approve", "Running", rows[1][2]), ("drain@web17", "Paused due to failure", rows[2][2])]
    assert "web17 would not drain" in rows[2][2]
    assert ("upgrade", "", "▸ upgrade 1000 steps 1000 Waiting") in rows
    assert texts(browser, "#counts .count") == [
        "1 Paused due to failure", "1 Running", "1000 Waiting", "999 Succeeded"]
    assert texts(browser, "#done-line") == ["done: 999 Succeeded"]
    wait_css(browser, '[data-answer-for="approve"]', "the question's answer field")
    assert css(browser, "#diagram [data-no-diagram]")  # graphviz draws up to 1,000

    # Any step: found by the filter, steered from its panel.
    field = css(browser, "#filter")[0]
    field.send_keys("host=web17")
    wait_until(lambda: [r[0] for r in table(browser)] ==
               ["matched", "drain@web17", "upgrade@web17"], "the filter's two steps")
    click(browser, '#steps tr[data-step="drain@web17"]')
    wait_css(browser, '#step-panel[data-step="drain@web17"] [data-action="skip"]')
    steer(browser, '#step-panel [data-action="skip"]', "drain@web17")
    wait_css(browser, '#steps tr[data-step="drain@web17"][data-state="Skipped"]',
             "the skip shown in the filtered list")
    field.clear()
    field.send_keys(" ")  # an input event: the filter is empty again
    wait_until(lambda: css(browser, "#steps tr.group"), "the groups again")
    wait_until(lambda: texts(browser, "#done-line") ==
               ["done: 999 Succeeded · 1 Skipped (every step done in drain)"],
               "the drains counted as done")
    assert "drain" not in [r[0] for r in table(browser)]
    click(browser, '#steps tr.group[data-group="upgrade"]')
    wait_until(lambda: "upgrade@web0" in [r[0] for r in table(browser)],
               "the upgrade phase expanded")
    rows = table(browser)
    assert ("", "", "… 950 more in upgrade: filter to find one") in rows
    assert len(rows) < 80
