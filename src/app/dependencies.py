"""Dependency providers: routes receive services by key, never clients."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncSession

from app.services.accounts import AccountService
from app.services.cache import CacheService
from app.services.challenges import ChallengeService
from app.services.coach.factory import build_coach
from app.services.coach.service import CoachService
from app.services.reputation import ReputationService
from app.settings import Settings


def _cache(state: State) -> CacheService:
    cache: CacheService = state.cache
    return cache


async def provide_challenges(db_session: AsyncSession, state: State) -> ChallengeService:
    return ChallengeService(db_session, _cache(state))


async def provide_reputation(db_session: AsyncSession, state: State) -> ReputationService:
    return ReputationService(db_session, _cache(state))


async def provide_accounts(db_session: AsyncSession) -> AccountService:
    return AccountService(db_session)


async def provide_coach(state: State, request: Request[Any, Any, Any]) -> CoachService:
    return build_coach(
        sessions=state.sessions,
        cache=_cache(state),
        gateway=state.gateway,
        settings=state.settings,
        rate_limit_store=request.app.stores.get("rate_limit"),
    )


def provide_settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings


DEPENDENCIES: dict[str, Any] = {
    "settings": Provide(provide_settings, sync_to_thread=False),
    "challenges": Provide(provide_challenges),
    "reputation": Provide(provide_reputation),
    "accounts": Provide(provide_accounts),
    "coach": Provide(provide_coach),
}
