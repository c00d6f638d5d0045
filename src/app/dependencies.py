"""Dependency providers: routes receive services by key, never clients."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide
from litestar.types import Scope
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


def _request_session(state: State, scope: Scope) -> Callable[[], AsyncSession]:
    """Opens the request's session on first use; the SQLAlchemy plugin closes it (or not,
    if it was never opened) when the response is sent."""
    config: SQLAlchemyAsyncConfig = state.db_config
    return functools.partial(config.provide_session, state, scope)


async def provide_challenges(state: State, scope: Scope) -> ChallengeService:
    return ChallengeService(_request_session(state, scope), _cache(state))


async def provide_reputation(state: State, scope: Scope) -> ReputationService:
    return ReputationService(_request_session(state, scope), _cache(state))


async def provide_accounts(state: State, scope: Scope) -> AccountService:
    return AccountService(_request_session(state, scope), _cache(state))


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
