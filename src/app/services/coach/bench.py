"""The spend proof: replay conversations twice with real generation and compare the bill.

baseline: every turn to the coaching model with the full history.
policy:   the real CoachService on a scratch SQLite database: routing, summary + window,
          the background memory update awaited after each turn (so it is deterministic).

Tokens are the real counts the model reported; the cost is priced with litellm's price map
"as" real models per route (`--price-as`), because the local model is free. A baseline
prompt longer than the local model's context cannot be run in full: it is counted with
litellm's counter (which undercounts SmolLM2 by ~7%: conservative for the reduction) and
the answer is generated from the longest recent part that fits."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from litestar.stores.memory import MemoryStore
from sqlalchemy import select

from app.db.engine import make_engine, make_sessionmaker
from app.db.models import Base, LlmCall, User
from app.services.coach.events import Done, Failed
from app.services.coach.limits import ChatRateLimiter
from app.services.coach.memory import MemoryKeeper
from app.services.coach.prompt import Member, system_message
from app.services.coach.routing import COACHING
from app.services.coach.service import CoachService
from app.services.coach.store import CoachStore
from app.services.llm import LLMGateway
from app.settings import ROOT, Settings

DEFAULT_CONVERSATIONS = ROOT / "src" / "app" / "data" / "conversations.jsonl"
DEFAULT_PRICE_AS = {"coaching": "gpt-4o", "small_talk": "gpt-4o-mini", "summary": "gpt-4o-mini"}
LOCAL_CONTEXT = 2048  # SmolLM2's context in llama.cpp (app.services.llm.local_model.N_CTX)
BENCH_PROFILE = (
    'name: "Alex"\nreputation: 140 points, rank 12\n'
    'challenge: "Run a 5k" (fitness), streak 6 days, 9/30 check-ins, done today\n'
    'challenge: "Read 10 pages a day" (learning), streak 2 days, 4/21 check-ins, not yet today'
)
BENCH_CHALLENGES = ("Run a 5k", "Read 10 pages a day")


@dataclass
class Tally:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    calls: int = 0
    per_turn: list[list[int]] = field(default_factory=list)  # [conversation][turn] prompt

    def add(self, prompt: int, completion: int, cost: float) -> None:
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.cost_usd += cost
        self.calls += 1

    def totals(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": round(self.cost_usd, 6),
            "calls": self.calls,
        }


def parse_price_as(spec: str | None) -> dict[str, str]:
    prices = dict(DEFAULT_PRICE_AS)
    for item in (spec or "").split(","):
        if item.strip():
            route, _, model = item.partition("=")
            prices[route.strip()] = model.strip()
    return prices


def load_conversations(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    return rows[:limit] if limit else rows


def per_turn_means(per_turn: Sequence[Sequence[int]]) -> list[float]:
    longest = max((len(c) for c in per_turn), default=0)
    means = []
    for i in range(longest):
        values = [c[i] for c in per_turn if len(c) > i]
        means.append(round(sum(values) / len(values), 1))
    return means


class Bench:
    def __init__(
        self,
        settings: Settings,
        gateway: LLMGateway,
        price_as: dict[str, str],
        progress: Callable[[str], None] | None = None,
    ):
        self.settings = settings
        self.gateway = gateway
        self.price_as = price_as
        self.progress = progress or (lambda _: None)

    def price(self, route: str, prompt: int, completion: int) -> float:
        model = self.price_as.get(route, self.price_as["coaching"])
        return self.gateway.cost_usd(model, prompt, completion)

    async def baseline(self, conversations: Sequence[dict[str, Any]]) -> tuple[Tally, int]:
        tally, overflowed = Tally(), 0
        model = self.settings.coach_model
        for conv in conversations:
            history: list[dict[str, Any]] = []
            sizes: list[int] = []
            for text in conv["turns"]:
                history.append({"role": "user", "content": text})
                full = [system_message(BENCH_PROFILE, ""), *history]
                counted = self.gateway.count_tokens(model, full)
                sent, prompt_override = full, None
                if model.startswith("local/") and self._too_long(counted):
                    overflowed += 1
                    prompt_override = counted
                    sent = self._fit(full)
                done = await self.gateway.complete(
                    sent, model=model, route=COACHING, max_tokens=self.settings.coach_max_tokens
                )
                prompt = prompt_override or done.prompt_tokens
                tally.add(
                    prompt,
                    done.completion_tokens,
                    self.price(COACHING, prompt, done.completion_tokens),
                )
                sizes.append(prompt)
                history.append({"role": "assistant", "content": done.text})
            tally.per_turn.append(sizes)
            self.progress(f"baseline {conv.get('id')}: {len(sizes)} turns")
        return tally, overflowed

    def _too_long(self, counted: int) -> bool:
        return counted * 1.15 + self.settings.coach_max_tokens > LOCAL_CONTEXT

    def _fit(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        system, turns = messages[0], messages[1:]
        while len(turns) > 1:
            if not self._too_long(
                self.gateway.count_tokens(self.settings.coach_model, [system, *turns])
            ):
                break
            turns = turns[2:] if len(turns) > 2 else turns[1:]
        return [system, *turns]

    async def policy(self, conversations: Sequence[dict[str, Any]]) -> tuple[Tally, dict[str, int]]:
        with tempfile.TemporaryDirectory() as tmp:
            settings = replace(
                self.settings,
                database_url=f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}",
                coach_daily_token_budget=10**12,
                coach_rate_limit_per_minute=10**9,
            )
            engine = make_engine(settings)
            async with engine.begin() as conn:
                await conn.run_sync(Base.metadata.create_all)
            sessions = make_sessionmaker(engine)
            try:
                return await self._policy(settings, sessions, conversations)
            finally:
                await engine.dispose()

    async def _policy(
        self, settings: Settings, sessions: Any, conversations: Sequence[dict[str, Any]]
    ) -> tuple[Tally, dict[str, int]]:
        async with sessions() as s:
            # a scratch user that cannot sign in ("!" is no argon2 hash)
            user = User(email="bench@example.test", password_hash="!", display_name="Alex")  # noqa: S106
            s.add(user)
            await s.commit()
            user_id = user.id
        keeper = MemoryKeeper(sessions, self.gateway, settings)
        service = CoachService(
            store=CoachStore(sessions),
            gateway=self.gateway,
            settings=settings,
            limiter=ChatRateLimiter(MemoryStore(), settings.coach_rate_limit_per_minute),
            profile=_fixed_profile,
        )
        tally, routes = Tally(), {"coaching": 0, "small_talk": 0, "failed": 0}
        for conv in conversations:
            conversation_id: int | None = None
            sizes: list[int] = []
            for text in conv["turns"]:
                posted = await service.post(user_id, text, conversation_id)
                conversation_id = posted.conversation_id
                async for event in await service.open_stream(user_id, posted.reply_id):
                    if isinstance(event, Done):
                        sizes.append(event.record.prompt_tokens)
                        routes[event.record.route] += 1
                    elif isinstance(event, Failed):
                        routes["failed"] += 1
                await keeper.update(conversation_id)  # what after_answer schedules, awaited
            tally.per_turn.append(sizes)
            self.progress(f"policy {conv.get('id')}: {len(sizes)} turns")
        async with sessions() as s:
            for call in await s.scalars(select(LlmCall).order_by(LlmCall.id)):
                cost = self.price(call.route, call.prompt_tokens, call.completion_tokens)
                tally.add(call.prompt_tokens, call.completion_tokens, cost)
                routes[f"{call.kind}_calls"] = routes.get(f"{call.kind}_calls", 0) + 1
        return tally, routes


async def _fixed_profile(user_id: int) -> Member:
    return Member(BENCH_PROFILE, BENCH_CHALLENGES)


async def run(
    settings: Settings,
    *,
    conversations_path: Path = DEFAULT_CONVERSATIONS,
    price_as: dict[str, str] | None = None,
    limit: int | None = None,
    max_turns: int | None = None,
    max_tokens: int = 32,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run both replays and return the report (the JSON `coach bench` prints)."""
    # a loaded CPU slows the local model; a timeout would drop a turn from the comparison
    settings = replace(
        settings, coach_max_tokens=max_tokens, coach_timeout=max(settings.coach_timeout, 120.0)
    )
    gateway = LLMGateway(settings)
    await gateway.warm_up()
    bench = Bench(settings, gateway, price_as or dict(DEFAULT_PRICE_AS), progress)
    conversations = load_conversations(conversations_path, limit)
    if max_turns:
        conversations = [{**c, "turns": c["turns"][:max_turns]} for c in conversations]
    started = time.perf_counter()
    base, overflowed = await bench.baseline(conversations)
    base_seconds = time.perf_counter() - started
    policy, routes = await bench.policy(conversations)
    base_turns = per_turn_means(base.per_turn)
    policy_turns = per_turn_means(policy.per_turn)
    reduction = 1 - policy.cost_usd / base.cost_usd if base.cost_usd else 0.0
    report: dict[str, Any] = {
        "baseline": {**base.totals(), "overflow_turns": overflowed},
        "policy": {**policy.totals(), "routes": routes},
        "reduction": round(reduction, 4),
        "per_turn_prompt_tokens": {"baseline": base_turns, "policy": policy_turns},
        "price_as": bench.price_as,
        "models": {
            "coaching": settings.coach_model,
            "small_talk": settings.small_talk_model,
            "summary": settings.summary_model,
        },
        "conversations": len(conversations),
        "turns": sum(len(c["turns"]) for c in conversations),
        "max_tokens": max_tokens,
        "window_turns": settings.coach_window_turns,
        "seconds": {
            "baseline": round(base_seconds, 1),
            "policy": round(time.perf_counter() - started - base_seconds, 1),
        },
    }
    flatness = turn_growth(policy.per_turn, 10, 40)
    if flatness is not None:
        report["flatness"] = flatness
    return report


def turn_growth(per_turn: Sequence[Sequence[int]], early: int, late: int) -> dict[str, Any] | None:
    """Prompt tokens at turn `late` vs turn `early` (1-based) of the same conversations: only
    those that reach `late`, so short (e.g. small-talk) conversations do not skew turn 10."""
    long_ones = [sizes for sizes in per_turn if len(sizes) >= late]
    if not long_ones:
        return None
    a = sum(sizes[early - 1] for sizes in long_ones) / len(long_ones)
    b = sum(sizes[late - 1] for sizes in long_ones) / len(long_ones)
    return {
        f"turn_{early}": round(a, 1),
        f"turn_{late}": round(b, 1),
        "ratio": round(b / a, 3) if a else None,
        "conversations": len(long_ones),
    }
