"""Probe: several fits of the router's model, each from another seed, their logits averaged
(bagging; folded, that is one model whose hidden layer is the fits' layers side by side), on
split halves of the calibration rows (``_halves``: ten splits, three budgets of coaching sent
cheap). ``--repeat-coaching W`` fits on the training rows with each coaching row W times (a
class weight: the bar is set by the coaching rows that look most like small talk).

    PYTHONPATH=src .venv/bin/python benchmarks/router_probes/bagging.py [--fits 6] \
        [--repeat-coaching 1]

Each fit's logits on the calibration rows are kept in var/bagging/ (named by the seed, the
weight and ``_halves.fit_hash``), for ``rule_ablation.py --logits``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _halves import (
    LOGITS_DIR,
    at_budgets,
    fit_hash,
    p_small_talk,
    probabilities,
    read_rows,
    rule_codes,
    split_halves,
)

from app.services.coach import routing_fit
from app.services.coach.prompt import turns
from app.services.coach.routing import SMALL_TALK, rule_decision, rule_route
from app.services.coach.routing_model import train


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fits", type=int, default=6, help="seeds 0 .. FITS-1")
    parser.add_argument("--repeat-coaching", type=int, default=1, metavar="W")
    args = parser.parse_args()
    if args.fits < 1 or args.repeat_coaching < 1:
        parser.error("--fits and --repeat-coaching must be 1 or more")
    training, calibration = read_rows("train"), read_rows("calibration")
    coaching = [r for r in training if r["label"] != SMALL_TALK]
    training += coaching * (args.repeat_coaching - 1)
    histories = [turns(r.get("history")) for r in calibration]
    pairs = zip(calibration, histories, strict=True)
    rule = rule_codes(rule_decision(h, r["text"]) for r, h in pairs)
    small_talk = np.array([r["label"] == SMALL_TALK for r in calibration])
    LOGITS_DIR.mkdir(parents=True, exist_ok=True)
    logits = []
    for seed in range(args.fits):
        saved = LOGITS_DIR / f"logits-{fit_hash()}-w{args.repeat_coaching}-seed{seed}.npy"
        if not saved.exists():
            started, shipped_seed = time.perf_counter(), routing_fit.SEED
            routing_fit.SEED = seed
            try:
                model = train(training, calibration=calibration, rule_route=rule_route)
            finally:
                routing_fit.SEED = shipped_seed
            p = np.clip(p_small_talk(model, calibration, histories), 1e-9, 1 - 1e-9)
            np.save(saved, np.log(p / (1 - p)))
            print(f"seed {seed} fitted in {time.perf_counter() - started:.0f} s", flush=True)
        logits.append(np.load(saved))
    print(
        f"calibration {len(calibration)} rows; coaching rows x{args.repeat_coaching};"
        f" fits saved as {LOGITS_DIR}/logits-{fit_hash()}-w{args.repeat_coaching}-seed*.npy"
    )
    for k in range(1, args.fits + 1):
        p = probabilities(np.mean(logits[:k], axis=0))
        print(f"{k} fit(s) averaged  {at_budgets(p, small_talk, rule)}", flush=True)
    for seed, z in enumerate(logits):
        print(f"seed {seed} alone     {split_halves(probabilities(z), small_talk, rule, 0.005)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
