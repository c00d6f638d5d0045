"""Reputation: a ledger of awards; totals live on users.reputation, ranks are derived.

Any award can move every member's rank, so per-user reputation (which shows the rank) is one
cache group that each award bumps. Leaderboards are another group, bumped only when the
award's member ends up within the longest board (MAX_BOARD): points only ever grow, so a
member outside it after an award was outside it before, and no board changed. Either way a
read never shows a rank older than a completed write."""

from __future__ import annotations

from typing import cast

from sqlalchemy import func, select, update

from app.db.models import ReputationEvent, User
from app.services import cache_keys as ck
from app.services.cache import CacheService
from app.services.errors import NotFoundError
from app.services.sql import SessionSource, UsesSession
from app.services.views import Leaderboard, LeaderboardEntry, Reputation, ReputationEntry

LEADERBOARD_TTL = 30
HISTORY_LIMIT = 50
MAX_BOARD = 100  # the longest leaderboard anyone can ask for


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

    async def on_a_board(self, user_id: int) -> bool:
        """Is the member within the top MAX_BOARD (ties count as ahead)? Call it inside the
        award's transaction, after the awards; pass the answer to `invalidate_for`."""
        points = select(User.reputation).where(User.id == user_id).scalar_subquery()
        ahead = (
            select(User.id).where(User.reputation >= points, User.id != user_id).limit(MAX_BOARD)
        )
        count = await self.session.scalar(select(func.count()).select_from(ahead.subquery()))
        return (count or 0) < MAX_BOARD

    async def invalidate_for(self, *, on_a_board: bool) -> None:
        """After an award commits: every rank may have moved; boards only if they show them."""
        groups = (ck.RANKS, ck.LEADERBOARD) if on_a_board else (ck.RANKS,)
        await self.cache.invalidate_group(*groups)

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
        async def load() -> Reputation | None:
            async with self.reading() as s:
                # populate_existing: a loader reads the row, never the session's identity map
                user = await s.get(User, user_id, populate_existing=True)
                if user is None:
                    return None
                higher = await s.scalar(
                    select(func.count()).select_from(User).where(User.reputation > user.reputation)
                )
                events = list(
                    await s.scalars(
                        select(ReputationEvent)
                        .where(ReputationEvent.user_id == user_id)
                        .order_by(ReputationEvent.created_at.desc(), ReputationEvent.id.desc())
                        .limit(HISTORY_LIMIT)
                    )
                )
            return Reputation(
                user_id=user.id,
                display_name=user.display_name,
                points=user.reputation,
                rank=(higher or 0) + 1,
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

        result = await self.cache.get_or_load(
            ck.reputation(user_id),
            load,
            type_=cast("type[Reputation | None]", Reputation | None),
            ttl=LEADERBOARD_TTL,
            group=ck.RANKS,
        )
        if result is None:
            raise NotFoundError(f"User {user_id} does not exist.")
        return result
