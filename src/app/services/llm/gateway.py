"""The one door to every model: streaming with retry, fallback, deadlines, usage and cost.

``LLMGateway.stream`` yields ``TokenDelta``s and ends with one ``Completion`` record. A
provider error, 429 or timeout before the first token: one retry of the same model, then
the fallback model, all inside ``coach_timeout``; after that ``LLMUnavailable``. Once a
token has been yielded nothing is retried (the reader already saw it): a failure then
raises ``LLMUnavailable`` with the partial text. litellm is imported on first use only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import structlog
from prometheus_client import Counter, Histogram

from app.services.llm.local_model import BACKGROUND
from app.settings import Settings, get_settings

log = structlog.get_logger("app.llm")
LOCAL_PREFIX = "local/"

Message = dict[str, Any]

LLM_TOKENS = Counter(
    "momentum_llm_tokens_total",
    "Tokens sent to and received from models.",
    ["model", "route", "kind"],
)
LLM_COST = Counter(
    "momentum_llm_cost_usd_total",
    "Model spend in USD, priced from litellm's price map.",
    ["model", "route"],
)
LLM_TTFT = Histogram(
    "momentum_llm_time_to_first_token_seconds",
    "Time from the call to the first streamed token.",
    ["model", "route"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0),
)


@dataclass(frozen=True, slots=True)
class TokenDelta:
    """A piece of the answer, as generated."""

    text: str


@dataclass(frozen=True, slots=True)
class Completion:
    """The final record of one answer: who answered, what it cost and how fast."""

    model: str
    route: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    ttft_ms: float
    total_ms: float
    finish_reason: str
    # "provider": usage arrived in the stream (from the provider, or estimated by litellm for
    # include_usage); "counted": none arrived, so litellm.token_counter was run here
    usage_source: str
    failed_attempts: tuple[str, ...] = ()

    @property
    def used_fallback(self) -> bool:
        return bool(self.failed_attempts)


StreamEvent = TokenDelta | Completion


class LLMUnavailable(Exception):
    """No model could answer: every attempt failed (reasons in ``attempts``)."""

    def __init__(self, attempts: Sequence[str], partial_text: str = "") -> None:
        self.attempts = tuple(attempts)
        self.partial_text = partial_text
        super().__init__("no model could answer: " + "; ".join(self.attempts))


class _AttemptFailed(Exception):
    def __init__(self, model: str, reason: str, *, retryable: bool) -> None:
        super().__init__(f"{model}: {reason}")
        self.retryable = retryable


@cache
def load_litellm() -> Any:
    """Import litellm (~3 s) and register the local provider, once per process."""
    from app.services.llm import provider  # sets litellm's offline flags, then imports it

    provider.register()
    import litellm

    # litellm logs a plain-text INFO line per call ("LiteLLM completion() model= ..."), which
    # would break the JSON log lines and cost time on every answer; its warnings still show.
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    litellm.suppress_debug_info = True  # its "Give Feedback / Get Help" print on every error
    return litellm


@dataclass
class _Usage:
    prompt: int | None = None
    completion: int | None = None
    finish_reason: str = "stop"
    parts: list[str] = field(default_factory=list)


def record_usage(model: str, route: str, prompt: int, completion: int, cost: float) -> None:
    """Count tokens and spend in the metrics (also for answers cut short by the client)."""
    LLM_TOKENS.labels(model, route, "prompt").inc(prompt)
    LLM_TOKENS.labels(model, route, "completion").inc(completion)
    LLM_COST.labels(model, route).inc(cost)


class LLMGateway:
    """Every model call in the app goes through one of these (one per process is enough)."""

    def __init__(self, settings: Settings | None = None, *, total_timeout: float | None = None):
        self.settings = settings or get_settings()
        # whole answer bound; proposed setting COACH_TOTAL_TIMEOUT
        self.total_timeout = total_timeout or max(60.0, 4 * self.settings.coach_timeout)
        self._warming: asyncio.Future[None] | None = None

    async def warm_up(self) -> None:
        """Warm up once; concurrent callers (and the first answers) share the same run."""
        if self._warming is None:
            self._warming = asyncio.ensure_future(self._warm_up())
        await asyncio.shield(self._warming)

    async def _warm_up(self) -> None:
        """Import litellm, load the local model and prime litellm's first-call setup.

        Call it at startup (in a background task): cold, the first answer waits ~5 s for
        these; warm, a local first token takes tens of milliseconds.
        """
        litellm = await _litellm_off_loop()
        probe = [{"role": "user", "content": "hi"}]
        await asyncio.to_thread(
            litellm.token_counter, model=self.settings.coach_model, messages=probe
        )
        s = self.settings
        models = {s.coach_model, s.small_talk_model, s.summary_model, s.coach_fallback_model}
        for model in sorted(m for m in models if m.startswith("local/")):
            response = await litellm.acompletion(
                model=model, messages=probe, max_tokens=1, stream=True
            )
            async for _ in response:
                pass

    async def ensure_loaded(self) -> None:
        """Import litellm off the event loop (count_tokens and cost_usd need it loaded)."""
        await _litellm_off_loop()

    def count_tokens(self, model: str, messages: Sequence[Message]) -> int:
        """Prompt size as litellm counts it for ``model`` (offline tokenizers only)."""
        return int(load_litellm().token_counter(model=model, messages=list(messages)))

    def cost_usd(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        """Price from litellm's map; 0 (with a warning) for a model it does not know."""
        try:
            prompt_cost, completion_cost = load_litellm().cost_per_token(
                model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
            )
        except Exception as exc:
            log.warning("llm_no_price", model=model, error=str(exc))
            return 0.0
        return float(prompt_cost) + float(completion_cost)

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        model: str | None = None,
        fallback_model: str | None = None,
        max_tokens: int | None = None,
        route: str = "summary",
        temperature: float | None = None,
        background: bool = False,
    ) -> Completion:
        """The whole answer at once (summaries), with the same retry/fallback/ledger.
        ``background``: nobody waits for it, so the local model drops it for an answer
        (LLMUnavailable then, never a paid call to the fallback model instead)."""
        model = model or self.settings.summary_model
        if background and model.startswith(LOCAL_PREFIX):
            fallback_model = model
        events = self.stream(
            messages,
            model=model,
            fallback_model=fallback_model,
            max_tokens=max_tokens,
            route=route,
            temperature=temperature,
        )
        mark = BACKGROUND.set(background)
        try:
            async with contextlib.aclosing(events):
                async for event in events:
                    if isinstance(event, Completion):
                        return event
        finally:
            BACKGROUND.reset(mark)
        raise LLMUnavailable(["stream ended without a completion"])  # pragma: no cover

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        model: str | None = None,
        fallback_model: str | None = None,
        max_tokens: int | None = None,
        route: str = "coaching",
        temperature: float | None = None,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Token deltas as they arrive, then one ``Completion``; see the module docstring."""
        started = time.perf_counter()
        litellm = await _litellm_off_loop()
        primary = model or self.settings.coach_model
        fallback = fallback_model or self.settings.coach_fallback_model
        # A local model that timed out will not be faster on a retry: one attempt, then fallback.
        retries = [] if primary.startswith(LOCAL_PREFIX) else [primary]
        plan = [primary, *retries] + ([fallback] if fallback != primary else [])
        if self._warming is not None and not self._warming.done():
            # A cold start in progress: wait for it (inside the first-token budget) rather
            # than racing it for the same locks and doing the cold work twice.
            with contextlib.suppress(TimeoutError, Exception):
                async with asyncio.timeout(self.settings.coach_timeout / 2):
                    await asyncio.shield(self._warming)
        first_token_deadline = started + self.settings.coach_timeout
        failures: list[str] = []
        retry_same = True
        for index, candidate in enumerate(plan):
            if index == 1 and retries and not retry_same:
                continue  # a non-transient error: go straight to the fallback
            remaining = first_token_deadline - time.perf_counter()
            if remaining <= 0:
                failures.append(f"{candidate}: no time left")
                break
            budget = remaining / (len(plan) - index)  # share what is left with later attempts
            attempt = self._attempt(
                litellm,
                candidate,
                list(messages),
                max_tokens=max_tokens or self.settings.coach_max_tokens,
                temperature=temperature,
                route=route,
                started=started,
                first_token_deadline=time.perf_counter() + budget,
                failures=failures,
            )
            try:
                async for event in attempt:
                    yield event
                return
            except _AttemptFailed as exc:
                log.warning("llm_attempt_failed", attempt=str(exc), route=route)
                failures.append(str(exc))
                retry_same = exc.retryable
            finally:
                await attempt.aclose()
        raise LLMUnavailable(failures)

    async def _attempt(
        self,
        litellm: Any,
        model: str,
        messages: list[Message],
        *,
        max_tokens: int,
        temperature: float | None,
        route: str,
        started: float,
        first_token_deadline: float,
        failures: list[str],
    ) -> AsyncGenerator[StreamEvent, None]:
        attempt_started = time.perf_counter()
        extra: dict[str, Any] = {} if temperature is None else {"temperature": temperature}
        usage = _Usage()
        ttft: float | None = None
        response: Any = None
        try:
            try:
                async with asyncio.timeout_at(_loop_time(first_token_deadline)):
                    response = await litellm.acompletion(
                        model=model,
                        messages=messages,
                        stream=True,
                        stream_options={"include_usage": True},
                        max_tokens=max_tokens,
                        timeout=max(0.1, first_token_deadline - time.perf_counter()),
                        max_retries=0,
                        **extra,
                    )
                chunks = aiter(response)
                while True:
                    deadline = (
                        first_token_deadline if ttft is None else started + self.total_timeout
                    )
                    async with asyncio.timeout_at(_loop_time(deadline)):
                        chunk = await anext(chunks, None)
                    if chunk is None:
                        break
                    text = _read_chunk(chunk, usage)
                    if text:
                        if ttft is None:
                            ttft = time.perf_counter() - started
                            LLM_TTFT.labels(model, route).observe(
                                time.perf_counter() - attempt_started
                            )
                        usage.parts.append(text)
                        yield TokenDelta(text)
            except Exception as exc:
                reason = _describe(exc)
                if ttft is not None:  # the reader already has part of this answer
                    raise LLMUnavailable(
                        [*failures, f"{model}: {reason}"], "".join(usage.parts)
                    ) from exc
                raise _AttemptFailed(model, reason, retryable=_is_transient(exc)) from exc
        finally:
            if response is not None:
                await _close_quietly(response)
        yield self._finish(model, route, messages, usage, ttft, started, failures)

    def _finish(
        self,
        model: str,
        route: str,
        messages: list[Message],
        usage: _Usage,
        ttft: float | None,
        started: float,
        failures: list[str],
    ) -> Completion:
        text = "".join(usage.parts)
        source = "provider"
        if usage.prompt is None or usage.completion is None:
            source = "counted"
            usage.prompt = self.count_tokens(model, messages)
            usage.completion = int(load_litellm().token_counter(model=model, text=text))
        cost = self.cost_usd(model, usage.prompt, usage.completion)
        total = time.perf_counter() - started
        record_usage(model, route, usage.prompt, usage.completion, cost)
        return Completion(
            model=model,
            route=route,
            text=text,
            prompt_tokens=usage.prompt,
            completion_tokens=usage.completion,
            cost_usd=cost,
            ttft_ms=round((ttft if ttft is not None else total) * 1000, 2),
            total_ms=round(total * 1000, 2),
            finish_reason=usage.finish_reason,
            usage_source=source,
            failed_attempts=tuple(failures),
        )


def _read_chunk(chunk: Any, usage: _Usage) -> str:
    """The text delta of one streamed chunk; usage and finish reason are noted on the side."""
    reported = getattr(chunk, "usage", None)
    if reported is not None and getattr(reported, "completion_tokens", None) is not None:
        usage.prompt = int(reported.prompt_tokens or 0)
        usage.completion = int(reported.completion_tokens or 0)
    choices = getattr(chunk, "choices", None) or []
    if not choices:
        return ""
    if choices[0].finish_reason:
        usage.finish_reason = str(choices[0].finish_reason)
    delta = getattr(choices[0], "delta", None)
    content = getattr(delta, "content", None)
    return content if isinstance(content, str) else ""


async def _litellm_off_loop() -> Any:
    """The litellm module, imported on a worker thread the first time (it takes ~3 s)."""
    if load_litellm.cache_info().currsize:
        return load_litellm()
    return await asyncio.to_thread(load_litellm)


def _loop_time(perf_deadline: float) -> float:
    """Convert a perf_counter deadline to the running loop's clock."""
    return asyncio.get_running_loop().time() + (perf_deadline - time.perf_counter())


async def _close_quietly(response: Any) -> None:
    aclose = getattr(response, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception as exc:
        log.debug("llm_stream_close_failed", error=repr(exc))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    status = getattr(exc, "status_code", None)
    name = type(exc).__name__
    message = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{name}{f' {status}' if status else ''}: {message}"


def _is_transient(exc: BaseException) -> bool:
    """Worth retrying on the same model: timeouts, 429, 5xx and connection trouble."""
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status == 429 or status >= 500 or status == 408
    return True
