"""Read models: what services return and the cache stores (msgspec structs, cheap to encode)."""

from __future__ import annotations

from datetime import date, datetime

import msgspec


class ChallengeSummary(msgspec.Struct, kw_only=True):
    id: int
    title: str
    category: str
    participants: int
    duration_days: int
    description: str = ""


class ChallengeDetail(ChallengeSummary, kw_only=True):
    created_at: datetime
    updated_at: datetime


class ChallengePage(msgspec.Struct, kw_only=True):
    items: list[ChallengeSummary]
    total: int
    page: int
    pages: int
    per_page: int


class CheckInView(msgspec.Struct, kw_only=True):
    id: int
    user_id: int
    display_name: str
    day: date
    note: str
    created_at: datetime


class LeaderboardEntry(msgspec.Struct, kw_only=True):
    user_id: int
    display_name: str
    points: int
    rank: int


class Leaderboard(msgspec.Struct, kw_only=True):
    items: list[LeaderboardEntry]


class ReputationEntry(msgspec.Struct, kw_only=True):
    points: int
    reason: str
    ref_type: str
    ref_id: int
    created_at: datetime


class Reputation(msgspec.Struct, kw_only=True):
    user_id: int
    display_name: str
    points: int
    rank: int
    history: list[ReputationEntry]


class MemberPoints(msgspec.Struct, kw_only=True):
    """A member's cached total and history (their rank is cached per points value)."""

    display_name: str
    points: int
    history: list[ReputationEntry]


class Membership(msgspec.Struct, kw_only=True):
    """One member's standing in one challenge."""

    challenge_id: int
    title: str
    category: str
    duration_days: int
    check_ins: int
    streak: int
    checked_in_today: bool
    completed: bool


class Me(msgspec.Struct, kw_only=True):
    id: int
    email: str
    display_name: str
    reputation: int


class Viewer(msgspec.Struct, kw_only=True, frozen=True):
    """Who is making the request (from the session or a bearer token)."""

    id: int
    display_name: str
    via_token: bool = False
