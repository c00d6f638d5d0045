"""Step 3 of the fine-tuned encoder probe (the project's venv): accuracy and coaching sent
cheap on split halves of the calibration rows (each half sets the threshold for the other, as
train-router does: the rules first, their misses counted against the budget; three splits), for
the shipped router's logit, the fine-tuned encoder's and their sum (and, after ``finetune.py
--onnx``, the exported int8 file's and its sum), at several budgets.

    PYTHONPATH=src .venv/bin/python benchmarks/router_probes/report.py var/probe
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from app.services.coach.routing_model import model_miss_allowance

BUDGETS = (0.005, 0.0075, 0.01, 0.02)


def split_halves(z: Any, small_talk: Any, rule: Any, budget: float) -> tuple[float, int, int]:
    """Mean accuracy, and coaching rows sent cheap out of all coaching rows scored."""
    accuracies, cheap, coaching = [], 0, 0
    for seed in range(3):
        order = np.random.default_rng(100 + seed).permutation(len(z))
        halves = (order[: len(z) // 2], order[len(z) // 2 :])
        for setter, scored in (halves, halves[::-1]):
            rows = setter[~small_talk[setter]]
            allowed = model_miss_allowance(budget, len(rows), int((rule[rows] == 1).sum()))
            bar = np.sort(z[rows[rule[rows] == 0]])[::-1][allowed]
            model = z[scored] > bar
            cheap_route = np.where(rule[scored] == 0, model, rule[scored] == 1)
            accuracies.append(float((cheap_route == small_talk[scored]).mean()))
            cheap += int((cheap_route & ~small_talk[scored]).sum())
            coaching += int((~small_talk[scored]).sum())
    return float(np.mean(accuracies)), cheap, coaching


def main(folder: Path) -> None:
    rows = [json.loads(line) for line in (folder / "calibration.jsonl").open()]
    small_talk = np.array([r["small_talk"] for r in rows])
    rule = np.array([{None: 0, "small_talk": 1, "coaching": 2}[r["rule"]] for r in rows])
    shipped = np.load(folder / "shipped_logits.npy")
    candidates = {"shipped router": shipped}
    if (folder / "finetuned_logits.npy").exists():
        finetuned = np.load(folder / "finetuned_logits.npy")
        candidates |= {"fine-tuned encoder": finetuned, "sum of both": shipped + finetuned}
    # finetune.py --onnx: the exported int8 file's (finetune.py removes it on any other run)
    if "fine-tuned encoder" in candidates and (folder / "onnx_logits.npy").exists():
        int8 = np.load(folder / "onnx_logits.npy")
        candidates |= {"int8 encoder": int8, "sum with int8": shipped + int8}
        gap = np.abs(int8 - finetuned)
        print(
            f"int8 vs torch logits: mean |diff| {gap.mean():.2f}, max {gap.max():.2f}, "
            f"same sign {((int8 > 0) == (finetuned > 0)).mean():.1%}"
        )
    for name, z in candidates.items():
        cells = []
        for budget in BUDGETS:
            accuracy, cheap, coaching = split_halves(z, small_talk, rule, budget)
            cells.append(f"{budget:.2%}: {accuracy:.2%} ({cheap}/{coaching} cheap)")
        print(f"{name:20s} " + "  ".join(cells))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
