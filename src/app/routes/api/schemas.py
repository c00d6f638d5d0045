"""Request bodies of the JSON API: msgspec structs with limits, so bad input is a 400."""

from __future__ import annotations

from typing import Annotated

import msgspec

from app.services.challenges import DESCRIPTION_MAX, NOTE_MAX, TITLE_MAX, TITLE_MIN

# The services check again after stripping (a title of spaces passes these lengths).
Title = Annotated[str, msgspec.Meta(min_length=TITLE_MIN, max_length=TITLE_MAX)]
Description = Annotated[str, msgspec.Meta(max_length=DESCRIPTION_MAX)]
Category = Annotated[str, msgspec.Meta(min_length=2, max_length=40, pattern=r"^[A-Za-z][\w -]*$")]
Note = Annotated[str, msgspec.Meta(max_length=NOTE_MAX)]


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
