"""The coach through the whole app vs the model called directly, with the same prompt.

    python benchmarks/bench_coach_latency.py [--runs 8] [--max-tokens 48] [--json]

Serves the app (temp SQLite, one worker, model warmed up) on 127.0.0.1, signs up a fresh
member, and for each run POSTs a message and reads its SSE stream: time to first token is
measured from the GET of the stream to the first `token` event, as a browser sees it. Then,
with the server idle, the same prompt (rebuilt with the app's own prompt builder and checked
token for token against what the app reported) goes straight to llama.cpp. The overhead
before the first token is the difference of the medians."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stack import app_server

from app.services.coach.prompt import Turn, build_prompt, profile
from app.services.llm.local_model import get_smollm2
from app.services.views import Reputation

QUESTION = "Give me three tips to keep my running streak going this week."


def through_app(base: str, runs: int) -> tuple[list[dict[str, float]], dict[str, Any]]:
    results: list[dict[str, float]] = []
    with httpx.Client(base_url=base, timeout=60) as client:
        email = f"bench-{time.time_ns()}@example.test"
        client.post(
            "/api/v1/auth/signup",
            json={"email": email, "password": "bench password", "display_name": "Bench"},
        )
        token = client.post(
            "/api/v1/auth/token", json={"email": email, "password": "bench password"}
        ).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        member = client.get("/api/v1/me", headers=auth).json()
        rep = client.get(f"/api/v1/users/{member['id']}/reputation", headers=auth).json()
        done: dict[str, Any] = {}
        warm = False
        for _ in range(runs + 4):  # answers until warm (the cold start is not measured)
            if len(results) == runs:
                break
            posted = client.post(
                "/api/v1/coach/messages", json={"text": QUESTION}, headers=auth
            ).json()
            started = time.perf_counter()
            first = 0.0
            done = {}
            with client.stream("GET", posted["stream_url"], headers=auth) as stream:
                event = ""
                for line in stream.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data:") and event == "token" and not first:
                        first = time.perf_counter() - started
                    elif line.startswith("data:") and event == "done":
                        done = json.loads(line[5:].strip())
            total = time.perf_counter() - started
            if not done:
                print("a run ended without an answer (cold start or overload); retrying")
                continue
            if not warm:
                warm = True
                continue
            results.append(
                {"ttft_ms": first * 1000, "total_s": total, "tokens": done["completion_tokens"]}
            )
    return results, {"member": member, "reputation": rep, "done": done}


def direct(info: dict[str, Any], runs: int, max_tokens: int) -> tuple[list[dict[str, float]], int]:
    rep = Reputation(**{**info["reputation"], "history": []})
    messages = build_prompt(
        member_profile=profile(info["member"]["display_name"], rep, []),
        summary="",
        history=[Turn("user", QUESTION)],
        window=6,
        budget=1500,
        count_tokens=lambda m: 0,
    )
    model = get_smollm2()
    prompt_tokens = model.count_prompt_tokens(messages)

    async def one() -> dict[str, float]:
        started = time.perf_counter()
        first = 0.0
        count = 0
        async for item in model.astream(messages, max_tokens=max_tokens):
            if isinstance(item, str):
                first = first or time.perf_counter() - started
                count += 1
        return {"ttft_ms": first * 1000, "total_s": time.perf_counter() - started, "tokens": count}

    async def all_runs() -> list[dict[str, float]]:
        await one()  # warm-up
        return [await one() for _ in range(runs)]

    return asyncio.run(all_runs()), prompt_tokens


def summary(rows: list[dict[str, float]]) -> dict[str, float]:
    rates = [r["tokens"] / (r["total_s"] - r["ttft_ms"] / 1000) for r in rows if r["tokens"] > 1]
    return {
        "ttft_ms_p50": round(statistics.median(r["ttft_ms"] for r in rows), 1),
        "ttft_ms_min": round(min(r["ttft_ms"] for r in rows), 1),
        "tokens_per_s_p50": round(statistics.median(rates), 1) if rates else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        env = {**os.environ, "DATABASE_URL": url}
        import subprocess

        subprocess.run([sys.executable, "-m", "app", "db", "upgrade"], env=env, check=True)
        server_env = {
            "DATABASE_URL": url,
            "COACH_MAX_TOKENS": str(args.max_tokens),
            "COACH_WARMUP": "true",
            "COACH_RATE_LIMIT_PER_MINUTE": "1000",
            "LOGIN_RATE_LIMIT": "1000",
        }
        with app_server(server_env) as base:
            app_rows, info = through_app(base, args.runs)
    direct_rows, prompt_tokens = direct(info, args.runs, args.max_tokens)
    app_s, direct_s = summary(app_rows), summary(direct_rows)
    result = {
        "runs": args.runs,
        "prompt_tokens": {"app": info["done"]["prompt_tokens"], "direct": prompt_tokens},
        "app": app_s,
        "direct": direct_s,
        "overhead_before_first_token_ms": round(app_s["ttft_ms_p50"] - direct_s["ttft_ms_p50"], 1),
        "load_average": os.getloadavg(),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"coach latency, {args.runs} runs, {args.max_tokens} max tokens, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    print(f"prompt tokens: app {result['prompt_tokens']['app']}, direct {prompt_tokens}")
    for name, s in (("through the app (HTTP + SSE)", app_s), ("llama.cpp directly", direct_s)):
        print(
            f"  {name:<30} TTFT p50 {s['ttft_ms_p50']:>7.1f} ms (min {s['ttft_ms_min']:.1f})  "
            f"{s['tokens_per_s_p50']:>6.1f} tokens/s"
        )
    print(
        f"overhead before the first token: {result['overhead_before_first_token_ms']:.1f} ms"
        " (target < 20 ms)"
    )


if __name__ == "__main__":
    main()
