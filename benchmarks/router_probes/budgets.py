"""Probe: what the shipped router would route right at larger budgets of coaching sent cheap,
on split halves of the calibration rows (``_halves``: ten splits, each half setting the
other's bar). The issue allows 1 %; the threshold that ships is set at 0.5 %. For a product
decision on the budget, not for tuning.

    PYTHONPATH=src .venv/bin/python benchmarks/router_probes/budgets.py
"""

from __future__ import annotations

import numpy as np
from _halves import p_small_talk, read_rows, rule_codes, split_halves

from app.services.coach.prompt import turns
from app.services.coach.routing import SMALL_TALK, model, rule_decision

BUDGETS = (0.005, 0.0075, 0.01, 0.015, 0.02, 0.03)


def main() -> None:
    rows = read_rows("calibration")
    histories = [turns(r.get("history")) for r in rows]
    rules = rule_codes(rule_decision(h, r["text"]) for h, r in zip(histories, rows, strict=True))
    p = p_small_talk(model(), rows, histories)
    small_talk = np.array([r["label"] == SMALL_TALK for r in rows])
    print(f"calibration rows {len(rows)}, coaching {int((~small_talk).sum())}")
    for budget in BUDGETS:
        print(f"budget {budget:.2%}: {split_halves(p, small_talk, rules, budget)}")


if __name__ == "__main__":
    main()
