"""HTMX fragments: one GET endpoint per swappable section, all under /fragments/.

Each renders the same `partials/<name>.html` that the pages include as a skeleton (see
templates/partials/_lazy.html). Fragments never branch on HX-Request; the search results
only add an HX-Push-Url header when the search form asked, so they send `Vary`.
"""

from __future__ import annotations

from litestar import Router

from app.lib.conditional import ConditionalGetMiddleware
from app.routes.fragments.challenges import (
    challenge_actions,
    challenge_check_ins,
    challenge_participants,
    challenge_results,
    trending,
)
from app.routes.fragments.people import leaderboard, my_challenges, user_reputation

fragments_router = Router(
    path="/fragments",
    route_handlers=[
        trending,
        challenge_results,
        challenge_participants,
        challenge_check_ins,
        challenge_actions,
        leaderboard,
        my_challenges,
        user_reputation,
    ],
    include_in_schema=False,
    middleware=[ConditionalGetMiddleware],
)

__all__ = ["fragments_router"]
