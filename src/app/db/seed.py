"""Idempotent seed data: `demo` for trying the app, `load` for benchmarks.

Reputation events are derived by replaying the real rules over each member's check-in
history, so seeded totals, streak bonuses and completions are exactly what the app would
have awarded."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.engine import make_engine, make_sessionmaker
from app.db.models import Challenge, CheckIn, Participation, ReputationEvent, User
from app.db.seed_data import CATEGORIES, DESCRIPTIONS, FIRST_NAMES, LAST_NAMES, NOTES
from app.services.streaks import (
    CHECK_IN_POINTS,
    COMPLETION_POINTS,
    STREAK_BONUS_POINTS,
    earns_streak_bonus,
)
from app.settings import Settings, get_settings

DEMO_EMAIL = "demo@momentum.local"
DEMO_PASSWORD = "momentum-demo"  # noqa: S105 - documented demo account
LOAD_PASSWORD = "momentum-load"  # noqa: S105 - documented load-test accounts
BATCH = 5000


@dataclass(frozen=True)
class Scale:
    name: str
    users: int
    challenges: int
    joins_per_user: tuple[int, int]
    history_days: int
    marker_email: str
    named_accounts: int = 0


SCALES = {
    "demo": Scale("demo", 200, 60, (2, 5), 56, DEMO_EMAIL),
    "load": Scale("load", 10_000, 500, (2, 4), 30, "load-0001@momentum.local", 1000),
}


class _Ids:
    """Hands out explicit ids so rows can reference each other before they are inserted."""

    def __init__(self, start: int) -> None:
        self.next = start

    def take(self) -> int:
        self.next += 1
        return self.next


async def seed(scale_name: str = "demo", settings: Settings | None = None) -> dict[str, int]:
    scale = SCALES[scale_name]
    settings = settings or get_settings()
    engine = make_engine(settings, direct=True)
    started = time.perf_counter()
    try:
        async with make_sessionmaker(engine)() as session:
            exists = await session.scalar(select(User.id).where(User.email == scale.marker_email))
            if exists:
                print(f"seed: {scale.name} data already present, nothing to do")
                return {}
            counts = await _seed(session, scale)
            await session.commit()
            if engine.dialect.name == "postgresql":
                await _reset_sequences(session)
                await session.execute(text("ANALYZE"))
                await session.commit()
    finally:
        await engine.dispose()
    took = time.perf_counter() - started
    print(
        f"seed: {scale.name} done in {took:.1f}s: "
        + ", ".join(f"{k}={v}" for k, v in counts.items())
    )
    return counts


async def _max_id(session: AsyncSession, model: Any) -> int:
    return int(await session.scalar(select(func.coalesce(func.max(model.id), 0))) or 0)


async def _seed(session: AsyncSession, scale: Scale) -> dict[str, int]:
    rng = random.Random(f"momentum-{scale.name}")
    hasher = PasswordHasher()
    member_hash = hasher.hash(f"unguessable-{rng.random()}")
    now = datetime.now(UTC)
    today = now.date()

    user_ids = _Ids(await _max_id(session, User))
    users: list[dict[str, Any]] = []
    if scale.name == "demo":
        users.append(
            _user(user_ids.take(), DEMO_EMAIL, "Demo Member", hasher.hash(DEMO_PASSWORD), now)
        )
    load_hash = hasher.hash(LOAD_PASSWORD) if scale.named_accounts else member_hash
    for n in range(1, scale.named_accounts + 1):
        users.append(
            _user(user_ids.take(), f"load-{n:04d}@momentum.local", f"Load {n:04d}", load_hash, now)
        )
    while len(users) < scale.users:
        uid = user_ids.take()
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        users.append(
            _user(uid, f"{scale.name}-member-{uid}@momentum.local", name, member_hash, now)
        )

    challenge_ids = _Ids(await _max_id(session, Challenge))
    challenges: list[dict[str, Any]] = []
    titles = [(cat, title) for cat, names in CATEGORIES.items() for title in names]
    for i in range(scale.challenges):
        category, title = titles[i % len(titles)]
        suffix = "" if i < len(titles) else f" #{i // len(titles) + 1}"
        challenges.append(
            {
                "id": challenge_ids.take(),
                "title": f"{title}{suffix}",
                "category": category,
                "description": rng.choice(DESCRIPTIONS),
                "duration_days": rng.choice([7, 14, 21, 30, 30, 60]),
                "participant_count": 0,
                "created_at": now,
                "updated_at": now,
                "created_by": None,
            }
        )

    part_ids = _Ids(await _max_id(session, Participation))
    check_ids = _Ids(await _max_id(session, CheckIn))
    participations: list[dict[str, Any]] = []
    check_ins: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    points: dict[int, int] = {}
    for user in users:
        joined = rng.sample(challenges, rng.randint(*scale.joins_per_user))
        diligence = rng.uniform(0.55, 0.95)
        for challenge in joined:
            challenge["participant_count"] += 1
            start = today - timedelta(days=rng.randint(3, scale.history_days))
            part = {
                "id": part_ids.take(),
                "user_id": user["id"],
                "challenge_id": challenge["id"],
                "joined_at": _at(start),
                "completed_at": None,
                "check_in_count": 0,
            }
            participations.append(part)
            _replay(
                rng,
                user["id"],
                challenge,
                part,
                start,
                today,
                diligence,
                check_ids,
                check_ins,
                events,
                points,
            )

    for user in users:
        user["reputation"] = points.get(user["id"], 0)
    for model, rows in (
        (User, users),
        (Challenge, challenges),
        (Participation, participations),
        (CheckIn, check_ins),
        (ReputationEvent, events),
    ):
        for i in range(0, len(rows), BATCH):
            await session.execute(insert(model), rows[i : i + BATCH])
    return {
        "users": len(users),
        "challenges": len(challenges),
        "participations": len(participations),
        "check_ins": len(check_ins),
        "reputation_events": len(events),
    }


def _replay(
    rng: random.Random,
    user_id: int,
    challenge: dict[str, Any],
    part: dict[str, Any],
    start: date,
    today: date,
    diligence: float,
    check_ids: _Ids,
    check_ins: list[dict[str, Any]],
    events: list[dict[str, Any]],
    points: dict[int, int],
) -> None:
    """Walk the days from `start` to yesterday, checking in with probability `diligence`,
    and award points exactly as ChallengeService.check_in does."""
    streak, day = 0, start
    while day < today:
        if rng.random() < diligence:
            cid = check_ids.take()
            at = _at(day)
            check_ins.append(
                {
                    "id": cid,
                    "user_id": user_id,
                    "challenge_id": challenge["id"],
                    "day": day,
                    "note": rng.choice(NOTES),
                    "created_at": at,
                }
            )
            streak += 1
            part["check_in_count"] += 1
            _award(events, points, user_id, CHECK_IN_POINTS, "check_in", "check_in", cid, at)
            if earns_streak_bonus(streak):
                _award(
                    events,
                    points,
                    user_id,
                    STREAK_BONUS_POINTS,
                    "streak_bonus",
                    "check_in",
                    cid,
                    at,
                )
            if part["check_in_count"] >= challenge["duration_days"]:
                part["completed_at"] = at
                _award(
                    events,
                    points,
                    user_id,
                    COMPLETION_POINTS,
                    "completion",
                    "challenge",
                    challenge["id"],
                    at,
                )
                return
        else:
            streak = 0
        day += timedelta(days=1)


def _award(
    events: list[dict[str, Any]],
    points: dict[int, int],
    user_id: int,
    amount: int,
    reason: str,
    ref_type: str,
    ref_id: int,
    at: datetime,
) -> None:
    events.append(
        {
            "user_id": user_id,
            "points": amount,
            "reason": reason,
            "ref_type": ref_type,
            "ref_id": ref_id,
            "created_at": at,
        }
    )
    points[user_id] = points.get(user_id, 0) + amount


def _user(uid: int, email: str, name: str, password_hash: str, now: datetime) -> dict[str, Any]:
    return {
        "id": uid,
        "email": email,
        "display_name": name,
        "password_hash": password_hash,
        "reputation": 0,
        "created_at": now,
    }


def _at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 7, 30, tzinfo=UTC)


async def _reset_sequences(session: AsyncSession) -> None:
    """Explicit ids leave PostgreSQL sequences behind: move them past the seeded rows."""
    for table in ("users", "challenges", "participations", "check_ins", "reputation_events"):
        await session.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608 - fixed names
                f"(SELECT COALESCE(MAX(id), 1) FROM {table}))"
            )
        )
    await session.commit()
