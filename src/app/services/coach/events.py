"""What a coach stream yields; the routes turn these into SSE events."""

from __future__ import annotations

from dataclasses import dataclass

from app.services.coach.views import DoneEvent


@dataclass(frozen=True, slots=True)
class Token:
    text: str


@dataclass(frozen=True, slots=True)
class Done:
    record: DoneEvent


@dataclass(frozen=True, slots=True)
class Failed:
    message: str


CoachEvent = Token | Done | Failed
