"""Challenges API: search, details, create/edit, join and check in."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, patch, post
from litestar.params import Parameter

from app.lib.auth import PUBLIC_READ, member, requires_member
from app.routes.api.schemas import ChallengeCreate, ChallengeUpdate, CheckInRequest
from app.services.challenges import ChallengeService
from app.services.views import ChallengeDetail, ChallengePage, CheckInView, Membership

Query = Annotated[str, Parameter(max_length=100, description="Words in the title")]
CategoryParam = Annotated[str, Parameter(max_length=40)]
Page = Annotated[int, Parameter(ge=1, le=10_000)]


class ChallengeController(Controller):
    path = "/challenges"
    tags = ["challenges"]

    @get("/", summary="Search challenges", opt=PUBLIC_READ)
    async def search(
        self,
        challenges: ChallengeService,
        q: Query = "",
        category: CategoryParam = "",
        page: Page = 1,
    ) -> ChallengePage:
        return await challenges.search(q, category, page)

    @get("/{challenge_id:int}", summary="One challenge with its participant count", opt=PUBLIC_READ)
    async def detail(self, challenges: ChallengeService, challenge_id: int) -> ChallengeDetail:
        return await challenges.get(challenge_id)

    @get("/{challenge_id:int}/check-ins", summary="Recent check-ins", opt=PUBLIC_READ)
    async def check_ins(self, challenges: ChallengeService, challenge_id: int) -> list[CheckInView]:
        return await challenges.recent_check_ins(challenge_id)

    @post("/", guards=[requires_member], summary="Create a challenge")
    async def create(
        self, request: Request[Any, Any, Any], challenges: ChallengeService, data: ChallengeCreate
    ) -> ChallengeDetail:
        return await challenges.create(
            user_id=member(request).id,
            title=data.title,
            description=data.description,
            category=data.category,
            duration_days=data.duration_days,
        )

    @patch("/{challenge_id:int}", guards=[requires_member], summary="Edit your challenge")
    async def edit(
        self,
        request: Request[Any, Any, Any],
        challenges: ChallengeService,
        challenge_id: int,
        data: ChallengeUpdate,
    ) -> ChallengeDetail:
        return await challenges.update(
            challenge_id,
            user_id=member(request).id,
            title=data.title,
            description=data.description,
            category=data.category,
        )

    @post("/{challenge_id:int}/join", guards=[requires_member], summary="Join a challenge")
    async def join(
        self, request: Request[Any, Any, Any], challenges: ChallengeService, challenge_id: int
    ) -> Membership:
        return await challenges.join(member(request).id, challenge_id)

    @post("/{challenge_id:int}/check-ins", guards=[requires_member], summary="Check in for today")
    async def check_in(
        self,
        request: Request[Any, Any, Any],
        challenges: ChallengeService,
        challenge_id: int,
        data: CheckInRequest | None = None,
    ) -> Membership:
        note = data.note if data else ""
        return await challenges.check_in(member(request).id, challenge_id, note)
