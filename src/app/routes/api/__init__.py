"""JSON API under /api/v1, documented at /schema."""

from litestar import Router

from app.lib.conditional import ConditionalGetMiddleware
from app.routes.api.auth import AuthController
from app.routes.api.challenges import ChallengeController
from app.routes.api.coach import CoachController
from app.routes.api.people import LeaderboardController, PeopleController

api_router = Router(
    path="/api/v1",
    route_handlers=[
        AuthController,
        ChallengeController,
        CoachController,
        LeaderboardController,
        PeopleController,
    ],
    middleware=[ConditionalGetMiddleware],
)
