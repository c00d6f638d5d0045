"""Fragments of the challenge pages: trending, search results, participants, check-ins, actions."""

from __future__ import annotations

from typing import Annotated

from litestar import get
from litestar.params import Parameter
from litestar.plugins.htmx import HTMXRequest, HTMXTemplate
from litestar.response import Template

from app.lib.auth import current_viewer
from app.lib.htmx import VARY_HX, hx_trigger_id, url_with
from app.services.challenges import ChallengeService

SEARCH_FORM_ID = "challenge-search"
"""id of the search form in pages/challenges.html: its requests push the page URL."""
TRENDING_COUNT = 6

Query = Annotated[str, Parameter(max_length=100)]
CategoryParam = Annotated[str, Parameter(max_length=40)]
PageNumber = Annotated[int, Parameter(ge=1, le=10_000)]


@get("/trending")
async def trending(challenges: ChallengeService) -> Template:
    items = await challenges.trending(TRENDING_COUNT)
    return Template("partials/trending.html", context={"challenges": items})


@get("/challenges")
async def challenge_results(
    request: HTMXRequest,
    challenges: ChallengeService,
    q: Query = "",
    category: CategoryParam = "",
    page: PageNumber = 1,
) -> Template:
    """Results for the active search. When the search form asked (HX-Trigger is its id),
    push the matching /challenges URL so reload and back work; lazy loads push nothing."""
    results = await challenges.search(q, category, page)
    from_form = hx_trigger_id(request) == SEARCH_FORM_ID
    count = f"{results.total} {'challenge' if results.total == 1 else 'challenges'} found."
    return HTMXTemplate(
        template_name="partials/challenge_results.html",
        context={
            "results": results,
            "q": q,
            "category": category,
            "announce": count if from_form else "",
        },
        push_url=url_with("/challenges", q=q, category=category, page=page) if from_form else None,
        headers={"Vary": f"{VARY_HX}, HX-Trigger"},
    )


@get("/challenges/{challenge_id:int}/participants")
async def challenge_participants(challenges: ChallengeService, challenge_id: int) -> Template:
    challenge = await challenges.get(challenge_id)
    return Template(
        "partials/participants.html",
        context={"challenge_id": challenge_id, "participants": challenge.participants},
    )


@get("/challenges/{challenge_id:int}/check-ins")
async def challenge_check_ins(challenges: ChallengeService, challenge_id: int) -> Template:
    items = await challenges.recent_check_ins(challenge_id)
    return Template(
        "partials/check_ins.html", context={"challenge_id": challenge_id, "check_ins": items}
    )


@get("/challenges/{challenge_id:int}/actions")
async def challenge_actions(
    request: HTMXRequest, challenges: ChallengeService, challenge_id: int
) -> Template:
    """Join / check-in controls for a member (visitors get a sign-in link, no lookup)."""
    viewer = current_viewer(request)
    membership = await challenges.membership(viewer.id, challenge_id) if viewer else None
    return Template(
        "partials/challenge_actions.html",
        context={"challenge_id": challenge_id, "membership": membership},
    )
