"""Dependency providers: routes receive services by key, never clients."""

from __future__ import annotations

from typing import Any

from litestar.datastructures import State
from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncSession

from app.services.accounts import AccountService
from app.services.cache import CacheService
from app.services.challenges import ChallengeService
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


def provide_settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings


DEPENDENCIES: dict[str, Any] = {
    "settings": Provide(provide_settings, sync_to_thread=False),
    "challenges": Provide(provide_challenges),
    "reputation": Provide(provide_reputation),
    "accounts": Provide(provide_accounts),
}
