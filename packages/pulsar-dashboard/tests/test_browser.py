"""The dashboard in a real browser: headless Chromium driven by selenium.

Skipped with the reason shown when chromium, chromedriver or selenium is missing, except with
``CI=true`` (CI installs them: ``.ci/run``). Each page's screenshot is saved under the test's
``tmp_path`` (the run's artifacts); with ``PULSAR_DASHBOARD_SCREENSHOTS=1`` they are also copied
to ``packages/pulsar-dashboard/docs/``, the README's pictures (a test run leaves the tracked
files as they are otherwise).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dash_helpers as h
import pytest

from pulsar.apps import tasks

DOCS = Path(__file__).resolve().parent.parent / "docs"


BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _chrome() -> str | None:
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def _chromedriver() -> str | None:
    # GitHub's runners have it in $CHROMEWEBDRIVER; Debian's chromium-driver puts it on PATH
    where = os.environ.get("CHROMEWEBDRIVER")
    path = f"{where}{os.pathsep}{os.environ.get('PATH', '')}" if where else None
    return shutil.which("chromedriver", path=path)


def _browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    if _chrome() is None:
        return "chromium is not installed (apt-get install chromium chromium-driver)"
    if _chromedriver() is None:
        return "chromedriver is not installed (apt-get install chromium-driver)"
    return None


MISSING = _browser_missing()
# CI on Linux installs them (.ci/run): there a missing browser is a failure, not a skip
if MISSING and os.environ.get("CI") == "true" and sys.platform.startswith("linux"):
    raise RuntimeError(f"browser tests cannot run on CI: {MISSING}")
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _chrome() or ""
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1200,900",
        "--no-first-run",
        "--disable-extensions",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(_chromedriver()), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 1000, f"an empty screenshot of {name}"
    if os.environ.get("PULSAR_DASHBOARD_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copy(path, DOCS / path.name)


def workers_in_page(driver: Any) -> set[str]:
    """The aids of the worker rows shown now (read in one script: the page refreshes itself,
    so element handles go stale)."""
    return set(
        driver.execute_script(
            "return Array.from(document.querySelectorAll('#actors tr[data-kind=worker]'))"
            ".map(function(r){return r.getAttribute('data-aid')})"
        )
    )


def click_button(driver: Any, label: str) -> None:
    """Click the button labelled ``label`` (found and clicked in one script: no stale handle),
    once the page shows it (within 10 s: after a redirect, or while the live part is swapped
    in, it may not be there yet)."""

    def click() -> bool:
        return bool(
            driver.execute_script(
                "var l=arguments[0];var b=Array.from(document.querySelectorAll('button')).find("
                "function(b){return b.textContent===l});if(b){b.click();return true}"
                "return false",
                label,
            )
        )

    try:
        h.eventually(click)
    except AssertionError:
        raise AssertionError(f"no button {label!r}") from None


def text_of(driver: Any, element_id: str) -> str:
    """The text of the element ``element_id`` now ('' when absent)."""
    return str(
        driver.execute_script(
            "var e=document.getElementById(arguments[0]);return e?e.textContent:''", element_id
        )
    )


def test_tree_shows_every_worker_and_a_sigkilled_one_is_replaced(
    browser: Any, live: Any, tmp_path: Path
) -> None:
    import httpx

    snap = h.eventually(lambda: (s := httpx.get(live.url + "/api/state").json())["connected"] and s)
    expected = {w["aid"]: w for a in snap["apps"] for w in a["workers"]}
    browser.get(live.url + "/")
    h.eventually(lambda: set(workers_in_page(browser)) == set(expected))
    shot(browser, tmp_path, "actors")
    victim = next(w for w in expected.values() if w["name"] == "wsgi-worker")
    os.kill(victim["pid"], signal.SIGKILL)

    def replaced() -> bool:  # no reload: the page's script refreshes the tree
        shown = workers_in_page(browser)
        return len(shown) == len(expected) and victim["aid"] not in shown

    h.eventually(replaced, timeout=10)
    # the worker's page: its info and the buttons
    other = next(aid for aid in workers_in_page(browser) if aid in expected)
    browser.get(f"{live.url}/actors/{other}")
    from selenium.webdriver.common.by import By

    assert '"pid"' in text_of(browser, "info")
    assert browser.find_elements(By.XPATH, "//button[text()='Stop']")
    shot(browser, tmp_path, "worker")
    with httpx.Client(base_url=f"http://{live.site.web}") as web:  # traffic for the charts
        for i in range(8):
            for _ in range(20):
                web.get("/")
            for _ in range(i % 3):
                web.get("/missing")
            if i % 2:
                web.get("/fail")  # a 500
            time.sleep(0.15)
    browser.get(live.url + "/servers")
    # requests/s, errors, latency
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.chart")) >= 3
    share = browser.find_element(By.CSS_SELECTOR, ".errors-5xx").text
    assert share.endswith("%") and float(share[:-1]) > 0
    shot(browser, tmp_path, "servers")


def test_failing_task_traceback_and_retry(browser: Any, live: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    flag = tmp_path / "fixed"
    with tasks.connect_sync(live.site.backend) as client:
        for i in range(3):
            client.queue_task("add", [i, i])
        bad = client.queue_task("flaky", [str(flag)])
        assert client.wait_for_task(bad.id, timeout=15).status == tasks.TaskState.FAILURE
    browser.get(live.url + "/tasks?status=FAILURE")

    def listed() -> bool:  # the list and the counts (refreshed in place) show it
        return bool(
            browser.execute_script(
                "return !!document.querySelector(arguments[0]) && "
                "document.querySelector('#counts td[data-state=FAILURE]').textContent !== '0'",
                f'#tasks tr[data-id="{bad.id}"]',
            )
        )

    h.eventually(listed)
    shot(browser, tmp_path, "tasks")
    href = browser.execute_script(
        "return document.querySelector(arguments[0]).getAttribute('href')",
        f'#tasks tr[data-id="{bad.id}"] a',
    )
    assert href == f"/tasks/{bad.id}"
    browser.get(live.url + href)
    assert "ValueError: no fixed yet" in text_of(browser, "traceback")
    shot(browser, tmp_path, "task")
    # retry without signing in: refused (a token is set)
    click_button(browser, "Retry")
    assert "needs the dashboard token" in browser.find_element(By.TAG_NAME, "body").text
    browser.get(f"{live.url}/login?next=/tasks/{bad.id}")
    browser.find_element(By.ID, "token").send_keys(h.TOKEN)
    browser.find_element(By.ID, "signin").click()
    h.eventually(lambda: browser.current_url.endswith(f"/tasks/{bad.id}"))
    flag.write_text("ok")
    click_button(browser, "Retry")
    assert "queued again" in browser.find_element(By.ID, "flash").text

    def succeeded() -> bool:  # the page refreshes itself
        return "SUCCESS" in text_of(browser, "task-status")

    h.eventually(succeeded, timeout=15)
    assert text_of(browser, "result") == '"fixed"'
    shot(browser, tmp_path, "task-retried")


def test_remote_bind_without_token_is_refused(browser: Any, site: Any) -> None:
    from selenium.common.exceptions import WebDriverException

    port = h.free_port()
    proc = h.spawn(
        ["-m", "pulsar.apps.dashboard", "--attach", str(site.pidfile), "--bind", f"0.0.0.0:{port}"]
    )
    assert proc.popen.wait(15) == 2
    assert "refusing to listen on 0.0.0.0" in proc.output
    with pytest.raises(WebDriverException, match="ERR_CONNECTION_REFUSED"):
        browser.get(f"http://127.0.0.1:{port}/")
