"""A member who ties their way onto a cached board shows there at once."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from app.db.engine import make_engine, make_sessionmaker
from app.db.migrate import upgrade
from app.db.models import Challenge, Participation, User
from app.services import reputation
from app.services.cache import CacheService, MemoryBackend
from app.services.challenges import ChallengeService
from app.services.reputation import ReputationService
from app.settings import get_settings


async def test_tying_onto_the_board_refreshes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Boards order ties by account age: the oldest account, reaching the points of the last
    member on a full board, enters it and pushes that member off."""
    monkeypatch.setattr(reputation, "MAX_BOARD", 3)
    settings = replace(get_settings(), database_url=f"sqlite+aiosqlite:///{tmp_path / 'ties.db'}")
    await asyncio.to_thread(upgrade, "head", settings.migration_url)
    engine = make_engine(settings)
    sessions = make_sessionmaker(engine)
    cache = CacheService(MemoryBackend())
    try:
        async with sessions() as s:
            users = [
                User(email=f"t{i}@x.test", password_hash="!", display_name=f"T{i}")
                for i in range(4)
            ]
            s.add_all(users)
            challenge = Challenge(title="Ties", category="fit", duration_days=30)
            s.add(challenge)
            await s.flush()
            s.add_all(Participation(user_id=u.id, challenge_id=challenge.id) for u in users)
            await s.commit()
            oldest, *others = [u.id for u in users]
            cid = challenge.id
        for uid in others:
            async with sessions() as s:
                await ChallengeService(s, cache).check_in(uid, cid)
        async with sessions() as s:
            board = await ReputationService(s, cache).leaderboard(3)  # cached now
        assert oldest not in [e.user_id for e in board.items]
        async with sessions() as s:
            await ChallengeService(s, cache).check_in(oldest, cid)
        async with sessions() as s:
            board = await ReputationService(s, cache).leaderboard(3)
        assert [e.user_id for e in board.items] == [oldest, *others[:2]]
    finally:
        await engine.dispose()
