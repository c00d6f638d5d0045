from datetime import date, timedelta

import pytest

from app.services.streaks import current_streak, earns_streak_bonus

TODAY = date(2026, 11, 26)


def days_back(*offsets: int) -> list[date]:
    return [TODAY - timedelta(days=o) for o in offsets]


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ([], 0),
        (days_back(0), 1),
        (days_back(1), 1),  # alive until a day is missed
        (days_back(2), 0),
        (days_back(0, 1, 2, 3), 4),
        (days_back(1, 2, 3), 3),
        (days_back(0, 1, 3, 4, 5), 2),
        (days_back(0, 0, 1), 2),  # duplicates count once
    ],
)
def test_current_streak(days: list[date], expected: int) -> None:
    assert current_streak(days, TODAY) == expected


@pytest.mark.parametrize(
    ("streak", "bonus"), [(0, False), (6, False), (7, True), (8, False), (14, True)]
)
def test_streak_bonus_every_seventh_day(streak: int, bonus: bool) -> None:
    assert earns_streak_bonus(streak) is bonus
