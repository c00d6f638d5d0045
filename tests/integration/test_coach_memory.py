"""Memory and ledger against the real databases (SQLite and PostgreSQL), with a scripted
gateway: the answer streams at once while the summary model is held back on purpose."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from litestar.stores.memory import MemoryStore
from sqlalchemy import func, select, update
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.engine import make_engine, make_sessionmaker
from app.db.models import Conversation, LlmCall, Message, User, utcnow
from app.services.coach.events import Done, Failed, Token
from app.services.coach.limits import ChatRateLimiter
from app.services.coach.memory import MemoryKeeper
from app.services.coach.prompt import Member
from app.services.coach.service import BUSY, NOT_SAVED, UNAVAILABLE, CoachService
from app.services.coach.store import DEFAULT_CLAIM_LIFETIME, CoachStore, Context
from app.services.llm import Completion, LLMGateway, StreamEvent, TokenDelta
from app.settings import Settings

ANSWER = ["Plan: ", "run ", "3 days ", "a week."]


class ScriptedGateway(LLMGateway):
    """Answers at once; summaries wait until `release` is set (a slow summary model)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.release = asyncio.Event()
        self.prompts: list[list[dict[str, Any]]] = []
        self.summaries = 0

    async def ensure_loaded(self) -> None:
        return None

    def count_tokens(self, model: str, messages: Sequence[dict[str, Any]]) -> int:
        return sum(4 + len(str(m["content"])) // 4 for m in messages)

    def cost_usd(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        return prompt_tokens * 2.5e-6 + completion_tokens * 1e-5

    def _record(
        self, model: str, route: str, messages: Sequence[dict[str, Any]], text: str
    ) -> Completion:
        prompt, completion = self.count_tokens(model, messages), len(text.split())
        return Completion(
            model=model,
            route=route,
            text=text,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost_usd=self.cost_usd(model, prompt, completion),
            ttft_ms=1.0,
            total_ms=2.0,
            finish_reason="stop",
            usage_source="counted",
        )

    async def stream(  # type: ignore[override]
        self,
        messages: Sequence[dict[str, Any]],
        *,
        model: str | None = None,
        route: str = "coaching",
        **_: Any,
    ) -> AsyncIterator[StreamEvent]:
        self.prompts.append(list(messages))
        for piece in ANSWER:
            yield TokenDelta(piece)
        yield self._record(model or "local/smollm2", route, messages, "".join(ANSWER))

    async def complete(  # type: ignore[override]
        self,
        messages: Sequence[dict[str, Any]],
        *,
        model: str | None = None,
        route: str = "summary",
        **_: Any,
    ) -> Completion:
        await self.release.wait()
        self.summaries += 1
        return self._record(
            model or "local/smollm2", route, messages, "The member wants to run a 5k with Priya."
        )


@pytest.fixture
async def sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(settings)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
async def user_id(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as s:
        user = User(
            email=f"memory-{id(s)}-{asyncio.get_running_loop().time()}@example.test",
            password_hash="!",
            display_name="Mem",
        )
        s.add(user)
        await s.commit()
        return user.id


def build(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], window: int = 2
) -> tuple[CoachService, MemoryKeeper, ScriptedGateway]:
    settings = replace(
        settings,
        coach_window_turns=window,
        coach_rate_limit_per_minute=10**6,
        coach_daily_token_budget=10**9,
    )
    gateway = ScriptedGateway(settings)
    keeper = MemoryKeeper(sessions, gateway, settings)

    async def profile(_: int) -> Member:
        return Member('name: "Mem"')

    service = CoachService(
        store=CoachStore(sessions),
        gateway=gateway,
        settings=settings,
        limiter=ChatRateLimiter(MemoryStore(), 10**6),
        profile=profile,
        after_answer=keeper.schedule,
    )
    return service, keeper, gateway


async def exchange(
    service: CoachService, user_id: int, text: str, cid: int | None
) -> tuple[int, Done]:
    posted = await service.post(user_id, text, cid)
    done = None
    async for event in await service.open_stream(user_id, posted.reply_id):
        if isinstance(event, Done):
            done = event
    assert done is not None, "the answer must complete"
    return posted.conversation_id, done


async def test_answer_completes_while_its_summary_is_still_pending(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], user_id: int
) -> None:
    service, keeper, gateway = build(settings, sessions, window=2)
    cid, _ = await exchange(service, user_id, "I want to run a 5k in 8 weeks with Priya.", None)
    cid, done = await exchange(service, user_id, "What should week one look like?", cid)
    assert done.record.route == "coaching"
    assert keeper.pending == 1  # the summary is still waiting for its (slow) model
    async with sessions() as s:
        conv = await s.get(Conversation, cid)
        assert conv is not None and conv.summary == ""
    gateway.release.set()
    await keeper.drain(timeout=10)
    async with sessions() as s:
        conv = await s.get(Conversation, cid)
        assert conv is not None
        assert "5k in 8 weeks" in conv.summary and "Priya" in conv.summary
        assert len(conv.summary) <= settings.coach_summary_max_chars
        kinds = list(await s.scalars(select(LlmCall.kind).where(LlmCall.conversation_id == cid)))
    assert kinds.count("answer") == 2 and kinds.count("summary") >= 1
    # the next prompt carries the memory instead of the folded turns
    await exchange(service, user_id, "ok", cid)
    system = gateway.prompts[-1][0]["content"]
    assert "5k in 8 weeks" in system
    await keeper.drain(timeout=10)


async def summarized_through(sessions: async_sessionmaker[AsyncSession], cid: int) -> int | None:
    async with sessions() as s:
        conv = await s.get(Conversation, cid)
        assert conv is not None
        return conv.summarized_through


@pytest.mark.parametrize("window", [3, 6])
async def test_nothing_inside_the_window_is_folded(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], user_id: int, window: int
) -> None:
    """The window keeps the last `window - 1` finished messages beside the new one: the memory
    folds only what is older, however few messages there are."""
    service, keeper, gateway = build(settings, sessions, window=window)
    gateway.release.set()
    cid, ids = None, []
    for n in range(5):
        cid, _ = await exchange(service, user_id, f"Plan step {n}: what next?", cid)
        await keeper.drain(timeout=10)
        assert cid is not None
        async with sessions() as s:
            ids = list(
                await s.scalars(
                    select(Message.id).where(Message.conversation_id == cid).order_by(Message.id)
                )
            )
        folded = max(len(ids) - (window - 1), 0)
        expected = ids[folded - 1] if folded else None
        assert await summarized_through(sessions, cid) == expected, (n, ids)
        # this answer's prompt: the system message, then the window (the question and up
        # to `window - 1` messages before it), every one not folded by then
        visible = [m["content"] for m in gateway.prompts[-1][1:]]
        assert len(visible) == min(2 * n, window - 1) + 1, (n, visible)
        assert f"Plan step {n}: what next?" in visible[-1]


async def test_a_reply_written_late_still_answers_its_own_question(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], user_id: int
) -> None:
    """A reply left pending while later messages are answered keeps its question: the memory
    does not fold past it while its claim could still live, and its context always holds it."""
    service, keeper, gateway = build(settings, sessions, window=2)
    gateway.release.set()
    cid, _ = await exchange(service, user_id, "Warm-up question", None)
    late = await service.post(user_id, "My goal is a half marathon by June. Plan?", cid)
    for text in ("Thanks!", "Also, I sleep badly.", "Any tips?"):
        await exchange(service, user_id, text, cid)
        await keeper.drain(timeout=10)
    through = await summarized_through(sessions, cid)
    assert through is not None and through < late.reply_id - 1  # the question stays unfolded
    async for _ in await service.open_stream(user_id, late.reply_id):
        pass
    assert "half marathon by June" in gateway.prompts[-1][-1]["content"]

    # Past a claim's lifetime the memory moves on; the late reply still reads its question.
    another = await service.post(user_id, "Should I taper before a 10k race?", cid)
    async with sessions() as s:
        await s.execute(
            update(Message)
            .where(Message.id == another.reply_id)
            .values(created_at=utcnow() - timedelta(days=1))
        )
        await s.commit()
    for text in ("ok", "and stretching?", "cool"):
        await exchange(service, user_id, text, cid)
        await keeper.drain(timeout=10)
    through = await summarized_through(sessions, cid)
    assert through is not None and through > another.reply_id
    async for _ in await service.open_stream(user_id, another.reply_id):
        pass
    assert "taper before a 10k" in gateway.prompts[-1][-1]["content"]


async def test_two_summary_jobs_never_clobber_each_other(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], user_id: int
) -> None:
    service, keeper, gateway = build(settings, sessions, window=2)
    gateway.release.set()
    cid = None
    for text in ("My goal is 10k steps a day.", "I will walk after lunch.", "And on weekends?"):
        cid, _ = await exchange(service, user_id, text, cid)
    await keeper.drain(timeout=10)
    assert cid is not None
    # two workers (two keepers, no shared lock) race on the same conversation
    async with sessions() as s:
        conv = await s.get(Conversation, cid)
        assert conv is not None
        before = conv.summarized_through
    _, other, _ = build(settings, sessions, window=1)
    _, third, _ = build(settings, sessions, window=1)
    for g in (other.gateway, third.gateway):
        assert isinstance(g, ScriptedGateway)
        g.release.set()
    won = await asyncio.gather(other.update(cid), third.update(cid))
    assert sorted(won) == [False, True]  # compare-and-set: exactly one wins
    async with sessions() as s:
        conv = await s.get(Conversation, cid)
        assert conv is not None and conv.summarized_through is not None
        assert before is None or conv.summarized_through > before
        assert "10k steps" in conv.summary


async def test_ledger_totals_equal_the_per_message_records(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], user_id: int
) -> None:
    service, keeper, gateway = build(settings, sessions, window=4)
    gateway.release.set()
    cid = None
    for text in ("hi", "I want to sleep before 11pm.", "how?", "thanks!", "I will try 12:30."):
        cid, _ = await exchange(service, user_id, text, cid)
    await keeper.drain(timeout=10)
    async with sessions() as s:
        messages = (
            await s.execute(
                select(
                    func.sum(Message.prompt_tokens),
                    func.sum(Message.completion_tokens),
                    func.sum(Message.cost_usd),
                    func.count(),
                ).where(Message.conversation_id == cid, Message.role == "assistant")
            )
        ).one()
        answers = (
            await s.execute(
                select(
                    func.sum(LlmCall.prompt_tokens),
                    func.sum(LlmCall.completion_tokens),
                    func.sum(LlmCall.cost_usd),
                    func.count(),
                ).where(LlmCall.conversation_id == cid, LlmCall.kind == "answer")
            )
        ).one()
        routes = set(
            await s.scalars(select(Message.route_reason).where(Message.conversation_id == cid))
        )
        summaries = await s.scalar(
            select(func.count()).where(LlmCall.conversation_id == cid, LlmCall.kind == "summary")
        )
    assert (
        messages[0] == answers[0] and messages[1] == answers[1] and messages[3] == answers[3] == 5
    )
    assert messages[2] == pytest.approx(answers[2])
    assert summaries == gateway.summaries >= 1
    assert {r for r in routes if r} and all(
        r is None or r.split(":")[0] in ("rule", "model") for r in routes
    )


class BusyOnceStore(CoachStore):
    """The first stream start fails halfway: the claim is written, then reading the
    conversation meets an exhausted pool (sqlalchemy's own error)."""

    busy = True

    async def start(self, reply: Message) -> Context | None:
        if not self.busy:
            return await super().start(reply)
        self.busy = False

        real = self.sessions

        def sessions() -> AsyncSession:
            session = real()
            # this session only (other tasks share the loop): reading after the UPDATE fails
            session.get = mock.AsyncMock(
                side_effect=PoolTimeoutError("QueuePool limit of size 1 overflow 0 reached")
            )
            return session

        self.sessions = sessions
        try:
            return await super().start(reply)
        finally:
            self.sessions = real


async def test_a_full_pool_at_stream_start_is_a_clean_event_and_the_answer_waits(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], user_id: int
) -> None:
    service, _, _ = build(settings, sessions)
    service.store = BusyOnceStore(sessions)
    posted = await service.post(user_id, "How do I start running?", None)
    events = [e async for e in await service.open_stream(user_id, posted.reply_id)]
    assert events == [Failed(BUSY)]
    async with sessions() as s:
        reply = await s.get(Message, posted.reply_id)
        assert reply is not None and reply.status == "pending"  # nothing was claimed
    events = [e async for e in await service.open_stream(user_id, posted.reply_id)]
    assert isinstance(events[-1], Done) and "".join(
        e.text for e in events if isinstance(e, Token)
    ) == "".join(ANSWER)


class SaveFailsStore(CoachStore):
    """Settling a reply meets an exhausted pool the first `failures` times; with `landed`,
    the first failure comes after the commit went through (a connection lost on its answer)."""

    failures = 0
    landed = False

    async def finish_with_ledger(
        self, reply_id: int, ledger: dict[str, Any], *, claim: datetime, **fields: Any
    ) -> None:
        if self.landed:
            self.landed = False
            await super().finish_with_ledger(reply_id, ledger, claim=claim, **fields)
            raise PoolTimeoutError("connection lost after COMMIT")
        if self.failures:
            self.failures -= 1
            raise PoolTimeoutError("QueuePool limit of size 1 overflow 0 reached")
        await super().finish_with_ledger(reply_id, ledger, claim=claim, **fields)


@pytest.mark.parametrize(
    ("failures", "landed", "ending", "status"),
    [
        (2, False, Done, "complete"),
        (0, True, Done, "complete"),
        (3, False, Failed, "interrupted"),
    ],
    ids=["saved-on-a-retry", "retried-after-a-commit-that-landed", "kept-as-interrupted"],
)
async def test_a_full_pool_at_the_end_of_an_answer_is_retried_and_never_cuts_the_stream(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    user_id: int,
    failures: int,
    landed: bool,
    ending: type,
    status: str,
) -> None:
    service, _, _ = build(settings, sessions)
    service.store = store = SaveFailsStore(sessions)
    store.failures, store.landed = failures, landed
    posted = await service.post(user_id, "How do I start running?", None)
    events = [e async for e in await service.open_stream(user_id, posted.reply_id)]
    assert isinstance(events[-1], ending)
    if ending is Failed:
        assert events[-1] == Failed(NOT_SAVED)
    async with sessions() as s:
        reply = await s.get(Message, posted.reply_id)
        assert reply is not None and reply.status == status
        assert reply.content == "".join(ANSWER)
        ledger = await s.scalar(select(func.count()).where(LlmCall.message_id == posted.reply_id))
    assert ledger == 1  # one row whatever the retries


async def test_an_unexpected_error_mid_answer_ends_with_an_event_and_keeps_the_text(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], user_id: int
) -> None:
    service, _, gateway = build(settings, sessions)

    async def breaks(*_: Any, **__: Any) -> AsyncIterator[StreamEvent]:
        yield TokenDelta("Plan: ")
        raise RuntimeError("a bug in a provider adapter")

    gateway.stream = breaks
    posted = await service.post(user_id, "How do I start running?", None)
    events = [e async for e in await service.open_stream(user_id, posted.reply_id)]
    assert events == [Token("Plan: "), Failed(UNAVAILABLE)]
    async with sessions() as s:
        reply = await s.get(Message, posted.reply_id)
        assert reply is not None and (reply.status, reply.content) == ("interrupted", "Plan: ")


async def test_a_dead_streams_claim_expires_and_the_next_stream_writes_the_answer(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], user_id: int
) -> None:
    """A worker killed mid-answer leaves its reply "streaming": a live claim is respected, a
    stale one reads as pending and is taken over."""
    service, _, _ = build(settings, sessions)
    posted = await service.post(user_id, "How do I start running?", None)

    async def claim_age(age: timedelta) -> None:
        async with sessions() as s:
            await s.execute(
                update(Message)
                .where(Message.id == posted.reply_id)
                .values(status="streaming", claimed_at=utcnow() - age)
            )
            await s.commit()

    await claim_age(timedelta(minutes=1))  # a live stream elsewhere
    events = [e async for e in await service.open_stream(user_id, posted.reply_id)]
    assert events == [Failed("This answer is already being written in another window.")]
    shown = await service.store.messages(user_id, posted.conversation_id)
    assert shown[-1].status == "streaming"

    await claim_age(DEFAULT_CLAIM_LIFETIME + timedelta(minutes=1))  # its process died
    shown = await service.store.messages(user_id, posted.conversation_id)
    assert shown[-1].status == "pending"  # the page opens a stream for it
    events = [e async for e in await service.open_stream(user_id, posted.reply_id)]
    assert isinstance(events[-1], Done)
    async with sessions() as s:
        reply = await s.get(Message, posted.reply_id)
        assert reply is not None and reply.status == "complete"
        assert reply.content == "".join(ANSWER)


@pytest.mark.slow
async def test_bench_short_run_on_the_real_model() -> None:
    """The spend bench end to end on the local model, cut down to seconds."""
    from app.services.coach import bench
    from app.settings import get_settings

    report = await bench.run(
        replace(get_settings(), coach_warmup=False), limit=1, max_turns=4, max_tokens=4
    )
    assert set(report) >= {"baseline", "policy", "reduction", "per_turn_prompt_tokens"}
    assert len(report["per_turn_prompt_tokens"]["baseline"]) == 4
    assert len(report["per_turn_prompt_tokens"]["policy"]) == 4
    assert report["baseline"]["prompt_tokens"] > 0 and report["policy"]["calls"] >= 4
    assert report["baseline"]["cost_usd"] > 0  # priced as gpt-4o although the model is free
