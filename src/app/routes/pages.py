"""Full HTML pages (light shells whose sections load from /fragments/...) and form actions.

Every form works without JS (POST, then 303 back to a page) and with htmx (the same URL
answers with the updated partial plus an HX-Trigger event). Templates read the viewer from
the request scope, so handlers only pass what they loaded.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.plugins.htmx import HTMXRequest, HTMXTemplate
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from app.lib.auth import current_viewer, member, requires_member, sign_in, sign_out
from app.lib.htmx import VARY_HX, is_htmx, safe_next
from app.routes.coach_pages import coach_page_router
from app.services.accounts import AccountService, validate_sign_up
from app.services.challenges import NOTE_MAX, ChallengeService
from app.services.errors import ConflictError
from app.services.reputation import ReputationService

Query = Annotated[str, Parameter(max_length=100)]
CategoryParam = Annotated[str, Parameter(max_length=40)]
PageNumber = Annotated[int, Parameter(ge=1, le=10_000)]
NextParam = Annotated[str, Parameter(query="next", max_length=2000)]
LEADERBOARD_SIZE = 50


class LoginForm(msgspec.Struct, kw_only=True):
    email: str = ""
    password: str = ""
    next: str = ""


class SignUpForm(msgspec.Struct, kw_only=True):
    email: str = ""
    password: str = ""
    display_name: str = ""
    next: str = ""


class CheckInForm(msgspec.Struct, kw_only=True):
    note: str = ""


def _see_other(path: str) -> Redirect:
    return Redirect(path, status_code=HTTP_303_SEE_OTHER)


# ---- pages ---------------------------------------------------------------------------------
@get("/", name="home", include_in_schema=False)
async def home() -> Template:
    """Visitors: trending + leaderboard; members: their reputation and challenges."""
    return Template("pages/home.html")


@get("/challenges", name="challenges", include_in_schema=False)
async def challenges_page(
    challenges: ChallengeService, q: Query = "", category: CategoryParam = "", page: PageNumber = 1
) -> Template:
    """Search form (with the category list) and a skeleton of the results."""
    categories = await challenges.categories()
    return Template(
        "pages/challenges.html",
        context={"categories": categories, "q": q, "category": category, "page": page},
    )


@get("/challenges/{challenge_id:int}", name="challenge", include_in_schema=False)
async def challenge_page(challenges: ChallengeService, challenge_id: int) -> Template:
    return Template(
        "pages/challenge.html", context={"challenge": await challenges.get(challenge_id)}
    )


@get("/leaderboard", name="leaderboard", include_in_schema=False)
async def leaderboard_page(reputation: ReputationService) -> Template:
    # The board is this page's only content (and its largest paint): render it in place
    # from the cache instead of a lazy section, which saves a round trip and a swap.
    board = await reputation.leaderboard(LEADERBOARD_SIZE)
    return Template(
        "pages/leaderboard.html", context={"limit": LEADERBOARD_SIZE, "leaderboard": board}
    )


@get("/users/{user_id:int}", name="user", include_in_schema=False)
async def user_page(reputation: ReputationService, user_id: int) -> Template:
    return Template("pages/user.html", context={"reputation": await reputation.for_user(user_id)})


# ---- sign in / up / out ----------------------------------------------------------------
@get("/login", name="login", include_in_schema=False)
async def login_page(request: Request[Any, Any, Any], next_: NextParam = "") -> Response[Any]:
    if current_viewer(request) is not None:
        return _see_other(safe_next(next_))
    return Template(
        "pages/login.html", context={"next": safe_next(next_), "email": "", "error": ""}
    )


@post("/login", include_in_schema=False)
async def login(
    request: Request[Any, Any, Any],
    accounts: AccountService,
    data: Annotated[LoginForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Response[Any]:
    target = safe_next(data.next)
    viewer = await accounts.authenticate(data.email, data.password)
    if viewer is None:
        return Template(
            "pages/login.html",
            context={"next": target, "email": data.email, "error": "Wrong email or password."},
            status_code=401,
        )
    sign_in(request, viewer)
    return _see_other(target)


@get("/signup", name="signup", include_in_schema=False)
async def signup_page(request: Request[Any, Any, Any], next_: NextParam = "") -> Response[Any]:
    if current_viewer(request) is not None:
        return _see_other(safe_next(next_))
    return Template("pages/signup.html", context=_signup_context(SignUpForm(next=next_), {}))


@post("/signup", include_in_schema=False)
async def signup(
    request: Request[Any, Any, Any],
    accounts: AccountService,
    data: Annotated[SignUpForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Response[Any]:
    problems = validate_sign_up(data.email, data.password, data.display_name)
    if problems:
        return Template(
            "pages/signup.html", context=_signup_context(data, problems), status_code=422
        )
    try:
        viewer = await accounts.sign_up(data.email, data.password, data.display_name)
    except ConflictError as exc:
        errors = {"email": exc.message}
        return Template("pages/signup.html", context=_signup_context(data, errors), status_code=409)
    sign_in(request, viewer)
    return _see_other(safe_next(data.next))


def _signup_context(data: SignUpForm, errors: dict[str, str]) -> dict[str, Any]:
    return {
        "next": safe_next(data.next),
        "email": data.email,
        "display_name": data.display_name,
        "errors": errors,
    }


@post("/logout", include_in_schema=False)
async def logout(request: Request[Any, Any, Any]) -> Redirect:
    sign_out(request)
    return _see_other("/")


# ---- challenge actions (form posts; htmx gets the actions partial back) --------------------
@post("/challenges/{challenge_id:int}/join", guards=[requires_member], include_in_schema=False)
async def join(
    request: HTMXRequest, challenges: ChallengeService, challenge_id: int
) -> Response[Any]:
    try:
        membership = await challenges.join(member(request).id, challenge_id)
    except ConflictError as exc:
        if not is_htmx(request):
            raise
        return await _actions_as_they_are(request, challenges, challenge_id, exc, "joined")
    if not is_htmx(request):
        return _see_other(f"/challenges/{challenge_id}")
    return HTMXTemplate(
        template_name="partials/challenge_actions.html",
        context={
            "challenge_id": challenge_id,
            "membership": membership,
            "announce": f"You joined {membership.title}.",
        },
        trigger_event="joined",
        after="receive",
        headers={"Vary": VARY_HX},
    )


@post("/challenges/{challenge_id:int}/check-in", guards=[requires_member], include_in_schema=False)
async def check_in(
    request: HTMXRequest,
    challenges: ChallengeService,
    challenge_id: int,
    data: Annotated[CheckInForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Response[Any]:
    note = data.note.strip()[:NOTE_MAX]
    try:
        membership = await challenges.check_in(member(request).id, challenge_id, note)
    except ConflictError as exc:
        if not is_htmx(request):
            raise
        return await _actions_as_they_are(request, challenges, challenge_id, exc, "checked-in")
    if not is_htmx(request):
        return _see_other(f"/challenges/{challenge_id}")
    days = "day" if membership.streak == 1 else "days"
    return HTMXTemplate(
        template_name="partials/challenge_actions.html",
        context={
            "challenge_id": challenge_id,
            "membership": membership,
            "announce": f"Checked in for today. Streak: {membership.streak} {days}.",
        },
        trigger_event="checked-in",
        after="receive",
        headers={"Vary": VARY_HX},
    )


async def _actions_as_they_are(
    request: HTMXRequest,
    challenges: ChallengeService,
    challenge_id: int,
    exc: ConflictError,
    event: str,
) -> Response[Any]:
    """Already done (in another tab, say): the actions as they are now, with the reason, in
    place of the stale ones; `event` refreshes the sections that show the counts."""
    membership = await challenges.membership(member(request).id, challenge_id)
    return HTMXTemplate(
        template_name="partials/challenge_actions.html",
        context={"challenge_id": challenge_id, "membership": membership, "announce": exc.message},
        trigger_event=event,
        after="receive",
        headers={"Vary": VARY_HX},
    )


page_router = Router(
    path="/",
    route_handlers=[
        home,
        challenges_page,
        challenge_page,
        leaderboard_page,
        user_page,
        coach_page_router,  # /coach and its form actions and stream (routes/coach_pages.py)
        login_page,
        login,
        signup_page,
        signup,
        logout,
        join,
        check_in,
    ],
    include_in_schema=False,
)
