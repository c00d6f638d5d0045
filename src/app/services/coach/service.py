"""The coach: accept a message (saved before any model call), then stream its answer.

The answer is generated while the client listens; a disconnect stops generation and keeps
the partial text as `interrupted`, a provider failure leaves `failed` with the reason."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import anyio
import structlog
from sqlalchemy.exc import SQLAlchemyError

from app.db.errors import is_unavailable
from app.db.models import Message
from app.services.coach.events import CoachEvent, Done, Failed, Token
from app.services.coach.guard import RULE_SPANS, LeakGuard
from app.services.coach.limits import ChatRateLimiter
from app.services.coach.prompt import Member, build_prompt
from app.services.coach.routing import COACHING, RouteDecision, classify
from app.services.coach.store import ClaimLostError, CoachStore, Context
from app.services.coach.views import DoneEvent, PostedMessage
from app.services.errors import InvalidInputError, NotFoundError, RateLimitedError
from app.services.llm import Completion, LLMGateway, LLMUnavailable, TokenDelta
from app.services.llm.gateway import record_usage
from app.settings import Settings

ProfileLoader = Callable[[int], Awaitable[Member]]
log = structlog.get_logger("app.coach")
UNAVAILABLE = "The coach could not answer right now. Please try again in a minute."
BUSY = "Your coach is busy right now. Please try again in a few seconds."
NOT_SAVED = "Your coach answered, but the answer could not be saved. Please send it again."


def stream_url(reply_id: int) -> str:
    return f"/api/v1/coach/messages/{reply_id}/stream"


class CoachService:
    def __init__(
        self,
        *,
        store: CoachStore,
        gateway: LLMGateway,
        settings: Settings,
        limiter: ChatRateLimiter,
        profile: ProfileLoader,
        after_answer: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.gateway = gateway
        self.settings = settings
        self.limiter = limiter
        self.profile = profile
        self.after_answer = after_answer

    async def post(self, user_id: int, text: str, conversation_id: int | None) -> PostedMessage:
        """Validate, rate-limit and budget-check, then save the message and a pending reply."""
        text = text.strip()
        if not text:
            raise InvalidInputError("Write a message for your coach first.")
        limit = self.settings.coach_message_max_chars
        if len(text) > limit:
            raise InvalidInputError(
                f"Your message is {len(text):,} characters long; the limit is {limit:,}."
            )
        wait = await self.limiter.hit(user_id)
        if wait is not None:
            raise RateLimitedError(
                f"You are sending messages too fast. Try again in {wait} seconds.", wait
            )
        if await self.store.tokens_today(user_id) >= self.settings.coach_daily_token_budget:
            raise RateLimitedError(
                "You have used today's coaching budget. Your coach will be back tomorrow (UTC).",
                _seconds_to_midnight(),
            )
        asked, reply = await self.store.add_exchange(user_id, conversation_id, text)
        return PostedMessage(
            id=asked.id,
            conversation_id=asked.conversation_id,
            reply_id=reply.id,
            stream_url=stream_url(reply.id),
        )

    async def open_stream(self, user_id: int, reply_id: int) -> AsyncGenerator[CoachEvent, None]:
        """Check ownership now (a 404 before any SSE), then return the event generator."""
        reply = await self.store.reply(user_id, reply_id)
        return self._events(user_id, reply)

    async def _events(self, user_id: int, reply: Message) -> AsyncGenerator[CoachEvent, None]:
        if reply.status == "complete":  # a reconnect after the end: replay it
            yield Token(reply.content)
            yield Done(_done(reply.id, reply.model or "", reply.route or COACHING, reply))
            return
        if reply.status in ("interrupted", "failed"):
            yield Failed(reply.error or "This answer was not finished. Send your message again.")
            return
        try:
            context = await self.store.start(reply)
        except NotFoundError as exc:  # the conversation went away meanwhile
            yield Failed(exc.message)
            return
        except SQLAlchemyError as exc:
            # The SSE response has begun, so no 503 now: a clean event, and the reply stays
            # pending (the failed transaction claimed nothing) for the client's next try.
            if not is_unavailable(exc):
                log.exception("coach_stream_start_failed", reply_id=reply.id)
                yield Failed(UNAVAILABLE)
                return
            log.warning("coach_stream_db_busy", reply_id=reply.id, error=type(exc).__name__)
            yield Failed(BUSY)
            return
        if context is None:
            yield Failed("This answer is already being written in another window.")
            return
        # closed with this generator, so a disconnect runs its cleanup at once, not at GC
        async with contextlib.aclosing(self._generate(user_id, reply, context)) as events:
            async for event in events:
                yield event

    async def _generate(
        self, user_id: int, reply: Message, context: Context
    ) -> AsyncGenerator[CoachEvent, None]:
        parts: list[str] = []  # what the member was shown (the guard may hold or drop text)
        generated = 0  # deltas the model produced: the tokens paid for
        started = time.perf_counter()
        first_token: float | None = None
        settled = False
        # The reply is claimed (status "streaming") from here on: whatever happens next, even
        # a disconnect while the prompt is still being built, must leave a final status.
        decision = RouteDecision(COACHING, "stopped before routing")
        model = self.settings.coach_model
        messages: list[dict[str, Any]] = []
        completion: Completion | None = None

        def keep_interrupted() -> Callable[[], Awaitable[None]]:
            shown = "".join(parts)
            return self._save_interrupted(
                user_id, reply, context, decision, model, messages, shown, generated,
                started, first_token, completion,
            )  # fmt: skip

        try:
            summary, turns, _ = context
            member = await self.profile(user_id)  # the router reads its challenges
            # about a millisecond of numpy and tokenizer (which holds the GIL), off the event loop
            text = turns[-1].content if turns else ""
            decision = await anyio.to_thread.run_sync(classify, turns[:-1], text, member.challenges)
            model = self._model_for(decision)
            await self.gateway.ensure_loaded()  # never import litellm on the event loop
            messages = build_prompt(
                member_profile=member.profile,
                summary=summary,
                history=turns,
                window=self.settings.coach_window_turns,
                budget=self.settings.coach_prompt_token_budget,
                count_tokens=lambda m: self.gateway.count_tokens(model, m),
            )
            guard = LeakGuard(RULE_SPANS)
            stream = self.gateway.stream(messages, model=model, route=decision.route)
            async with contextlib.aclosing(stream):  # closing it stops the model at once
                async for event in stream:
                    if isinstance(event, TokenDelta):
                        first_token = first_token or time.perf_counter()
                        generated += 1
                        shown = guard.feed(event.text)
                        if shown:
                            parts.append(shown)
                            yield Token(shown)
                    else:
                        completion = event
            assert completion is not None
            tail = guard.finish()
            if tail:
                parts.append(tail)
                yield Token(tail)
            if guard.leaked:
                log.warning(
                    "coach_rules_leak_blocked",
                    reply_id=reply.id,
                    model=completion.model,
                    span=guard.matched,
                )
            shown = "".join(parts)
            if not await _persist(
                lambda: self._save_complete(user_id, reply, context, decision, completion, shown),
                reply.id,
            ):
                # Keep the text as interrupted if the database is back, before the event:
                # once the client has it, the disconnect may cancel this task.
                await _persist(keep_interrupted(), reply.id)
                settled = True  # saved, or left "streaming" until its claim expires
                yield Failed(NOT_SAVED)
                return
            settled = True
            if self.after_answer is not None:
                self.after_answer(reply.conversation_id)
            yield Done(_done(reply.id, completion.model, decision.route, completion))
        except LLMUnavailable as exc:
            failed = {
                "status": "failed",
                "content": "".join(parts),
                "model": model,
                "route": decision.route,
                "route_reason": decision.reason,
                "error": ("; ".join(exc.attempts) or UNAVAILABLE)[:500],
            }
            await _persist(
                lambda: self.store.finish(reply.id, claim=context.claim, **failed), reply.id
            )
            settled = True  # saved, or left "streaming" until its claim expires
            yield Failed(UNAVAILABLE)
        except ClaimLostError:  # its claim expired and another stream writes the answer now
            settled = True
            yield Failed(NOT_SAVED)
        except Exception:
            # A bug, or a database error that retrying cannot mend: keep what was shown and
            # end with an event rather than a cut connection.
            log.exception("coach_stream_failed", reply_id=reply.id)
            with contextlib.suppress(Exception):
                await _persist(keep_interrupted(), reply.id)
            settled = True
            yield Failed(UNAVAILABLE)
        finally:
            if not settled:
                # The client went away: keep what was generated. Shielded, because the
                # stream's cancel scope would otherwise cancel this write too.
                with anyio.CancelScope(shield=True):
                    try:
                        await _persist(keep_interrupted(), reply.id)
                    except ClaimLostError:
                        log.info("save_interrupted_claim_lost", reply_id=reply.id)
                    except Exception:  # never raise out of `finally`; the claim will expire
                        log.exception("save_interrupted_failed", reply_id=reply.id)

    def _model_for(self, decision: RouteDecision) -> str:
        if decision.route == COACHING:
            return self.settings.coach_model
        return self.settings.small_talk_model

    async def _save_complete(
        self,
        user_id: int,
        reply: Message,
        context: Context,
        decision: RouteDecision,
        c: Completion,
        shown: str,
    ) -> None:
        """`shown` is what the member saw (the guarded text), not the raw completion."""
        await self._settle(
            user_id,
            reply,
            context,
            decision,
            _spent(c),
            status="complete",
            content=shown,
            ttft_ms=c.ttft_ms,
            total_ms=c.total_ms,
        )

    def _save_interrupted(
        self,
        user_id: int,
        reply: Message,
        context: Context,
        decision: RouteDecision,
        model: str,
        messages: list[dict[str, Any]],
        shown: str,
        generated: int,
        started: float,
        first_token: float | None,
        completion: Completion | None,
    ) -> Callable[[], Awaitable[None]]:
        """Count the usage now (once), and return the save, which may be retried. A finished
        completion (its save failed) was counted by the gateway and carries its own figures."""
        if completion is not None:
            model, prompt_tokens, completion_tokens, cost = _spent(completion)
        else:
            # Nothing reached the model when the prompt was never built: no tokens, no cost.
            prompt_tokens = self.gateway.count_tokens(model, messages) if messages else 0
            completion_tokens = generated  # local deltas are single tokens; close enough
            cost = (
                self.gateway.cost_usd(model, prompt_tokens, completion_tokens) if messages else 0.0
            )
            record_usage(model, decision.route, prompt_tokens, completion_tokens, cost)
        fields = {
            "status": "interrupted",
            "content": shown,
            "ttft_ms": (first_token - started) * 1000 if first_token else None,
            "total_ms": (time.perf_counter() - started) * 1000,
        }
        spent = (model, prompt_tokens, completion_tokens, cost)
        return lambda: self._settle(user_id, reply, context, decision, spent, **fields)

    async def _settle(
        self,
        user_id: int,
        reply: Message,
        context: Context,
        decision: RouteDecision,
        spent: tuple[str, int, int, float],
        **fields: Any,
    ) -> None:
        """Save the reply and its ledger row (same usage figures) in one transaction."""
        model, prompt_tokens, completion_tokens, cost = spent
        usage = {
            "model": model,
            "route": decision.route,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "cost_usd": cost,
        }
        ledger = {
            **usage,
            "user_id": user_id,
            "conversation_id": reply.conversation_id,
            "message_id": reply.id,
            "kind": "answer",
        }
        await self.store.finish_with_ledger(
            reply.id, ledger, claim=context.claim, **usage, route_reason=decision.reason, **fields
        )


def _spent(c: Completion) -> tuple[str, int, int, float]:
    return c.model, c.prompt_tokens, c.completion_tokens, c.cost_usd


def _done(message_id: int, model: str, route: str, source: Any) -> DoneEvent:
    return DoneEvent(
        message_id=message_id,
        model=model,
        route=route,
        prompt_tokens=int(source.prompt_tokens or 0),
        completion_tokens=int(source.completion_tokens or 0),
        cost_usd=float(source.cost_usd or 0.0),
    )


def _seconds_to_midnight() -> int:
    now = time.time()
    return int(86400 - now % 86400) + 1


async def _persist(save: Callable[[], Awaitable[None]], reply_id: int, attempts: int = 3) -> bool:
    """Run a save, retried while the database is only unavailable (a full pool must not leave
    the reply "streaming"); False if it never went through. Other errors propagate."""
    for attempt in range(attempts):
        try:
            await save()
            return True
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            log.warning("coach_save_retry", reply_id=reply_id, attempt=attempt, error=repr(exc))
            if attempt + 1 < attempts:
                await anyio.sleep(0.5 * (attempt + 1))
    return False
