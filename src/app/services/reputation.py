"""Reputation: a ledger of awards; totals live on users.reputation, ranks are derived.

What a write invalidates, exactly:
- a member's points and history (one key per member): only their own awards;
- a rank (one key per points value p: 1 + members above p): an award from `old` to `new`
  points passes everyone in [old, new), so it forgets rank(p) for exactly those p;
- leaderboards (one group): only when the member ends up within the longest board
  (MAX_BOARD). Points only ever grow, so a member outside it after an award was outside it
  before, and no board changed.
A read never shows a total, rank or board older than a completed write."""

from __future__ import annotations

from typing import cast

import msgspec
from sqlalchemy import and_, func, or_, select, update

from app.db.models import ReputationEvent, User
from app.services import cache_keys as ck
from app.services.cache import CacheService
from app.services.errors import NotFoundError
from app.services.sql import SessionSource, UsesSession
from app.services.views import (
    Leaderboard,
    LeaderboardEntry,
    MemberPoints,
    Reputation,
    ReputationEntry,
)

LEADERBOARD_TTL = 30
HISTORY_LIMIT = 50
MAX_BOARD = 100  # the longest leaderboard anyone can ask for
POINTS_SEEN_MAX = 100_000

_MEMBER_OR_NONE = cast("type[MemberPoints | None]", MemberPoints | None)
_POINTS_SEEN: dict[int, int] = {}
"""Per process: the points each member had when last read (a guess for the next read)."""


def _remember_points(user_id: int, points: int) -> None:
    if len(_POINTS_SEEN) >= POINTS_SEEN_MAX and user_id not in _POINTS_SEEN:
        _POINTS_SEEN.clear()  # a guess, not data: starting over only costs a round trip
    _POINTS_SEEN[user_id] = points


class ReputationService(UsesSession):
    def __init__(self, session: SessionSource, cache: CacheService) -> None:
        super().__init__(session)
        self.cache = cache

    async def award(
        self, user_id: int, points: int, reason: str, ref_type: str, ref_id: int
    ) -> None:
        """Add a ledger row and move the running total, inside the caller's transaction.
        The caller commits, then calls `invalidate_for`."""
        self.session.add(
            ReputationEvent(
                user_id=user_id, points=points, reason=reason, ref_type=ref_type, ref_id=ref_id
            )
        )
        await self.session.execute(
            update(User).where(User.id == user_id).values(reputation=User.reputation + points)
        )

    async def standing(self, user_id: int) -> Standing:
        """The member's total and whether they are within the top MAX_BOARD in the boards'
        order (points, then the older account first on a tie), in one query. Call it inside
        the award's transaction, after the awards."""
        points = select(User.reputation).where(User.id == user_id).scalar_subquery()
        ahead = (
            select(User.id)
            .where(
                or_(
                    User.reputation > points,
                    and_(User.reputation == points, User.id < user_id),
                )
            )
            .limit(MAX_BOARD)
        )
        row = (
            await self.session.execute(
                select(points, select(func.count()).select_from(ahead.subquery()).scalar_subquery())
            )
        ).one()
        return Standing(points=row[0] or 0, on_a_board=(row[1] or 0) < MAX_BOARD)

    async def invalidate_for(self, user_id: int, awarded: int, after: Standing) -> None:
        """After the awards commit: the member's entry, the ranks they passed, and the boards
        if they are on one."""
        passed = range(after.points - awarded, after.points)
        await self.cache.invalidate(ck.reputation(user_id), *(ck.rank(p) for p in passed))
        if after.on_a_board:
            await self.cache.invalidate_group(ck.LEADERBOARD)

    async def leaderboard(self, limit: int = 10) -> Leaderboard:
        if not 1 <= limit <= MAX_BOARD:  # longer boards would not be invalidated
            raise ValueError(f"limit must be 1..{MAX_BOARD}")

        async def load() -> Leaderboard:
            async with self.reading() as s:
                rows = list(
                    await s.execute(
                        select(User.id, User.display_name, User.reputation)
                        .order_by(User.reputation.desc(), User.id)
                        .limit(limit)
                    )
                )
            items: list[LeaderboardEntry] = []
            for position, (uid, name, points) in enumerate(rows, start=1):
                tied = items and items[-1].points == points
                rank = items[-1].rank if tied else position
                items.append(
                    LeaderboardEntry(user_id=uid, display_name=name, points=points, rank=rank)
                )
            return Leaderboard(items=items)

        return await self.cache.get_or_load(
            ck.leaderboard(limit),
            load,
            type_=Leaderboard,
            ttl=LEADERBOARD_TTL,
            group=ck.LEADERBOARD,
        )

    async def for_user(self, user_id: int) -> Reputation:
        """Points, rank and history: the member's entry plus the rank of their points. The
        rank of the points last seen rides along in the same cache round trip; a wrong guess
        costs a second read, never a wrong rank."""
        guess = _POINTS_SEEN.get(user_id)
        member, rank = await self.cache.get_or_load_peek(
            ck.reputation(user_id),
            lambda: self._load_member(user_id),
            type_=_MEMBER_OR_NONE,
            ttl=LEADERBOARD_TTL,
            peek=ck.rank(guess) if guess is not None else None,
            peek_type=int,
        )
        if member is None:
            raise NotFoundError(f"User {user_id} does not exist.")
        if rank is None or member.points != guess:
            rank = await self.rank(member.points)
        _remember_points(user_id, member.points)
        return Reputation(
            user_id=user_id,
            display_name=member.display_name,
            points=member.points,
            rank=rank,
            history=member.history,
        )

    async def rank(self, points: int) -> int:
        """1 + the number of members with more than `points`."""

        async def load() -> int:
            async with self.reading() as s:
                above = await s.scalar(
                    select(func.count()).select_from(User).where(User.reputation > points)
                )
            return (above or 0) + 1

        return await self.cache.get_or_load(ck.rank(points), load, type_=int, ttl=LEADERBOARD_TTL)

    async def _load_member(self, user_id: int) -> MemberPoints | None:
        async with self.reading() as s:
            # populate_existing: a loader reads the row, never the session's identity map
            user = await s.get(User, user_id, populate_existing=True)
            if user is None:
                return None
            events = list(
                await s.scalars(
                    select(ReputationEvent)
                    .where(ReputationEvent.user_id == user_id)
                    .order_by(ReputationEvent.created_at.desc(), ReputationEvent.id.desc())
                    .limit(HISTORY_LIMIT)
                )
            )
        return MemberPoints(
            display_name=user.display_name,
            points=user.reputation,
            history=[
                ReputationEntry(
                    points=e.points,
                    reason=e.reason,
                    ref_type=e.ref_type,
                    ref_id=e.ref_id,
                    created_at=e.created_at,
                )
                for e in events
            ],
        )


class Standing(msgspec.Struct, kw_only=True, frozen=True):
    points: int
    on_a_board: bool
