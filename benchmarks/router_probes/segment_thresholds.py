"""Probe: one threshold per conversation shape instead of one for all, on split halves of the
calibration rows (each half sets the bars for the other; five splits). The shapes: no history,
the coach's last turn asked a question, any other history. The bars are chosen together so the
half's coaching rows sent cheap stay within the budget (the rules' misses counted first, as
train-router does), maximising the small talk routed cheap.

    PYTHONPATH=src .venv/bin/python benchmarks/router_probes/segment_thresholds.py
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from app.services.coach.prompt import turns
from app.services.coach.routing import COACHING, SMALL_TALK, model, rule_decision
from app.services.coach.routing_model import DATA_DIR, challenges_of, model_miss_allowance

Row = dict[str, Any]
Shape = Callable[[Row], str]
BUDGET = 0.005


def scored(path: Path) -> list[Row]:
    """Each row with the rules' route, or the model's p(small talk) where the rules pass."""
    router, out = model(), []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        history = turns(row.get("history"))
        rule = rule_decision(history, row["text"])
        p = None if rule else router.p_small_talk(row["text"], history, challenges_of(row))
        last = history[-1] if history else None
        shape = "none" if last is None else ("asked" if "?" in last.content else "other")
        out.append({"label": row["label"], "rule": rule and rule.route, "p": p, "shape": shape})
    return out


def route(row: Row, bars: dict[str, float], shape: Shape) -> str:
    if row["p"] is None:
        return str(row["rule"])
    return SMALL_TALK if row["p"] >= bars.get(shape(row), 1.0) else COACHING


def fit(rows: Sequence[Row], shape: Shape) -> dict[str, float]:
    """The bars (one per shape) that route the most small talk within the budget."""
    coaching = [r for r in rows if r["label"] == COACHING]
    rule_misses = sum(r["rule"] == SMALL_TALK for r in coaching)
    allowed = model_miss_allowance(BUDGET, len(coaching), rule_misses)
    options: dict[str, list[tuple[int, float, int]]] = {}
    for name in {shape(r) for r in rows if r["p"] is not None}:
        mine = [r for r in rows if r["p"] is not None and shape(r) == name]
        tops = sorted((r["p"] for r in mine if r["label"] == COACHING), reverse=True)
        small = [r["p"] for r in mine if r["label"] != COACHING]
        options[name] = []
        for k in range(allowed + 1):  # k of this shape's coaching rows sent cheap
            bar = min(1.0, max(0.5, tops[k] + 1e-4)) if k < len(tops) else 0.5
            options[name].append((k, bar, sum(p >= bar for p in small)))
    best: dict[int, tuple[int, dict[str, float]]] = {0: (0, {})}
    for name, choices in options.items():  # knapsack over the shapes
        grown: dict[int, tuple[int, dict[str, float]]] = {}
        for used, (gain, bars) in best.items():
            for k, bar, routed in choices:
                if used + k <= allowed and grown.get(used + k, (-1, {}))[0] < gain + routed:
                    grown[used + k] = (gain + routed, {**bars, name: bar})
        best = grown
    return max(best.values(), key=lambda kept: kept[0])[1]


def main() -> int:
    rows = scored(DATA_DIR / "routing" / "calibration.jsonl")
    shapes: dict[str, Shape] = {"one bar": lambda r: "all", "per shape": lambda r: r["shape"]}
    print(f"calibration rows {len(rows)}, budget {BUDGET:.1%}; five split halves, A sets B's bars")
    for seed in range(5):
        order = rows[:]
        random.Random(seed).shuffle(order)
        setter, held = order[: len(order) // 2], order[len(order) // 2 :]
        for name, shape in shapes.items():
            bars = fit(setter, shape)
            accuracy = sum(route(r, bars, shape) == r["label"] for r in held) / len(held)
            coaching = [r for r in held if r["label"] == COACHING]
            cheap = sum(route(r, bars, shape) == SMALL_TALK for r in coaching)
            shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(bars.items()))
            print(
                f"split {seed} {name:9}: accuracy {accuracy:.1%}, coaching cheap {cheap} of "
                f"{len(coaching)} ({cheap / len(coaching):.2%}); bars {shown}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
