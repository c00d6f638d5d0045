"""The prompt window (system + summary + last N turns) never exceeds its token budget."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from app.services.coach.prompt import RULES, Turn, build_prompt


def count(messages: Sequence[dict[str, Any]]) -> int:
    """A deterministic stand-in for litellm's counter: ~4 characters a token + overhead."""
    return sum(4 + len(str(m["content"])) // 4 for m in messages)


FLOOR = count([{"role": "system", "content": RULES + "\n<member_data>\n\n</member_data>"}])

turns = st.lists(
    st.builds(Turn, st.sampled_from(["user", "assistant"]), st.text(max_size=800)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(
    history=turns,
    summary=st.text(max_size=1500),
    profile=st.text(max_size=600),
    window=st.integers(min_value=0, max_value=12),
    budget=st.integers(min_value=FLOOR + 1000, max_value=4000),
)
def test_window_never_exceeds_its_budget(
    history: list[Turn], summary: str, profile: str, window: int, budget: int
) -> None:
    messages = build_prompt(
        member_profile=profile,
        summary=summary,
        history=history,
        window=window,
        budget=budget,
        count_tokens=count,
    )
    assert count(messages) <= budget
    assert messages[0]["role"] == "system"
    assert len(messages) - 1 <= max(window, 1)
    # the member's new message is always the last thing the model sees
    assert messages[-1]["content"] == history[-1].content


@given(history=turns, window=st.integers(min_value=1, max_value=12))
def test_a_roomy_budget_keeps_exactly_the_last_n_turns(history: list[Turn], window: int) -> None:
    messages = build_prompt(
        member_profile="name: x",
        summary="",
        history=history,
        window=window,
        budget=10**9,
        count_tokens=count,
    )
    assert [m["content"] for m in messages[1:]] == [t.content for t in history[-window:]]


def test_the_member_carries_the_titles_of_active_challenges_for_the_router() -> None:
    from app.services.coach.prompt import member
    from app.services.views import Membership

    def joined(title: str, completed: bool) -> Membership:
        return Membership(
            challenge_id=len(title),
            title=title,
            category="fitness",
            duration_days=30,
            check_ins=3,
            streak=2,
            checked_in_today=False,
            completed=completed,
        )

    known = member("Ana", None, [joined("Run a 5k", False), joined("Plank month", True)])
    assert known.challenges == ("Run a 5k",)
    assert '"Run a 5k"' in known.profile
    assert "completed challenges: 1" in known.profile


async def test_a_database_timeout_leaves_the_coach_without_the_profile_not_broken() -> None:
    """The profile is read after the answer's stream opened: a full pool must not break it."""
    from typing import cast

    from sqlalchemy.exc import TimeoutError as PoolTimeoutError
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from app.services.cache import CacheService
    from app.services.coach.factory import profile_loader

    def exhausted() -> AsyncSession:
        raise PoolTimeoutError("QueuePool limit reached")

    load = profile_loader(
        cast(async_sessionmaker[AsyncSession], exhausted), cast(CacheService, None)
    )
    known = await load(7)
    assert known.challenges == ()
    assert known.profile == 'name: "member"'
