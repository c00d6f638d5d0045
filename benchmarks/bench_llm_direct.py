"""Time to first token and tokens/s: llama_cpp called directly vs through LLMGateway.

Usage: python benchmarks/bench_llm_direct.py [--runs 5] [--max-tokens 64] [--json]
Prints the model load time, the litellm import time, and per path the median TTFT and
decode rate; "overhead" is the gateway's added time before the first token.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from app.services.llm.gateway import LLMGateway, TokenDelta, load_litellm
from app.services.llm.local_model import find_smollm2_gguf, get_smollm2

MESSAGES = [
    {"role": "system", "content": "You are a concise fitness coach."},
    {"role": "user", "content": "Write a short plan to walk 10,000 steps a day for a month."},
]


def direct_llama(llama: Any, max_tokens: int) -> tuple[float, float, int]:
    """llama_cpp's own create_chat_completion(stream=True): (ttft s, total s, chunks)."""
    started = time.perf_counter()
    ttft = 0.0
    chunks = 0
    for chunk in llama.create_chat_completion(
        MESSAGES, max_tokens=max_tokens, temperature=0.0, stream=True
    ):
        if chunk["choices"][0]["delta"].get("content"):
            chunks += 1
            if chunks == 1:
                ttft = time.perf_counter() - started
    return ttft, time.perf_counter() - started, chunks


async def through_gateway(gateway: LLMGateway, max_tokens: int) -> tuple[float, float, int]:
    started = time.perf_counter()
    ttft = 0.0
    tokens = 0
    async for event in gateway.stream(MESSAGES, max_tokens=max_tokens, temperature=0.0):
        if isinstance(event, TokenDelta):
            if not ttft:
                ttft = time.perf_counter() - started
        else:
            tokens = event.completion_tokens
    return ttft, time.perf_counter() - started, tokens


def summarize(rows: list[tuple[float, float, int]]) -> dict[str, float]:
    ttft = statistics.median(r[0] for r in rows)
    rate = statistics.median(r[2] / (r[1] - r[0]) for r in rows if r[1] > r[0] and r[2] > 1)
    return {"ttft_ms": round(ttft * 1000, 2), "tokens_per_s": round(rate, 1)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from llama_cpp import Llama

    started = time.perf_counter()
    llama = Llama(model_path=str(find_smollm2_gguf()), n_ctx=2048, n_threads=2, verbose=False)
    direct_load = time.perf_counter() - started
    started = time.perf_counter()
    load_litellm()
    litellm_import = time.perf_counter() - started
    gateway = LLMGateway()
    gateway_load = await get_smollm2().warm_up()

    direct_llama(llama, 4)  # warm both paths
    await through_gateway(gateway, 4)
    direct_rows, gateway_rows = [], []
    for _ in range(args.runs):  # interleave so drift hits both alike
        direct_rows.append(direct_llama(llama, args.max_tokens))
        gateway_rows.append(await through_gateway(gateway, args.max_tokens))
    direct, via = summarize(direct_rows), summarize(gateway_rows)
    report = {
        "model_load_s": {"direct": round(direct_load, 3), "local_model": round(gateway_load, 3)},
        "litellm_import_s": round(litellm_import, 2),
        "direct_llama_cpp": direct,
        "gateway": via,
        "gateway_ttft_overhead_ms": round(via["ttft_ms"] - direct["ttft_ms"], 2),
        "runs": args.runs,
        "max_tokens": args.max_tokens,
    }
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
