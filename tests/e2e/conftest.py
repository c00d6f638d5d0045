"""Browser tests: a real server (temp SQLite, migrated and seeded, the real local model with a
small COACH_MAX_TOKENS) and the system Chromium driven by Playwright. Never `playwright
install`: the browser is /usr/bin/chromium. Screenshots go to test-artifacts/e2e/."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from scripts.lighthouse import live_app

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
# What the browser itself logs for a 4xx/5xx response; the tests that make one do it on purpose.
DEMO_EMAIL = "demo@momentum.local"
DEMO_PASSWORD = "momentum-demo"
RESOURCE_ERROR = re.compile(
    r"^Failed to load resource: the server responded with a status of 4\d\d"
)


@pytest.fixture(scope="module")
def live_server() -> Iterator[str]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    env = {"COACH_MAX_TOKENS": "24", "COACH_WARMUP": "true", "COACH_RATE_LIMIT_PER_MINUTE": "100"}
    with live_app(env, log_path=ARTIFACTS / "server.log") as base:
        yield base


def _first_answer(base: str) -> None:
    """One whole exchange through the API: the cold start (litellm import, model load) is
    not what the chat test is about, and on a busy host it can outlast the model deadline."""
    with httpx.Client(base_url=base, timeout=90) as client:
        res = client.post(
            "/api/v1/auth/token", json={"email": DEMO_EMAIL, "password": DEMO_PASSWORD}
        )
        auth = {"Authorization": f"Bearer {res.json()['token']}"}
        for _ in range(3):
            posted = client.post("/api/v1/coach/messages", json={"text": "hello"}, headers=auth)
            with client.stream("GET", posted.json()["stream_url"], headers=auth) as stream:
                events = [line for line in stream.iter_lines() if line.startswith("event: ")]
            if events.count("event: token") > 1 and events[-1] == "event: done":
                return


@pytest.fixture(scope="module")
def warm_coach(live_server: str) -> Iterator[Callable[[], None]]:
    """Warms the model in a thread from the start of the session; call it to wait."""
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(_first_answer, live_server)
        yield lambda: future.result(timeout=120)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


# Injected by DevTools (not subject to the page's CSP): names what a CSP violation hit.
REPORT_CSP_VIOLATIONS = """
document.addEventListener('securitypolicyviolation', (e) => {
  const t = e.target && e.target.outerHTML ? e.target.outerHTML.slice(0, 160) : String(e.target);
  console.error(`CSP ${e.violatedDirective} blocked ${e.blockedURI || 'inline'} on ${t} ` +
                `at ${e.sourceFile}:${e.lineNumber}:${e.columnNumber}`);
});
"""


class ConsoleWatch:
    """Console errors and uncaught exceptions of one page."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def on_console(self, msg: Any) -> None:
        if msg.type == "error" and not RESOURCE_ERROR.match(msg.text):
            self.errors.append(f"console: {msg.text} ({msg.location.get('url', '')})")

    def on_page_error(self, exc: Any) -> None:
        self.errors.append(f"pageerror: {exc}")


@pytest.fixture
def page(browser: Any, live_server: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context (no cookies) on the live server; fails the test on any
    console error; screenshots the last state as <test name>-last.png."""
    context = browser.new_context(base_url=live_server, viewport={"width": 412, "height": 915})
    context.set_default_timeout(15_000)
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    page = context.new_page()
    watch = ConsoleWatch()
    page.on("console", watch.on_console)
    page.on("pageerror", watch.on_page_error)
    page.console_watch = watch
    yield page
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-last.png"), **SHOT)
    context.close()
    assert watch.errors == [], "\n".join(watch.errors)


# caret="initial": by default Playwright hides the caret with an inline style on every input
# and leaves `style=""` behind; htmx then copies that attribute when it swaps the element
# (attributesToSettle), which the CSP blocks and logs. Screenshots must not change the page.
SHOT: dict[str, Any] = {"full_page": True, "caret": "initial", "animations": "allow"}


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), **SHOT)
