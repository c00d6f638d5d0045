"""Which model answers: `small_talk` goes to the cheap model, `coaching` to the capable one.

Until the trained router lands every message is treated as coaching (the safe choice: a
real question sent to the cheap model is the expensive mistake)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.services.coach.prompt import Turn

COACHING = "coaching"
SMALL_TALK = "small_talk"


@dataclass(frozen=True, slots=True)
class RouteDecision:
    route: str
    reason: str


def classify(history: Sequence[Turn], text: str) -> RouteDecision:
    return RouteDecision(COACHING, "default: routing not trained yet")
