"""Leaderboard, reputation and the signed-in member."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.params import Parameter

from app.lib.auth import PUBLIC_READ, member, requires_member
from app.services.accounts import AccountService
from app.services.challenges import ChallengeService
from app.services.reputation import MAX_BOARD, ReputationService
from app.services.views import Leaderboard, Me, Membership, Reputation


class LeaderboardController(Controller):
    path = "/leaderboard"
    tags = ["reputation"]

    @get("/", summary="Top members by reputation", opt=PUBLIC_READ)
    async def leaderboard(
        self,
        reputation: ReputationService,
        limit: Annotated[int, Parameter(ge=1, le=MAX_BOARD)] = 10,
    ) -> Leaderboard:
        return await reputation.leaderboard(limit)


class PeopleController(Controller):
    tags = ["reputation"]

    @get(
        "/users/{user_id:int}/reputation",
        summary="A member's points, rank and history",
        opt=PUBLIC_READ,
    )
    async def reputation(self, reputation: ReputationService, user_id: int) -> Reputation:
        return await reputation.for_user(user_id)

    @get("/me", guards=[requires_member], summary="The signed-in member")
    async def me(self, request: Request[Any, Any, Any], accounts: AccountService) -> Me:
        return await accounts.me(member(request).id)

    @get("/me/challenges", guards=[requires_member], summary="Your challenges and streaks")
    async def my_challenges(
        self, request: Request[Any, Any, Any], challenges: ChallengeService
    ) -> list[Membership]:
        return await challenges.memberships(member(request).id)
