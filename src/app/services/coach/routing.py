"""Which model answers: `small_talk` goes to the cheap model, `coaching` to the capable one.

Local and fast (no network, no LLM; tens of microseconds). Rules first, then a tiny trained
model (``routing_model``), conversation-aware:

1. Pure social messages (greetings, thanks, goodbyes, laughter) are small talk, even in the
   middle of a coaching thread.
2. A short reply ("yes, make it 4 weeks", "ok", "mornings") that continues a coaching thread
   (the coach's last message was about the member's habits, or the member's previous
   message was routed to coaching) stays coaching.
3. A message with words of the coaching domain (streak, run, sleep, plan...) is never sent
   cheap, whatever the model says.
4. Otherwise the model's P(small_talk) must reach its threshold, chosen by cross-validation
   to be conservative (and at least THREAD_BAR inside a coaching thread); below it,
   coaching. When unsure, coaching: a real question sent to the cheap model is the
   expensive mistake."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from app.services.coach.prompt import Turn
from app.services.coach.routing_model import RoutingModel, domain_hits, tokens

COACHING = "coaching"
SMALL_TALK = "small_talk"
SHORT_REPLY_WORDS = 6
THREAD_LOOKBACK = 4
# how many earlier member messages may be followed to find the thread
COACH_MESSAGE_HITS = 2  # coaching words in the coach's last message that make it a thread
THREAD_BAR = 0.9  # inside a coaching thread the model must be this sure to route cheap

# Whole messages (or comma/"and"-separated parts of one) that are purely social.
SOCIAL = frozenset(
    p.strip()
    for p in """hi|hello|hey|hey there|hiya|heyy|heyyy|yo|sup|howdy|greetings|hello again|hi there|
    good morning|morning|good evening|evening|good afternoon|good day|good night|night|
    night night|sweet dreams|sleep well|thanks|thank you|thank u|thx|ty|ta|cheers|
    many thanks|much appreciated|appreciate it|thanks a lot|thanks mate|bye|bye bye|goodbye|
    ok bye|see you|see ya|see you tomorrow|see you later|talk later|later|catch you later|
    gotta go|have a nice day|have a good day|have a great day|have a good one|
    have a great weekend|have a nice weekend|you too|same to you|you're the best|
    you are the best|love it|lol|haha|hahaha|hehe|lmao|:)|that's all|that's all for now|
    nice to meet you|take care|how are you|how are you doing|how are you today|
    how's it going|how is it going|what's up|how's life""".split("|")  # noqa: SIM905
)
# Fillers that may accompany a social part ("great, thanks!") without making it coaching.
ACKS = frozenset(
    "ok|okay|k|cool|great|awesome|nice|perfect|sure|alright|wow|yay|good|fine|oh|ah".split("|")  # noqa: SIM905
)
DROP = frozenset({"coach", "so", "much", "very", "again", "all", "for", "now", "a", "lot"})
_PARTS = re.compile(r",|;|\band\b|\.|!|\n")


@dataclass(frozen=True, slots=True)
class RouteDecision:
    route: str
    reason: str


@lru_cache(maxsize=1)
def model() -> RoutingModel:
    """The shipped weights (loaded once per process, ~20 ms)."""
    return RoutingModel.load()


def _phrase(part: str) -> str:
    """A part of a message, normalised: as written if that is a known phrase, else with the
    intensifiers and "coach" dropped ("thank you so much coach" -> "thank you")."""
    words = [w for w in tokens(part) if w not in ("?", "!")]
    whole = " ".join(words)
    if whole in SOCIAL or whole in ACKS:
        return whole
    return " ".join(w for w in words if w not in DROP) or whole


def is_social(text: str) -> bool:
    """Every part is social or a filler, and at least one part is social."""
    parts = [p for p in (_phrase(x) for x in _PARTS.split(text.lower())) if p]
    if not parts:
        return False
    return all(p in SOCIAL or p in ACKS for p in parts) and any(p in SOCIAL for p in parts)


def is_short(text: str) -> bool:
    return len([w for w in tokens(text) if w not in ("?", "!")]) <= SHORT_REPLY_WORDS


def _thread_is_coaching(history: Sequence[Turn], depth: int = THREAD_LOOKBACK) -> bool:
    """Is the conversation in a coaching thread? Yes if the coach's last message was about
    the member's habits (two or more coaching words: a plan, a question about it) or the
    member's latest earlier message was routed to coaching (followed through short replies)."""
    last_reply = history[-1] if history and history[-1].role == "assistant" else None
    if last_reply and domain_hits(tokens(last_reply.content)) >= COACH_MESSAGE_HITS:
        return True
    users = [i for i, t in enumerate(history) if t.role == "user"]
    if not users or depth <= 0:
        return False
    last = users[-1]
    return classify(history[:last], history[last].content, depth - 1).route == COACHING


def classify(history: Sequence[Turn], text: str, depth: int = THREAD_LOOKBACK) -> RouteDecision:
    """Route `text`, the member's new message, given the turns before it (oldest first)."""
    if not text.strip():
        return RouteDecision(COACHING, "rule: empty message (default to coaching)")
    if is_social(text):
        return RouteDecision(SMALL_TALK, "rule: greeting, thanks or goodbye")
    in_thread = depth > 0 and _thread_is_coaching(history, depth)
    if in_thread and is_short(text):
        return RouteDecision(COACHING, "rule: short reply continuing a coaching thread")
    m = model()
    p = m.p_small_talk(text)
    bar = max(m.threshold, THREAD_BAR) if in_thread else m.threshold
    if p >= bar and domain_hits(tokens(text)):
        return RouteDecision(COACHING, f"rule: coaching vocabulary (p_small_talk={p:.2f})")
    if p >= bar:
        return RouteDecision(SMALL_TALK, f"model: p_small_talk={p:.2f} >= {bar:.2f}")
    where = " in a coaching thread" if in_thread else ""
    return RouteDecision(COACHING, f"model: p_small_talk={p:.2f} < {bar:.2f}{where}")


def evaluate(rows: Sequence[dict[str, object]]) -> dict[str, float | int]:
    """Accuracy and the expensive-mistake rate (coaching routed to small talk) on labelled rows
    shaped like ``{"history": [{"role", "content"}], "text", "label"}``."""
    total = correct = coaching = coaching_cheap = 0
    for row in rows:
        history = [Turn(str(h["role"]), str(h["content"])) for h in row.get("history") or []]  # type: ignore[attr-defined]
        got = classify(history, str(row["text"])).route
        total += 1
        correct += got == row["label"]
        if row["label"] == COACHING:
            coaching += 1
            coaching_cheap += got == SMALL_TALK
    return {
        "n": total,
        "accuracy": correct / total if total else 0.0,
        "coaching_n": coaching,
        "coaching_to_small_talk": coaching_cheap / coaching if coaching else 0.0,
    }
