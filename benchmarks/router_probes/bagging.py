"""Probe: several fits of the router's model, each from another seed, their logits averaged
(bagging; folded, that is one model whose hidden layer is the fits' layers side by side), on
split halves of the calibration rows (each half sets the threshold for the other, the rules'
misses counted first, as train-router does; ten splits), at three budgets of coaching sent cheap.

    PYTHONPATH=src .venv/bin/python benchmarks/router_probes/bagging.py [FITS]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from app.services.coach import routing_fit
from app.services.coach.prompt import turns
from app.services.coach.routing import SMALL_TALK, rule_decision, rule_route
from app.services.coach.routing_model import DATA_DIR, challenges_of, model_miss_allowance, train

BUDGETS = (0.005, 0.0075, 0.01)
SPLITS = 10


def read(name: str) -> list[dict[str, Any]]:
    path = DATA_DIR / "routing" / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def split_halves(z: Any, small_talk: Any, rule: Any, budget: float) -> str:
    accuracies, cheap, coaching = [], 0, 0
    for seed in range(SPLITS):
        order = np.random.default_rng(100 + seed).permutation(len(z))
        halves = (order[: len(z) // 2], order[len(z) // 2 :])
        for setter, scored in (halves, halves[::-1]):
            rows = setter[~small_talk[setter]]
            allowed = model_miss_allowance(budget, len(rows), int((rule[rows] == 1).sum()))
            bar = np.sort(z[rows[rule[rows] == 0]])[::-1][allowed]
            cheap_route = np.where(rule[scored] == 0, z[scored] > bar, rule[scored] == 1)
            accuracies.append(float((cheap_route == small_talk[scored]).mean()))
            cheap += int((cheap_route & ~small_talk[scored]).sum())
            coaching += int((~small_talk[scored]).sum())
    return f"{np.mean(accuracies):.2%} (sd {np.std(accuracies):.2%}), cheap {cheap / coaching:.2%}"


def main(fits: int) -> int:
    training, calibration = read("train"), read("calibration")
    histories = [turns(r.get("history")) for r in calibration]
    decisions = [rule_decision(h, r["text"]) for r, h in zip(calibration, histories, strict=True)]
    codes = {None: 0, SMALL_TALK: 1}
    rule = np.array([codes.get(d.route if d else None, 2) for d in decisions])
    small_talk = np.array([r["label"] == SMALL_TALK for r in calibration])
    cache = Path("var/bagging")
    cache.mkdir(parents=True, exist_ok=True)
    logits = []
    for seed in range(fits):
        saved = cache / f"logits-seed{seed}.npy"
        if not saved.exists():
            started = time.perf_counter()
            routing_fit.SEED = seed
            model = train(training, calibration=calibration, rule_route=rule_route)
            p = np.array(
                [
                    model.p_small_talk(r["text"], h, challenges_of(r))
                    for r, h in zip(calibration, histories, strict=True)
                ]
            )
            p = np.clip(p, 1e-9, 1 - 1e-9)
            np.save(saved, np.log(p / (1 - p)))
            print(f"seed {seed} fitted in {time.perf_counter() - started:.0f} s", flush=True)
        logits.append(np.load(saved))
    print(f"calibration {len(calibration)} rows; {SPLITS} split halves")
    for k in range(1, fits + 1):
        z = np.mean(logits[:k], axis=0)
        cells = [f"{b:.2%}: {split_halves(z, small_talk, rule, b)}" for b in BUDGETS]
        print(f"{k} fit(s) averaged  " + " | ".join(cells), flush=True)
    for seed, z in enumerate(logits):
        print(f"seed {seed} alone     {split_halves(z, small_talk, rule, 0.005)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5))
