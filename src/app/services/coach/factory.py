"""Builds a CoachService from the app's shared parts (one gateway per process)."""

from __future__ import annotations

import structlog
from litestar.stores.base import Store
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.services.cache import CacheService
from app.services.challenges import ChallengeService
from app.services.coach.limits import limiter_for
from app.services.coach.memory import keeper_for
from app.services.coach.prompt import Member, member
from app.services.coach.service import CoachService, ProfileLoader
from app.services.coach.store import CoachStore, claim_lifetime
from app.services.errors import NotFoundError
from app.services.llm import LLMGateway
from app.services.reputation import ReputationService
from app.settings import Settings

log = structlog.get_logger("app.coach")


def profile_loader(
    sessions: async_sessionmaker[AsyncSession], cache: CacheService
) -> ProfileLoader:
    async def load(user_id: int) -> Member:
        try:
            async with sessions() as session:
                memberships = await ChallengeService(session, cache).memberships(user_id)
                try:
                    reputation = await ReputationService(session, cache).for_user(user_id)
                except NotFoundError:
                    reputation = None
        except (PoolTimeoutError, DBAPIError) as exc:
            # The answer's stream is already open: coach without the profile (and route
            # without the challenges) rather than break it.
            log.warning("member_profile_unavailable", error=type(exc).__name__, user_id=user_id)
            return member("member", None, [])
        name = reputation.display_name if reputation else "member"
        return member(name, reputation, memberships)

    return load


def build_coach(
    *,
    sessions: async_sessionmaker[AsyncSession],
    cache: CacheService,
    gateway: LLMGateway,
    settings: Settings,
    rate_limit_store: Store,
) -> CoachService:
    return CoachService(
        store=CoachStore(sessions, claim_lifetime(gateway.total_timeout, settings.db_pool_timeout)),
        gateway=gateway,
        settings=settings,
        limiter=limiter_for(rate_limit_store, settings.coach_rate_limit_per_minute),
        profile=profile_loader(sessions, cache),
        # the rolling summary is updated in the background, after the answer is saved
        after_answer=keeper_for(sessions, gateway, settings).schedule,
    )
