"""Which model answers: `small_talk` goes to the cheap model, `coaching` to the capable one.

Local and fast (no network, no LLM; tens of microseconds). Rules first, then a tiny trained
model (``routing_model``) that sees the message and the coach's last turn:

1. Pure social messages (greetings, thanks, goodbyes, laughter) are small talk, even in the
   middle of a coaching thread.
2. An emoji-only reply answers the coach's question if the coach asked one (coaching),
   else it is a reaction (small talk).
3. A message with words of the coaching domain (streak, run, sleep, plan...) or a progress
   report ("day 30!") is never sent cheap.
4. A short reply ("ok", "mornings", "no, evenings") that continues a coaching thread (the
   coach's last turn was a plan or asked about one, or the member's previous message was
   coaching) stays coaching, unless it is a laughing aside and the coach asked nothing.
5. Otherwise the conversation-aware model's P(small_talk) must reach its threshold, chosen
   by cross-validation so that at most 0.5 % of coaching messages would go cheap; below it,
   coaching. When unsure, coaching: a real
   question sent to the cheap model is the expensive mistake."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from app.services.coach.prompt import Turn, turns
from app.services.coach.routing_model import (
    RoutingModel,
    coaching_hits,
    is_short,
    last_question,
    tokens,
)

COACHING = "coaching"
SMALL_TALK = "small_talk"
THREAD_LOOKBACK = 4  # how many earlier member messages may be followed to find the thread
PLAN_HITS = 2  # coaching words in the coach's last turn that make it a plan

# Phrases that are purely social: greetings, thanks, goodbyes, laughter, praise.
SOCIAL = frozenset(
    p.strip()
    for p in """hi|hello|hey|hey there|hiya|heyy|heyyy|yo|sup|howdy|greetings|hello again|hi there|
    good morning|morning|good evening|evening|good afternoon|good day|good night|night|
    night night|nighty night|goodnight|gn|sweet dreams|sleep well|thanks|thank you|thank u|
    thx|ty|ta|tysm|cheers|many thanks|much appreciated|appreciate it|thanks a lot|thanks a bunch|
    thanks mate|thanks for everything|thanks for the help|thanks for your help|bye|bye bye|
    goodbye|ok bye|see you|see ya|cya|see you tomorrow|see you later|talk later|talk soon|ttyl|
    later|catch you later|gotta go|gotta run|got to go|gtg|have a nice day|have a good day|
    have a great day|have a good one|have a great weekend|have a nice weekend|you too|
    same to you|you're the best|you are the best|you rock|love it|love that|lol|lmao|rofl|:)|
    woohoo|woo|yay|hooray|that's all|that's all for now|nice to meet you|take care|
    how are you|how are you doing|how are you today|how's it going|how is it going|what's up|
    how's life|good to know|that helps|that helped|that's helpful|very helpful|helpful|
    exactly what i needed|just what i needed|that's exactly what i needed|good tip|great tip|
    nice tip|good idea|great idea|happy monday|happy friday|happy weekend|happy new year|
    happy holidays|happy birthday""".split("|")  # noqa: SIM905
)
_LAUGH = re.compile(r"^(?:a?(?:ha)+h?|(?:he)+|(?:hi){2,}|lo+l+|lmf?ao+)$")
# Fillers that may accompany a social part ("great, thanks!") without making it coaching.
ACKS = frozenset(
    p.strip()
    for p in """ok|okay|okie|kk|k|cool|great|awesome|nice|nice one|perfect|sure|alright|wow|good|
    fine|oh|ah|ooh|aww|huh|hmm|true|sweet|neat|lovely|brilliant|amazing|right|indeed|fair|
    fair enough|interesting|got it|yes|yeah|yep|yup|no|nope|nah""".split("|")  # noqa: SIM905
)
DROP = frozenset(
    {"coach", "so", "much", "very", "again", "all", "for", "now", "a", "lot", "really"}
)
_PARTS = re.compile(r",|;|\band\b|\.|!|\n")
_LONGEST_PHRASE = max(len(p.split()) for p in SOCIAL | ACKS)


@dataclass(frozen=True, slots=True)
class RouteDecision:
    route: str
    reason: str


@lru_cache(maxsize=1)
def model() -> RoutingModel:
    """The shipped weights (loaded once per process, ~20 ms)."""
    return RoutingModel.load()


def _segment(words: Sequence[str]) -> tuple[bool, bool] | None:
    """Cut a part of a message into social phrases, fillers and laughter, longest first.
    Returns (has_social, has_filler), or None when some words are neither."""
    social = filler = False
    i = 0
    while i < len(words):
        for n in range(min(_LONGEST_PHRASE, len(words) - i), 0, -1):
            phrase = " ".join(words[i : i + n])
            if phrase in SOCIAL or (n == 1 and _LAUGH.match(phrase)):
                social, i = True, i + n
                break
            if phrase in ACKS or (n == 1 and phrase in DROP):
                filler, i = True, i + n
                break
        else:
            return None
    return social, filler


def is_social(text: str) -> bool:
    """Every part is made of social phrases, fillers and laughter, and at least one is social
    ("haha ok thanks coach", "cool cool. bye!")."""
    parts = [[w for w in tokens(x) if w not in ("?", "!")] for x in _PARTS.split(text.lower())]
    cuts = [_segment(words) for words in parts if words]
    if not cuts or any(c is None for c in cuts):
        return False
    return any(c[0] for c in cuts if c)


def is_reaction(text: str) -> bool:
    """Only emoji or symbols: no word, no number."""
    return bool(text.strip()) and not any(ch.isalnum() for ch in text)


def coach_asked(history: Sequence[Turn]) -> bool:
    """Did the coach's last turn ask the member something other than a pleasantry?"""
    if not history or history[-1].role != "assistant":
        return False
    question = last_question(history[-1].content)
    return question is not None and not is_social(question)


def in_coaching_thread(history: Sequence[Turn], depth: int = THREAD_LOOKBACK) -> bool:
    """Is the conversation in a coaching thread? Yes if the coach's last turn was about the
    member's habits (two or more coaching words: a plan) or asked about them, or the
    member's previous message was coaching by the rules (followed through short replies)."""
    if not history or history[-1].role != "assistant":
        return False
    coach = history[-1].content
    question = last_question(coach)
    if coaching_hits(coach) >= PLAN_HITS or (question and coaching_hits(question)):
        return True
    users = [i for i, turn in enumerate(history) if turn.role == "user"]
    if not users or depth <= 0:
        return False
    last = users[-1]
    earlier = rule_decision(history[:last], history[last].content, depth - 1)
    return earlier is not None and earlier.route == COACHING


def _laughing_aside(history: Sequence[Turn], text: str) -> bool:
    """A laughing remark ("lmao my legs went numb") with no number and no coaching word,
    when the coach asked nothing: the model decides, not the short-reply rule."""
    laughs = any(_LAUGH.match(w) for w in tokens(text)) or any(ch in text for ch in "😂🤣😆😅")
    plain = not coaching_hits(text) and not any(ch.isdigit() for ch in text)
    return laughs and plain and not coach_asked(history)


def rule_decision(
    history: Sequence[Turn], text: str, depth: int = THREAD_LOOKBACK
) -> RouteDecision | None:
    """The rules' route, or None when the model must decide."""
    if not text.strip():
        return RouteDecision(COACHING, "rule: empty message (default to coaching)")
    if is_social(text):
        return RouteDecision(SMALL_TALK, "rule: greeting, thanks or goodbye")
    if is_reaction(text):
        if coach_asked(history):
            return RouteDecision(COACHING, "rule: an emoji answering the coach's question")
        return RouteDecision(SMALL_TALK, "rule: an emoji reaction")
    if coaching_hits(text):
        return RouteDecision(COACHING, "rule: coaching vocabulary")
    thread = in_coaching_thread(history, depth) if depth > 0 else False
    if thread and is_short(text) and not _laughing_aside(history, text):
        return RouteDecision(COACHING, "rule: short reply continuing a coaching thread")
    return None


def rule_route(row: dict[str, Any]) -> str | None:
    """The rules' route for a labelled row, or None when the model would decide."""
    decision = rule_decision(turns(row.get("history")), str(row["text"]))
    return decision.route if decision else None


def classify(history: Sequence[Turn], text: str) -> RouteDecision:
    """Route `text`, the member's new message, given the turns before it (oldest first)."""
    decision = rule_decision(history, text)
    if decision is not None:
        return decision
    m = model()
    p = m.p_small_talk(text, history)
    after = " after the coach's question" if coach_asked(history) else ""
    if p >= m.threshold:
        return RouteDecision(SMALL_TALK, f"model: p_small_talk={p:.2f} >= {m.threshold:.2f}{after}")
    return RouteDecision(COACHING, f"model: p_small_talk={p:.2f} < {m.threshold:.2f}{after}")


def evaluate(rows: Sequence[dict[str, object]]) -> dict[str, float | int]:
    """Accuracy and the expensive-mistake rate (coaching routed to small talk) on labelled rows
    shaped like ``{"history": [{"role", "content"}], "text", "label"}``."""
    total = correct = coaching = coaching_cheap = 0
    for row in rows:
        got = classify(turns(row.get("history")), str(row["text"])).route
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
