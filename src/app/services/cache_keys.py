"""Every cache key the app uses, in one place, so writes can invalidate exactly them."""

from __future__ import annotations

from app.services.cache import key

CHALLENGE_LISTS = "challenge-lists"  # group: every search/list page
LEADERBOARD = "leaderboard"  # group: every leaderboard length


def challenge(challenge_id: int) -> str:
    return key("challenge", challenge_id)


def challenge_list(q: str, category: str, page: int, per_page: int) -> str:
    return key("challenge-list", q, category, page, per_page)


def categories() -> str:
    return key("categories")


def recent_check_ins(challenge_id: int) -> str:
    return key("recent-check-ins", challenge_id)


def leaderboard(limit: int) -> str:
    return key("leaderboard", limit)


def reputation(user_id: int) -> str:
    return key("reputation", user_id)


def rank(points: int) -> str:
    return key("rank", points)
