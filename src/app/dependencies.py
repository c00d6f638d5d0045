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


# Providers take the raw scope: a `state: State` parameter makes Litestar build a copy of
# the app state (with its lock) on every request, which cost ~5 % of a cached read.
def _state(scope: Scope) -> State:
    return scope["app"].state


def _cache(state: State) -> CacheService:
    cache: CacheService = state.cache
    return cache


def _request_session(state: State, scope: Scope) -> Callable[[], AsyncSession]:
    """Opens the request's session on first use; the SQLAlchemy plugin closes it (or not,
    if it was never opened) when the response is sent."""
    config: SQLAlchemyAsyncConfig = state.db_config
    return functools.partial(config.provide_session, state, scope)


def provide_challenges(scope: Scope) -> ChallengeService:
    state = _state(scope)
    return ChallengeService(_request_session(state, scope), _cache(state))


def provide_reputation(scope: Scope) -> ReputationService:
    state = _state(scope)
    return ReputationService(_request_session(state, scope), _cache(state))


def provide_accounts(scope: Scope) -> AccountService:
    state = _state(scope)
    return AccountService(_request_session(state, scope), _cache(state))


def provide_coach(request: Request[Any, Any, Any]) -> CoachService:
    state = _state(request.scope)
    return build_coach(
        sessions=state.sessions,
        cache=_cache(state),
        gateway=state.gateway,
        settings=state.settings,
        rate_limit_store=request.app.stores.get("rate_limit"),
    )


def provide_settings(scope: Scope) -> Settings:
    settings: Settings = _state(scope).settings
    return settings


_PROVIDERS: dict[str, Callable[..., Any]] = {
    "settings": provide_settings,
    "challenges": provide_challenges,
    "reputation": provide_reputation,
    "accounts": provide_accounts,
    "coach": provide_coach,
}
# All cheap and synchronous: run inline, never in a thread.
DEPENDENCIES: dict[str, Any] = {
    name: Provide(provider, sync_to_thread=False) for name, provider in _PROVIDERS.items()
}
