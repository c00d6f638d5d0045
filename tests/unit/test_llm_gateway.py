"""LLMGateway end to end on the real local model: streaming, usage, cancellation, fallback."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from prometheus_client import REGISTRY

from app.services.llm import Completion, LLMGateway, LLMUnavailable, TokenDelta
from app.services.llm.local_model import get_smollm2
from app.settings import get_settings

LOCAL = "local/smollm2"
MESSAGES = [
    {"role": "system", "content": "You are a concise fitness coach."},
    {"role": "user", "content": "How do I keep a daily walking habit going?"},
]


@pytest.fixture(scope="module")
async def gateway() -> LLMGateway:
    settings = dataclasses.replace(
        get_settings(), coach_model=LOCAL, coach_fallback_model=LOCAL, summary_model=LOCAL
    )
    gateway = LLMGateway(settings)
    await gateway.warm_up()
    return gateway


@pytest.fixture
def openai_at(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A dummy key so the openai provider gets as far as the network (never the internet)."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-dummy")
    return None


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def collect(events: AsyncIterator[object]) -> tuple[list[str], Completion]:
    deltas: list[str] = []
    final: Completion | None = None
    async for event in events:
        if isinstance(event, TokenDelta):
            deltas.append(event.text)
        else:
            assert isinstance(event, Completion)
            final = event
    assert final is not None
    return deltas, final


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_local_stream_yields_deltas_then_a_priced_record(gateway: LLMGateway) -> None:
    before = metric("momentum_llm_tokens_total", model=LOCAL, route="coaching", kind="completion")
    deltas, final = await collect(gateway.stream(MESSAGES, max_tokens=16))
    assert len(deltas) >= 3
    assert final.text == "".join(deltas)
    assert final.model == LOCAL
    assert final.usage_source == "provider"
    assert final.prompt_tokens > 10
    assert 1 <= final.completion_tokens <= 16
    assert final.cost_usd == 0
    assert 0 < final.ttft_ms <= final.total_ms
    assert not final.used_fallback
    after = metric("momentum_llm_tokens_total", model=LOCAL, route="coaching", kind="completion")
    assert after - before == final.completion_tokens
    assert metric("momentum_llm_time_to_first_token_seconds_count", model=LOCAL, route="coaching")


async def test_complete_returns_the_whole_answer(gateway: LLMGateway) -> None:
    final = await gateway.complete(MESSAGES, max_tokens=8)
    assert final.text.strip()
    assert final.route == "summary"
    assert 1 <= final.completion_tokens <= 8


async def test_count_tokens_uses_litellm_counter(gateway: LLMGateway) -> None:
    assert gateway.count_tokens(LOCAL, MESSAGES) > 10


async def wait_idle(timeout: float = 5.0) -> float:
    started = time.perf_counter()
    while get_smollm2().is_generating and time.perf_counter() - started < timeout:
        await asyncio.sleep(0.005)
    return time.perf_counter() - started


async def test_closing_the_stream_stops_generation_quickly(gateway: LLMGateway) -> None:
    stream = gateway.stream(MESSAGES, max_tokens=400, temperature=0.8)
    seen = 0
    async for event in stream:
        if isinstance(event, TokenDelta):
            seen += 1
            if seen == 3:
                break
    closed_at = time.perf_counter()
    await stream.aclose()
    stopped_in = await wait_idle() + (time.perf_counter() - closed_at)
    assert stopped_in < 1.0, f"generation went on for {stopped_in:.3f}s"
    result = get_smollm2().last_result
    assert result is not None
    assert result.finish_reason == "cancelled"
    assert result.completion_tokens < 400


async def test_cancelling_the_consumer_task_stops_generation(gateway: LLMGateway) -> None:
    first = asyncio.Event()

    async def consume() -> None:
        async for event in gateway.stream(MESSAGES, max_tokens=400, temperature=0.8):
            if isinstance(event, TokenDelta):
                first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 10)
    cancelled_at = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_idle()
    assert time.perf_counter() - cancelled_at < 1.0
    assert get_smollm2().last_result is not None
    assert get_smollm2().last_result.finish_reason == "cancelled"


async def test_closed_port_falls_back_to_local(
    gateway: LLMGateway, openai_at: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_BASE", f"http://127.0.0.1:{closed_port()}/v1")
    started = time.perf_counter()
    deltas, final = await collect(
        gateway.stream(MESSAGES, model="openai/gpt-4o-mini", fallback_model=LOCAL, max_tokens=12)
    )
    assert time.perf_counter() - started < 15
    assert final.model == LOCAL
    assert deltas
    assert len(final.failed_attempts) == 2  # the first try and its one retry
    assert all(a.startswith("openai/gpt-4o-mini") for a in final.failed_attempts)


async def http_server(status_line: bytes, hits: list[int], hang: bool = False) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        hits.append(1)
        if hang:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(30)
            return
        body = b'{"error": {"message": "slow down", "type": "rate_limit"}}'
        writer.write(
            status_line
            + b"\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_429_is_retried_once_then_falls_back(
    gateway: LLMGateway, openai_at: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    hits: list[int] = []
    server = await http_server(b"HTTP/1.1 429 Too Many Requests", hits)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setenv("OPENAI_API_BASE", f"http://127.0.0.1:{port}/v1")
    async with server:
        _, final = await collect(
            gateway.stream(MESSAGES, model="openai/gpt-4o-mini", fallback_model=LOCAL, max_tokens=8)
        )
    assert final.model == LOCAL
    assert len(hits) == 2
    assert "429" in final.failed_attempts[0]


async def test_silent_provider_times_out_then_falls_back(
    openai_at: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = LLMGateway(dataclasses.replace(get_settings(), coach_timeout=3.0))
    await gateway.warm_up()  # litellm's import and first-call setup are not under test
    hits: list[int] = []
    server = await http_server(b"HTTP/1.1 200 OK", hits, hang=True)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setenv("OPENAI_API_BASE", f"http://127.0.0.1:{port}/v1")
    started = time.perf_counter()
    async with server:
        _, final = await collect(
            gateway.stream(MESSAGES, model="openai/gpt-4o-mini", fallback_model=LOCAL, max_tokens=8)
        )
        server.close()
    assert final.model == LOCAL
    assert len(hits) == 2
    assert final.ttft_ms < 3000  # the first token beat coach_timeout, failed attempts included
    assert time.perf_counter() - started < 10


async def test_everything_down_raises_llm_unavailable(
    gateway: LLMGateway, openai_at: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_BASE", f"http://127.0.0.1:{closed_port()}/v1")
    with pytest.raises(LLMUnavailable) as caught:
        await collect(
            gateway.stream(
                MESSAGES, model="openai/gpt-4o-mini", fallback_model="openai/gpt-4o", max_tokens=8
            )
        )
    assert len(caught.value.attempts) == 3


async def test_non_transient_error_skips_the_retry(gateway: LLMGateway) -> None:
    _, final = await collect(
        gateway.stream(MESSAGES, model="local/no-such-model", fallback_model=LOCAL, max_tokens=4)
    )
    assert final.model == LOCAL
    assert len(final.failed_attempts) == 1  # a 404 is not retried on the same model
    assert "404" in final.failed_attempts[0]


async def test_concurrent_streams_share_the_model_one_at_a_time(gateway: LLMGateway) -> None:
    results = await asyncio.gather(
        *(collect(gateway.stream(MESSAGES, max_tokens=8)) for _ in range(3))
    )
    for deltas, final in results:
        assert deltas
        assert final.text == "".join(deltas)
        assert 1 <= final.completion_tokens <= 8


async def test_remote_models_are_priced_from_litellms_map(gateway: LLMGateway) -> None:
    assert gateway.cost_usd("openai/gpt-4o-mini", 1000, 1000) > 0
    assert gateway.cost_usd("gpt-4o", 1000, 1000) > gateway.cost_usd("gpt-4o-mini", 1000, 1000)
    assert gateway.cost_usd(LOCAL, 1000, 1000) == 0
    assert gateway.cost_usd("nobody/knows-this-model", 10, 10) == 0


async def openai_sse_server(words: list[str], *, finish: bool = True) -> asyncio.Server:
    """An OpenAI-compatible server that streams ``words`` and, like llama.cpp's, no usage."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.lower().split(b"\r\n")
            if line.startswith(b"content-length:")
        )
        await reader.readexactly(length)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
        )
        ending = [("", "stop")] if finish else []  # no finish_reason: the stream broke
        for word, reason in [*((w, None) for w in words), *ending]:
            chunk = {
                "id": "x",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "gpt-4o-mini",
                "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": reason}],
            }
            writer.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            await writer.drain()
        writer.write(b"data: [DONE]\n\n")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_remote_stream_without_usage_is_counted_and_priced(
    gateway: LLMGateway, openai_at: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await openai_sse_server(["Walk ", "after ", "lunch ", "daily."])
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setenv("OPENAI_API_BASE", f"http://127.0.0.1:{port}/v1")
    async with server:
        deltas, final = await collect(
            gateway.stream(MESSAGES, model="openai/gpt-4o-mini", fallback_model=LOCAL)
        )
    assert "".join(deltas) == "Walk after lunch daily."
    assert final.model == "openai/gpt-4o-mini"
    # litellm fills in usage it did not receive (include_usage), with the same counter
    assert final.prompt_tokens == gateway.count_tokens("openai/gpt-4o-mini", MESSAGES)
    assert final.completion_tokens > 0
    assert final.cost_usd > 0


async def test_failure_after_the_first_token_is_not_retried(
    gateway: LLMGateway, openai_at: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await openai_sse_server(["Walk ", "after "], finish=False)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setenv("OPENAI_API_BASE", f"http://127.0.0.1:{port}/v1")
    deltas: list[str] = []

    async def consume() -> None:
        async for event in gateway.stream(
            MESSAGES, model="openai/gpt-4o-mini", fallback_model=LOCAL
        ):
            assert isinstance(event, TokenDelta)
            deltas.append(event.text)

    async with server:
        with pytest.raises(LLMUnavailable) as caught:
            await consume()
    assert "".join(deltas) == "Walk after "
    assert caught.value.partial_text == "Walk after "
    assert len(caught.value.attempts) == 1


def test_litellm_logs_no_plain_text_line_per_call() -> None:
    """Its INFO line per call is not JSON and would sit between our JSON log lines. The served
    app's root logger is at INFO (Litestar's logging config), which litellm's loggers inherit."""
    import logging

    from app.services.llm.gateway import load_litellm

    assert load_litellm().suppress_debug_info  # no "Give Feedback" print on each error
    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.INFO)
    try:
        for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
            assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
        assert logging.getLogger("LiteLLM").isEnabledFor(logging.WARNING)
    finally:
        root.setLevel(before)


async def test_background_work_yields_to_an_answer(
    gateway: LLMGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A summary running on the local model stops at its next token when an answer comes:
    the member does not wait behind the memory (which then keeps its extractive notes), and
    the summary is not sent to a paid fallback model instead."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-dummy")
    monkeypatch.setenv("OPENAI_API_BASE", f"http://127.0.0.1:{closed_port()}/v1")
    remote_fallback = dataclasses.replace(gateway.settings, coach_fallback_model="openai/gpt-4o")
    gateway = LLMGateway(remote_fallback)
    local = get_smollm2()
    summary = asyncio.create_task(
        gateway.complete(MESSAGES, max_tokens=400, temperature=0.0, background=True)
    )
    async with asyncio.timeout(30):
        while not local.is_generating:
            await asyncio.sleep(0.005)
    events = gateway.stream(MESSAGES, max_tokens=4)
    first = await anext(events)
    assert isinstance(first, TokenDelta)
    assert not summary.done() or summary.exception() is not None
    await events.aclose()
    with pytest.raises(LLMUnavailable, match="background work") as failed:
        await summary
    assert "openai" not in str(failed.value)
    # Without an answer waiting, background work runs to the end.
    done = await gateway.complete(MESSAGES, max_tokens=6, background=True)
    assert 1 <= done.completion_tokens <= 6
