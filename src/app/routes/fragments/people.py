"""Fragments about people: leaderboard, a member's reputation, the member's own challenges."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get
from litestar.params import Parameter
from litestar.response import Template

from app.lib.auth import member, requires_member
from app.services.challenges import ChallengeService
from app.services.reputation import MAX_BOARD, ReputationService

Limit = Annotated[int, Parameter(ge=1, le=MAX_BOARD)]
HistoryLimit = Annotated[int, Parameter(ge=0, le=50)]


@get("/leaderboard")
async def leaderboard(reputation: ReputationService, limit: Limit = 10) -> Template:
    board = await reputation.leaderboard(limit)
    return Template("partials/leaderboard.html", context={"leaderboard": board, "limit": limit})


@get("/users/{user_id:int}/reputation")
async def user_reputation(
    reputation: ReputationService, user_id: int, history: HistoryLimit = 50
) -> Template:
    rep = await reputation.for_user(user_id)
    return Template(
        "partials/reputation.html",
        context={"reputation": rep, "user_id": user_id, "history_limit": history},
    )


@get("/my-challenges", guards=[requires_member])
async def my_challenges(request: Request[Any, Any, Any], challenges: ChallengeService) -> Template:
    memberships = await challenges.memberships(member(request).id)
    return Template("partials/my_challenges.html", context={"memberships": memberships})
