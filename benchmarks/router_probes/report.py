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

import numpy as np
from _halves import probabilities, split_halves

BUDGETS = (0.005, 0.0075, 0.01, 0.02)
SPLITS = 3


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
            halves = split_halves(probabilities(z), small_talk, rule, budget, SPLITS)
            cells.append(
                f"{budget:.2%}: {halves.accuracy:.2%} ({halves.cheap}/{halves.coaching} cheap)"
            )
        print(f"{name:20s} " + "  ".join(cells))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
