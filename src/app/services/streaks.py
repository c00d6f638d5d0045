"""Pure streak arithmetic, kept apart from SQL so the rules are easy to test."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

CHECK_IN_POINTS = 10
STREAK_BONUS_POINTS = 5
STREAK_BONUS_EVERY = 7
COMPLETION_POINTS = 100


def current_streak(days: Iterable[date], today: date) -> int:
    """Consecutive check-in days ending today, or yesterday (a streak is alive until a day
    is missed). `days` may be unordered and contain duplicates."""
    unique = set(days)
    cursor = today if today in unique else today - timedelta(days=1)
    streak = 0
    while cursor in unique:
        streak += 1
        cursor -= timedelta(days=1)
    return streak


def earns_streak_bonus(streak: int) -> bool:
    """+5 on every 7th consecutive day (day 7, 14, 21, ...)."""
    return streak > 0 and streak % STREAK_BONUS_EVERY == 0
