"""Checks on text members type that a schema's lengths cannot make: a title of spaces, a name
of invisible characters, a control character that would reach every page showing it."""

from __future__ import annotations

import unicodedata

from app.services.errors import InvalidInputError

# Bidirectional overrides and isolates reorder the text around them: a name could make the
# page beside it read backwards. Zero-width joiners (emoji sequences) stay allowed.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_LINE_BREAKS = frozenset("\n\r\t")


def visible_length(text: str) -> int:
    """Characters that show: not whitespace, not control, format or unassigned code points."""
    return sum(1 for c in text if not c.isspace() and unicodedata.category(c)[0] not in ("C", "Z"))


def text_problem(
    text: str, *, field: str, minimum: int, maximum: int, multiline: bool = False
) -> str | None:
    """What is wrong with `text` (already stripped) for a field of `minimum` to `maximum`
    characters, in words a member can act on; None when it is fine."""
    for c in text:
        is_control = unicodedata.category(c) == "Cc" and not (multiline and c in _LINE_BREAKS)
        if is_control or c in _BIDI_CONTROLS:
            return f"{field} can't contain control characters (such as {c!r})."
    if visible_length(text) < minimum or len(text) > maximum:
        if minimum == 0:
            return f"{field} can be at most {maximum} characters."
        return f"{field} needs {minimum} to {maximum} characters you can see."
    return None


def checked(text: str, *, field: str, minimum: int, maximum: int, multiline: bool = False) -> str:
    """`text` stripped, or InvalidInputError (422) saying what is wrong with it."""
    stripped = text.strip()
    problem = text_problem(
        stripped, field=field, minimum=minimum, maximum=maximum, multiline=multiline
    )
    if problem:
        raise InvalidInputError(problem)
    return stripped
