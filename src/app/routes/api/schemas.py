"""Request bodies of the JSON API: msgspec structs with limits, so bad input is a 400."""

from __future__ import annotations

from typing import Annotated

import msgspec

Title = Annotated[str, msgspec.Meta(min_length=3, max_length=120)]
Description = Annotated[str, msgspec.Meta(max_length=4000)]
Category = Annotated[str, msgspec.Meta(min_length=2, max_length=40, pattern=r"^[A-Za-z][\w -]*$")]
Note = Annotated[str, msgspec.Meta(max_length=280)]


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(max_length=254)]
    password: Annotated[str, msgspec.Meta(max_length=256)]


class TokenResponse(msgspec.Struct):
    token: str


class SignUpRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(max_length=254)]
    password: Annotated[str, msgspec.Meta(max_length=256)]
    display_name: Annotated[str, msgspec.Meta(max_length=60)]


class CheckInRequest(msgspec.Struct, forbid_unknown_fields=True):
    note: Note = ""


class ChallengeCreate(msgspec.Struct, forbid_unknown_fields=True):
    title: Title
    category: Category
    description: Description = ""
    duration_days: Annotated[int, msgspec.Meta(ge=1, le=365)] = 30


class ChallengeUpdate(msgspec.Struct, forbid_unknown_fields=True):
    title: Title | None = None
    category: Category | None = None
    description: Description | None = None
