"""Real-browser journeys against a real server: a visitor browses (lazy sections arrive),
signs up, joins a challenge, checks in and sees reputation rise; a member chats with the coach
and sees the answer stream in token by token. No console errors on any page."""

from __future__ import annotations

import re
import uuid
from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import DEMO_EMAIL, DEMO_PASSWORD, shot


def lazy_loaded(page: Any, selector: str) -> None:
    """The section swapped its skeleton for content: no aria-busy, no skeleton rows."""
    expect(page.locator(f"{selector}[aria-busy]")).to_have_count(0)
    expect(page.locator(f"{selector} .skel")).to_have_count(0)


def reveal(page: Any, selector: str) -> None:
    """Scroll the section into view (it may replace itself meanwhile: no element handle)."""
    page.evaluate(f"document.querySelector('{selector}').scrollIntoView()")


def reputation_points(page: Any) -> int:
    page.goto("/")
    lazy_loaded(page, "#reputation")
    dd = page.locator("#reputation dt:text-is('Reputation') + dd")
    return int(dd.inner_text())


def test_visitor_browses_signs_up_joins_and_checks_in(page: Any, warm_coach: Any) -> None:
    # (warm_coach: the model warms up in the background while this journey runs)
    # Home: trending loads at once, the leaderboard when scrolled into view.
    page.goto("/")
    lazy_loaded(page, "#trending")
    reveal(page, "#leaderboard-5")
    lazy_loaded(page, "#leaderboard-5")
    shot(page, "01-home-visitor")

    # Challenges: the result cards replace the skeleton; active search narrows them.
    page.goto("/challenges")
    lazy_loaded(page, "#challenge-results")
    cards = page.locator("#challenge-results .card")
    assert cards.count() > 1
    title = cards.first.locator(".card-title").inner_text()
    word = max(re.findall(r"[A-Za-z]{4,}", title), key=len)
    page.get_by_label("Search by title").fill(word)
    expect(page.locator("#challenge-results .meta").first).to_contain_text(word)
    expect(page).to_have_url(re.compile(r"/challenges\?q="))
    shot(page, "02-challenges-search")
    page.locator("#challenge-results .card-title").first.click()
    expect(page.locator("h1")).to_be_visible()
    challenge_url = page.url

    # The challenge page: check-ins load when revealed; visitors are invited to log in.
    reveal(page, "#check-ins")
    lazy_loaded(page, "#check-ins")
    expect(page.locator("#challenge-actions")).to_contain_text("Log in to join")

    # A deliberate 404 (the browser logs the 4xx itself; nothing else may be logged).
    assert page.goto("/challenges/999999999").status == 404
    expect(page.locator("h1")).to_have_text("Page not found")

    # Sign up (plain form), then back to the challenge as a member.
    page.goto("/signup")
    page.get_by_label("Email").fill(f"e2e-{uuid.uuid4().hex[:10]}@example.test")
    # A long name: lists must cut it short, not scroll the phone's page sideways.
    page.get_by_label("Display name").fill("Browser Tester Konstantinopoulou-Vanderbilt Smyth")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign up").click()
    expect(page.locator("h1")).to_contain_text("Welcome back, Browser Tester")
    before = reputation_points(page)
    shot(page, "03-home-member")

    page.goto(challenge_url)
    page.get_by_role("button", name="Join this challenge").click()  # htmx: swaps the actions
    expect(page.locator("#status")).to_contain_text("You joined")
    expect(page.get_by_label("How did it go today?")).to_be_focused()  # not sent to the top
    note = f"Felt great {uuid.uuid4().hex[:6]}"
    page.get_by_label("How did it go today?").fill(note)
    page.get_by_role("button", name="Check in for today").click()
    expect(page.locator("#challenge-actions")).to_contain_text("Checked in today. Streak: 1 day")
    expect(page.locator("#status")).to_contain_text("Checked in for today")
    expect(page.locator("#challenge-actions .done")).to_be_focused()
    reveal(page, "#check-ins")
    expect(page.locator("#check-ins")).to_contain_text(note)  # refreshed by the HX-Trigger
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    shot(page, "04-checked-in")

    after = reputation_points(page)
    assert after > before, (before, after)
    shot(page, "05-reputation-rose")
    page.goto("/leaderboard")
    lazy_loaded(page, "#leaderboard-50")


# Counts token swaps and records the answer's length at each one (runs via DevTools, so the
# page's CSP does not apply to it).
WATCH_STREAM = """() => {
  window.__stream = {tokens: 0, lengths: [], closed: false};
  document.body.addEventListener('htmx:sseMessage', (e) => {
    if (e.detail && e.detail.type === 'token') {
      window.__stream.tokens += 1;
      const answers = document.querySelectorAll('.msg-coach .msg-text');
      window.__stream.lengths.push(answers[answers.length - 1].textContent.length);
    }
  });
  document.body.addEventListener('htmx:sseClose', () => { window.__stream.closed = true; });
}"""


def test_member_chats_and_sees_the_answer_stream(page: Any, warm_coach: Any) -> None:
    page.goto("/login?next=/coach")
    page.get_by_label("Email").fill(DEMO_EMAIL)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/coach$"))
    page.get_by_role("button", name="New conversation").click()
    expect(page).to_have_url(re.compile(r"/coach\?c=\d+$"))
    shot(page, "10-coach-empty")

    warm_coach()
    page.evaluate(WATCH_STREAM)
    page.get_by_label("Message your coach").fill("How can I keep my running streak going?")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".msg-user .msg-text").last).to_have_text(
        "How can I keep my running streak going?"
    )
    answer = page.locator(".msg-coach .msg-text").last
    expect(answer).to_have_attribute("aria-live", "polite")
    expect(page.get_by_label("Message your coach")).to_have_value("")  # fresh form (oob)
    page.wait_for_function("() => window.__stream.closed", timeout=45_000)
    stream = page.evaluate("() => window.__stream")
    lengths = stream["lengths"]
    assert stream["tokens"] >= 3, stream
    assert len(set(lengths)) >= 3 and lengths == sorted(lengths), stream  # it grew, in steps
    text = answer.inner_text()
    assert text.strip(), "the answer has text"
    shot(page, "11-coach-answered")

    # The answer was saved: a reload renders it server-side (escaped), no stream this time.
    page.reload()
    saved = page.locator(".msg-coach .msg-text").last
    expect(saved).to_have_text(text)
    expect(page.locator("[sse-connect]")).to_have_count(0)
    expect(page.locator("#coach-conversations [aria-current=page]")).to_have_count(1)
