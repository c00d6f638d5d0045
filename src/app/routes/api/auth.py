"""Bearer tokens for API clients (and sign-up without a browser)."""

from __future__ import annotations

from litestar import Controller, post
from litestar.exceptions import NotAuthorizedException

from app.lib.tokens import issue_token
from app.routes.api.schemas import SignUpRequest, TokenRequest, TokenResponse
from app.services.accounts import AccountService
from app.services.views import Me
from app.settings import Settings


class AuthController(Controller):
    path = "/auth"
    tags = ["auth"]

    @post("/token", status_code=200, summary="Exchange email and password for a bearer token")
    async def token(
        self, data: TokenRequest, accounts: AccountService, settings: Settings
    ) -> TokenResponse:
        viewer = await accounts.authenticate(data.email, data.password)
        if viewer is None:
            raise NotAuthorizedException("Wrong email or password.")
        return TokenResponse(token=issue_token(settings.secret_key, viewer))

    @post("/signup", status_code=201, summary="Create an account")
    async def signup(self, data: SignUpRequest, accounts: AccountService) -> Me:
        viewer = await accounts.sign_up(data.email, data.password, data.display_name)
        return await accounts.me(viewer.id)
