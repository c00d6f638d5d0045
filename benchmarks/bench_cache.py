"""Hot reads with the cache on and off, in one run: requests/s, p50/p95, SQL per request.

    python benchmarks/bench_cache.py [--seconds 15] [--vus 16] [--rounds 3] [--database NAME]

Seeds a PostgreSQL database at `--scale load` (idempotent), then serves it on 127.0.0.1 -
with Redis, then with CACHE_ENABLED=false, `--rounds` times interleaved - and drives each
with k6 (loadtests/hot_reads.js, closed model: as fast as the server answers). Reports the
median round: one pair of runs on a shared 2-core box moves by +-20 %."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
from pathlib import Path

from _stack import ROOT, app_server, k6_binary, metric_total, seeded_postgres


def run_k6(base: str, seconds: int, vus: int, paths: str = "") -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        summary = Path(tmp) / "summary.json"
        subprocess.run(  # noqa: S603 - our own k6 binary and script
            [
                k6_binary(),
                "run",
                "--quiet",
                "--address",
                "127.0.0.1:0",  # k6's own API server: never collide with another k6
                "--summary-export",
                str(summary),
                "-e",
                f"BASE_URL={base}",
                "-e",
                f"DURATION={seconds}s",
                "-e",
                f"VUS={vus}",
                "-e",
                "CHALLENGES=100",
                "-e",
                "USERS=300",
                "-e",
                f"PATHS={paths}",
                str(ROOT / "loadtests" / "hot_reads.js"),
            ],
            check=False,
            stdout=subprocess.DEVNULL,
        )
        data = json.loads(summary.read_text())
    metrics = data["metrics"]
    duration = metrics["http_req_duration"]
    return {
        "rps": metrics["http_reqs"]["rate"],
        "p50_ms": duration["med"],
        "p95_ms": duration["p(95)"],
        "p99_ms": duration["p(99)"],
        "failed": metrics["http_req_failed"]["value"],
        "requests": metrics["http_reqs"]["count"],
    }


HOT = [
    "/api/v1/challenges?page=1",
    "/api/v1/challenges/7",
    "/api/v1/leaderboard?limit=10",
    "/api/v1/users/11/reputation",
    "/api/v1/challenges/7/check-ins",
]


def warm_hit_queries(base: str, rounds: int = 20) -> float:
    """SQL statements per request when every read is already cached (should be 0)."""
    import urllib.request

    def get_all() -> None:
        for path in HOT:
            with urllib.request.urlopen(base + path, timeout=5) as res:  # noqa: S310 - loopback
                res.read()

    get_all()
    before = metric_total(base, "momentum_db_queries_total")
    for _ in range(rounds):
        get_all()
    return (metric_total(base, "momentum_db_queries_total") - before) / (rounds * len(HOT))


def measure(base: str, seconds: int, vus: int) -> dict[str, float]:
    run_k6(base, 3, vus)  # warm-up: fill the cache and the connection pools
    queries0 = metric_total(base, "momentum_db_queries_total")
    result = run_k6(base, seconds, vus)
    queries = metric_total(base, "momentum_db_queries_total") - queries0
    result["queries_per_request"] = queries / max(result["requests"], 1)
    result["warm_hit_queries_per_request"] = warm_hit_queries(base)
    return result


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median throughput (a whole run, so its figures belong together;
    the lower middle one when the count is even)."""
    return sorted(runs, key=lambda r: r["rps"])[(len(runs) - 1) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--vus", type=int, default=16)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="on/off pairs, interleaved; the median is reported (this box is shared and noisy)",
    )
    parser.add_argument("--database", default="momentum_bench")
    args = parser.parse_args()

    url = seeded_postgres(args.database)
    modes = {
        "cache on": {"REDIS_URL": "redis://127.0.0.1:6379/15"},
        "cache off": {"CACHE_ENABLED": "false"},
    }
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    ceilings: list[dict[str, float]] = []
    ratios: list[float] = []
    for _ in range(args.rounds):
        for mode, env in modes.items():
            with app_server({"DATABASE_URL": url, **env}) as base:
                runs[mode].append(measure(base, args.seconds, args.vus))
                if mode == "cache on":
                    # The same stack answering GET /healthz (no cache, no SQL): what a cache
                    # hit could reach at best if reading the cache cost nothing.
                    ceilings.append(run_k6(base, args.seconds, args.vus, paths="/healthz"))
        ratios.append(runs["cache on"][-1]["rps"] / max(runs["cache off"][-1]["rps"], 1e-9))
    results = {mode: median_run(r) for mode, r in runs.items()}
    ceiling = median_run(ceilings)

    print(
        f"\nHot reads, {args.seconds}s each, {args.vus} concurrent clients, 1 worker, "
        f"PostgreSQL (load scale); median of {args.rounds} interleaved on/off rounds"
    )
    print(
        f"{'mode':<10} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'SQL/req':>8} "
        f"{'failed':>7} {'SQL/warm hit':>13}"
    )
    for mode, r in results.items():
        print(
            f"{mode:<10} {r['rps']:>8.0f} {r['p50_ms']:>8.2f} {r['p95_ms']:>8.2f} "
            f"{r['p99_ms']:>8.2f} "
            f"{r['queries_per_request']:>8.2f} {r['failed']:>7.2%} "
            f"{r['warm_hit_queries_per_request']:>13.2f}"
        )
    for mode, r in runs.items():
        print(f"{mode} req/s by round: " + ", ".join(f"{x['rps']:.0f}" for x in r))
    ratio = statistics.median(ratios)
    best = ceiling["rps"] / max(results["cache off"]["rps"], 1e-9)
    print(
        f"throughput ratio (on/off): {ratio:.1f}x median "
        f"(rounds: {', '.join(f'{x:.1f}x' for x in ratios)})"
    )
    print(
        f"framework ceiling (GET /healthz, same server): {ceiling['rps']:.0f} req/s, "
        f"p50 {ceiling['p50_ms']:.2f} ms -> the best ratio this stack allows is {best:.1f}x"
    )
    print(json.dumps({"ratio": ratio, "ratios": ratios, "ceiling": ceiling, **results}))


if __name__ == "__main__":
    main()
