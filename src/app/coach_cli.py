"""`python -m app coach route | bench | train-router | eval-router` (registered by app.cli)."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from app.services.coach.routing_model import DATA_DIR, WEIGHTS_PATH

ROUTING_DIR = DATA_DIR / "routing"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    coach = sub.add_parser("coach", help="coach tools: routing and the spend benchmark")
    actions = coach.add_subparsers(dest="coach_command", required=True)

    route = actions.add_parser(
        "route",
        help='JSON lines {"history","text"} (optionally "challenges": active challenge titles) '
        'on stdin -> {"route","model"} per line',
    )
    route.add_argument("--reason", action="store_true", help="also print the reason")
    route.set_defaults(func=_route)

    bench = actions.add_parser("bench", help="replay conversations: baseline vs policy spend")
    bench.add_argument("--conversations", type=Path, default=None)
    bench.add_argument(
        "--price-as",
        default=None,
        help="route=model pairs (default: coaching=gpt-4o,small_talk=gpt-4o-mini,"
        "summary=gpt-4o-mini)",
    )
    bench.add_argument("--json", action="store_true", help="print only the JSON report")
    bench.add_argument("--limit", type=int, default=None, help="first N conversations")
    bench.add_argument("--max-turns", type=int, default=None, help="first N turns of each")
    bench.add_argument("--max-tokens", type=int, default=32, help="answer length cap")
    bench.set_defaults(func=_bench)

    train = actions.add_parser("train-router", help="fit the routing model on the train split")
    for option, split, what in (
        ("--data", "train", "labelled rows to fit on"),
        ("--calibration", "calibration", "labelled rows, never fitted on, that set the threshold"),
    ):
        train.add_argument(
            option,
            type=Path,
            nargs="+",
            default=[ROUTING_DIR / f"{split}.jsonl"],
            help=f"{what} (JSON lines files; default: the {split} split)",
        )
    train.add_argument("--out", type=Path, default=WEIGHTS_PATH)
    train.set_defaults(func=_train)

    evaluate = actions.add_parser("eval-router", help="accuracy and p99 latency on a split")
    evaluate.add_argument("--data", type=Path, default=ROUTING_DIR / "heldout.jsonl")
    evaluate.add_argument("--errors", action="store_true", help="list the misrouted rows")
    evaluate.set_defaults(func=_evaluate)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def _route(args: argparse.Namespace) -> int:
    from app.services.coach.prompt import turns
    from app.services.coach.routing import COACHING, classify
    from app.services.coach.routing_model import challenges_of
    from app.settings import get_settings

    settings = get_settings()
    models = {COACHING: settings.coach_model}
    for number, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            if not isinstance(item, dict):
                raise ValueError("each line must be a JSON object")
            challenges = challenges_of(item)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            print(f"coach route: line {number}: {exc}", file=sys.stderr)
            return 2
        history, text = turns(item.get("history")), str(item.get("text", ""))
        decision = classify(history, text, challenges)
        out = {
            "route": decision.route,
            "model": models.get(decision.route, settings.small_talk_model),
        }
        if args.reason:
            out["reason"] = decision.reason
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
    return 0


def _bench(args: argparse.Namespace) -> int:
    from app.services.coach import bench
    from app.settings import get_settings

    report = asyncio.run(
        bench.run(
            get_settings(),
            conversations_path=args.conversations or bench.DEFAULT_CONVERSATIONS,
            price_as=bench.parse_price_as(args.price_as),
            limit=args.limit,
            max_turns=args.max_turns,
            max_tokens=args.max_tokens,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
    )
    if not args.json:
        sys.stderr.write(
            f"baseline ${report['baseline']['cost_usd']:.4f}  policy "
            f"${report['policy']['cost_usd']:.4f}  reduction {report['reduction']:.1%}\n"
        )
    print(json.dumps(report))
    return 0


def _train(args: argparse.Namespace) -> int:
    from app.services.coach.routing import rule_route
    from app.services.coach.routing_model import train

    model = train(
        [row for path in args.data for row in _read_jsonl(path)],
        calibration=[row for path in args.calibration for row in _read_jsonl(path)],
        rule_route=rule_route,
    )
    args.out.write_text(model.to_json() + "\n", encoding="utf-8")
    print(json.dumps({"out": str(args.out), "threshold": model.threshold, **model.meta}))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from app.services.coach.prompt import turns
    from app.services.coach.routing import classify, evaluate, warm_up
    from app.services.coach.routing_model import challenges_of

    rows = _read_jsonl(args.data)
    warm_up()  # weights and sentence encoder loaded before timing
    timings, cpu = [], []
    for row in rows:
        history = turns(row.get("history"))
        started, started_cpu = time.perf_counter(), time.process_time()
        decision = classify(history, str(row["text"]), challenges_of(row))
        timings.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
        if args.errors and decision.route != row["label"]:
            print(json.dumps({"label": row["label"], "text": row["text"], "got": decision.reason}))
    timings.sort()
    cpu.sort()
    at = min(len(timings) - 1, int(len(timings) * 0.99))
    scores = evaluate(rows)
    n = int(scores["n"])
    print(
        json.dumps(
            {
                **scores,
                # how far a split of this size can sit from the router's true accuracy
                "accuracy_95ci": wilson_interval(round(scores["accuracy"] * n), n),
                "p50_ms": round(timings[len(timings) // 2], 4),
                "p99_ms": round(timings[at], 4),
                "p99_cpu_ms": round(cpu[at], 4),
            }
        )
    )
    return 0


def wilson_interval(successes: int, n: int, z: float = 1.96) -> list[float]:
    """The Wilson score interval of a proportion (95 % for z = 1.96), rounded to 0.1 %."""
    if n == 0:
        return [0.0, 1.0]
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 3), round(min(1.0, centre + half), 3)]
