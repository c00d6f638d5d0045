"""Accounts: sign-up, password checks (argon2, off the event loop) and the member profile."""

from __future__ import annotations

import asyncio
import re
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.db.models import User
from app.services.cache import CacheService
from app.services.errors import ConflictError, InvalidInputError, NotFoundError
from app.services.reputation import ReputationService
from app.services.sql import SessionSource, UsesSession
from app.services.text import text_problem
from app.services.views import Me, Viewer

SPACES_ONLY = "Your password can't be only spaces."
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 256


@lru_cache(maxsize=1)
def hasher() -> PasswordHasher:
    return PasswordHasher()


def normalize_email(email: str) -> str:
    return email.strip().lower()


def validate_sign_up(email: str, password: str, display_name: str) -> dict[str, str]:
    """Field -> message for every problem; empty when the form is fine."""
    problems: dict[str, str] = {}
    if not EMAIL_RE.match(normalize_email(email)):
        problems["email"] = "Enter a valid email address, like you@example.com."
    if len(password) < MIN_PASSWORD:
        problems["password"] = f"Use at least {MIN_PASSWORD} characters for your password."
    elif len(password) > MAX_PASSWORD:
        problems["password"] = f"Use at most {MAX_PASSWORD} characters for your password."
    elif not password.strip():
        problems["password"] = SPACES_ONLY
    name_problem = text_problem(
        display_name.strip(), field="Your display name", minimum=2, maximum=60
    )
    if name_problem:
        problems["display_name"] = name_problem
    return problems


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(hasher().hash, password)


async def password_matches(password_hash: str, password: str) -> bool:
    def verify() -> bool:
        try:
            return hasher().verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


class AccountService(UsesSession):
    """Sign-up and password checks (never cached)."""

    def __init__(self, session: SessionSource, cache: CacheService) -> None:
        super().__init__(session)
        self.cache = cache

    async def sign_up(self, email: str, password: str, display_name: str) -> Viewer:
        problems = validate_sign_up(email, password, display_name)
        if problems:
            raise InvalidInputError(" ".join(problems.values()))
        user = User(
            email=normalize_email(email),
            password_hash=await hash_password(password),
            display_name=display_name.strip(),
        )
        self.session.add(user)
        reputation = ReputationService(self.session_source(), self.cache)
        try:
            await self.session.flush()
        except IntegrityError:
            await self.session.rollback()
            raise ConflictError("An account with this email already exists.") from None
        # With fewer than MAX_BOARD members, a new member (0 points) joins the boards' tail.
        standing = await reputation.standing(user.id)
        await self.session.commit()
        await reputation.invalidate_for(user.id, 0, standing)
        return Viewer(id=user.id, display_name=user.display_name)

    async def authenticate(self, email: str, password: str) -> Viewer | None:
        """The member these credentials belong to, or None (same cost either way)."""
        user = await self.session.scalar(
            select(User).where(User.email == normalize_email(email)[:254])
        )
        if user is None:
            await password_matches(_dummy_hash(), password)  # even out timing
            return None
        if not await password_matches(user.password_hash, password[:MAX_PASSWORD]):
            return None
        return Viewer(id=user.id, display_name=user.display_name)

    async def me(self, user_id: int) -> Me:
        user = await self.session.get(User, user_id)
        if user is None:
            raise NotFoundError("Your account no longer exists.")
        return Me(
            id=user.id, email=user.email, display_name=user.display_name, reputation=user.reputation
        )

    async def count(self) -> int:
        return await self.session.scalar(select(func.count()).select_from(User)) or 0


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hasher().hash("momentum-timing-equalizer")
