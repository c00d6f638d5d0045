"""Challenges: search, details, joining and checking in (with the reputation it earns)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import cast

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from app.db.models import Challenge, CheckIn, Participation, User
from app.services import cache_keys as ck
from app.services.cache import CacheService
from app.services.errors import ConflictError, ForbiddenError, NotFoundError
from app.services.reputation import ReputationService
from app.services.sql import SessionSource, UsesSession
from app.services.streaks import (
    CHECK_IN_POINTS,
    COMPLETION_POINTS,
    STREAK_BONUS_POINTS,
    current_streak,
    earns_streak_bonus,
)
from app.services.text import checked
from app.services.views import (
    ChallengeDetail,
    ChallengePage,
    ChallengeSummary,
    CheckInView,
    Membership,
)

PER_PAGE = 12
LIST_TTL = 60
DETAIL_TTL = 300
RECENT_CHECK_INS = 10
STREAK_LOOKBACK_DAYS = 400
TITLE_MIN, TITLE_MAX = 3, 120
DESCRIPTION_MAX = 4000
NOTE_MAX = 280


def today_utc() -> datetime:
    return datetime.now(UTC)


class ChallengeService(UsesSession):
    """Reads go through the cache; every write invalidates exactly what it changed."""

    def __init__(self, session: SessionSource, cache: CacheService) -> None:
        super().__init__(session)
        self.cache = cache
        self.reputation = ReputationService(self.session_source(), cache)

    # ---- reads -------------------------------------------------------------------------
    async def search(
        self, q: str = "", category: str = "", page: int = 1, per_page: int = PER_PAGE
    ) -> ChallengePage:
        q, category = q.strip().lower(), category.strip().lower()

        async def load() -> ChallengePage:
            return await self._search(q, category, page, per_page)

        return await self.cache.get_or_load(
            ck.challenge_list(q, category, page, per_page),
            load,
            type_=ChallengePage,
            ttl=LIST_TTL,
            group=ck.CHALLENGE_LISTS,
        )

    async def _search(self, q: str, category: str, page: int, per_page: int) -> ChallengePage:
        conditions = []
        if q:
            conditions.append(func.lower(Challenge.title).contains(q, autoescape=True))
        if category:
            conditions.append(Challenge.category == category)
        async with self.reading() as s:
            # The total rides along with the page (a window count): one query, not two.
            rows = (
                await s.execute(
                    select(Challenge, func.count().over())
                    .where(*conditions)
                    .order_by(Challenge.participant_count.desc(), Challenge.id)
                    .limit(per_page)
                    .offset((page - 1) * per_page)
                )
            ).all()
            if rows:
                total = int(rows[0][1])
            else:  # past the last page (or nothing matches): count on its own
                count = select(func.count()).select_from(Challenge).where(*conditions)
                total = 0 if page == 1 else int(await s.scalar(count) or 0)
            items = [_summary(c) for c, _ in rows]
        return ChallengePage(
            items=items,
            total=total,
            page=page,
            pages=max(1, math.ceil(total / per_page)),
            per_page=per_page,
        )

    async def trending(self, limit: int = 6) -> list[ChallengeSummary]:
        return (await self.search(page=1, per_page=limit)).items

    async def categories(self) -> list[str]:
        async def load() -> list[str]:
            async with self.reading() as s:
                rows = await s.scalars(
                    select(Challenge.category).distinct().order_by(Challenge.category)
                )
                return list(rows)

        return await self.cache.get_or_load(ck.categories(), load, type_=list[str], ttl=LIST_TTL)

    async def get(self, challenge_id: int) -> ChallengeDetail:
        async def load() -> ChallengeDetail | None:
            async with self.reading() as s:
                row = await s.get(Challenge, challenge_id, populate_existing=True)
                return _detail(row) if row else None

        detail = await self.cache.get_or_load(
            ck.challenge(challenge_id),
            load,
            type_=cast("type[ChallengeDetail | None]", ChallengeDetail | None),
            ttl=DETAIL_TTL,
        )
        if detail is None:
            raise NotFoundError(f"Challenge {challenge_id} does not exist.")
        return detail

    async def recent_check_ins(self, challenge_id: int) -> list[CheckInView]:
        """The latest check-ins; one cache read (a missing challenge is cached as None)."""

        async def load() -> list[CheckInView] | None:
            async with self.reading() as s:
                if await s.get(Challenge, challenge_id) is None:
                    return None
                rows = await s.execute(
                    select(CheckIn, User.display_name)
                    .join(User, User.id == CheckIn.user_id)
                    .where(CheckIn.challenge_id == challenge_id)
                    .order_by(CheckIn.created_at.desc(), CheckIn.id.desc())
                    .limit(RECENT_CHECK_INS)
                )
                return [
                    CheckInView(
                        id=c.id,
                        user_id=c.user_id,
                        display_name=name,
                        day=c.day,
                        note=c.note,
                        created_at=c.created_at,
                    )
                    for c, name in rows
                ]

        items = await self.cache.get_or_load(
            ck.recent_check_ins(challenge_id),
            load,
            type_=cast("type[list[CheckInView] | None]", list[CheckInView] | None),
            ttl=DETAIL_TTL,
        )
        if items is None:
            raise NotFoundError(f"Challenge {challenge_id} does not exist.")
        return items

    async def membership(self, user_id: int, challenge_id: int) -> Membership | None:
        rows = await self._memberships(user_id, challenge_id)
        return rows[0] if rows else None

    async def memberships(self, user_id: int) -> list[Membership]:
        return await self._memberships(user_id, None)

    async def _memberships(self, user_id: int, challenge_id: int | None) -> list[Membership]:
        stmt = (
            select(Participation, Challenge)
            .join(Challenge, Challenge.id == Participation.challenge_id)
            .where(Participation.user_id == user_id)
            .order_by(Participation.joined_at.desc())
        )
        if challenge_id is not None:
            stmt = stmt.where(Participation.challenge_id == challenge_id)
        today = today_utc().date()
        days_by_challenge: dict[int, list[date]] = {}
        async with self.reading() as s:
            pairs = list(await s.execute(stmt))
            if not pairs:
                return []
            day_rows = await s.execute(
                select(CheckIn.challenge_id, CheckIn.day).where(
                    CheckIn.user_id == user_id,
                    CheckIn.challenge_id.in_([c.id for _, c in pairs]),
                    CheckIn.day >= today - timedelta(days=STREAK_LOOKBACK_DAYS),
                )
            )
            for cid, day in day_rows:
                days_by_challenge.setdefault(cid, []).append(day)
        return [
            _membership(
                c,
                check_ins=p.check_in_count,
                days=days_by_challenge.get(c.id, []),
                completed=p.completed_at is not None,
                today=today,
            )
            for p, c in pairs
        ]

    # ---- writes ------------------------------------------------------------------------
    async def create(
        self, *, user_id: int, title: str, description: str, category: str, duration_days: int
    ) -> ChallengeDetail:
        challenge = Challenge(
            title=_title(title),
            description=_description(description),
            category=category.strip().lower(),
            duration_days=duration_days,
            created_by=user_id,
        )
        self.session.add(challenge)
        await self.session.commit()
        # A read of this id before it existed may have cached "not found".
        await self.cache.invalidate(
            ck.challenge(challenge.id), ck.recent_check_ins(challenge.id), ck.categories()
        )
        await self.cache.invalidate_group(ck.CHALLENGE_LISTS)
        return _detail(challenge)

    async def update(
        self,
        challenge_id: int,
        *,
        user_id: int,
        title: str | None = None,
        description: str | None = None,
        category: str | None = None,
    ) -> ChallengeDetail:
        challenge = await self.session.get(Challenge, challenge_id)
        if challenge is None:
            raise NotFoundError(f"Challenge {challenge_id} does not exist.")
        if challenge.created_by != user_id:
            raise ForbiddenError("Only the creator of a challenge can edit it.")
        if title is not None:
            challenge.title = _title(title)
        if description is not None:
            challenge.description = _description(description)
        if category is not None:
            challenge.category = category.strip().lower()
        await self.session.commit()
        await self.cache.invalidate(ck.challenge(challenge_id), ck.categories())
        await self.cache.invalidate_group(ck.CHALLENGE_LISTS)
        return _detail(challenge)

    async def join(self, user_id: int, challenge_id: int) -> Membership:
        challenge = await self.get(challenge_id)
        self.session.add(Participation(user_id=user_id, challenge_id=challenge_id))
        try:
            await self.session.flush()
        except IntegrityError:
            await self.session.rollback()
            raise ConflictError("You have already joined this challenge.") from None
        await self.session.execute(
            update(Challenge)
            .where(Challenge.id == challenge_id)
            .values(participant_count=Challenge.participant_count + 1)
        )
        await self.session.commit()
        await self.cache.invalidate(ck.challenge(challenge_id))
        await self.cache.invalidate_group(ck.CHALLENGE_LISTS)
        # A new participation has no check-ins: no need to read it back.
        return _membership(
            challenge, check_ins=0, days=[], completed=False, today=today_utc().date()
        )

    async def check_in(self, user_id: int, challenge_id: int, note: str = "") -> Membership:
        """Record today's check-in and award +10, +5 on every 7th day, +100 on completion."""
        note = checked(note, field="The note", minimum=0, maximum=NOTE_MAX, multiline=True)
        challenge = await self.get(challenge_id)
        participation = await self.session.scalar(
            select(Participation).where(
                Participation.user_id == user_id, Participation.challenge_id == challenge_id
            )
        )
        if participation is None:
            raise ConflictError("Join this challenge before checking in.")
        if participation.completed_at is not None:
            raise ConflictError("You have already completed this challenge.")
        now = today_utc()
        check_in = CheckIn(user_id=user_id, challenge_id=challenge_id, day=now.date(), note=note)
        self.session.add(check_in)
        try:
            await self.session.flush()
        except IntegrityError:
            await self.session.rollback()
            raise ConflictError("You have already checked in to this challenge today.") from None

        awarded = CHECK_IN_POINTS
        await self.reputation.award(user_id, CHECK_IN_POINTS, "check_in", "check_in", check_in.id)
        days = list(
            await self.session.scalars(
                select(CheckIn.day).where(
                    CheckIn.user_id == user_id, CheckIn.challenge_id == challenge_id
                )
            )
        )
        if earns_streak_bonus(current_streak(days, now.date())):
            awarded += STREAK_BONUS_POINTS
            await self.reputation.award(
                user_id, STREAK_BONUS_POINTS, "streak_bonus", "check_in", check_in.id
            )
        count = await self.session.scalar(
            update(Participation)
            .where(Participation.id == participation.id)
            .values(check_in_count=Participation.check_in_count + 1)
            .returning(Participation.check_in_count)
        )
        count = count or 0
        completed = count >= challenge.duration_days
        if completed:
            await self.session.execute(
                update(Participation)
                .where(Participation.id == participation.id)
                .values(completed_at=now)
            )
            awarded += COMPLETION_POINTS
            await self.reputation.award(
                user_id, COMPLETION_POINTS, "completion", "challenge", challenge_id
            )
        standing = await self.reputation.standing(user_id)
        await self.session.commit()
        await self.cache.invalidate(ck.recent_check_ins(challenge_id))
        await self.reputation.invalidate_for(user_id, awarded, standing)
        # Built from what this transaction read and wrote: no second round of queries.
        return _membership(
            challenge, check_ins=count, days=days, completed=completed, today=now.date()
        )


def _title(title: str) -> str:
    return checked(title, field="The title", minimum=TITLE_MIN, maximum=TITLE_MAX)


def _description(description: str) -> str:
    return checked(
        description, field="The description", minimum=0, maximum=DESCRIPTION_MAX, multiline=True
    )


def _membership(
    c: Challenge | ChallengeDetail,
    *,
    check_ins: int,
    days: list[date],
    completed: bool,
    today: date,
) -> Membership:
    return Membership(
        challenge_id=c.id,
        title=c.title,
        category=c.category,
        duration_days=c.duration_days,
        check_ins=check_ins,
        streak=current_streak(days, today),
        checked_in_today=today in days,
        completed=completed,
    )


def _summary(c: Challenge) -> ChallengeSummary:
    return ChallengeSummary(
        id=c.id,
        title=c.title,
        category=c.category,
        participants=c.participant_count,
        duration_days=c.duration_days,
        description=c.description[:160],
    )


def _detail(c: Challenge) -> ChallengeDetail:
    return ChallengeDetail(
        id=c.id,
        title=c.title,
        category=c.category,
        participants=c.participant_count,
        duration_days=c.duration_days,
        description=c.description,
        created_at=c.created_at,
        updated_at=c.updated_at,
    )
