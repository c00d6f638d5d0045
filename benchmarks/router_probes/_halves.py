"""What the router probes share: the labelled rows, the rules' routes as codes, and accuracy on
split halves of the calibration rows, each half setting the threshold for the other as
``train-router`` does (the rules' misses counted against the budget first; small talk strictly
above the allowed-th highest coaching score, never below 0.5)."""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.services.coach import routing_fit, routing_model
from app.services.coach.prompt import Turn
from app.services.coach.routing import SMALL_TALK, RouteDecision
from app.services.coach.routing_model import (
    DATA_DIR,
    RoutingModel,
    challenges_of,
    model_miss_allowance,
)

BUDGETS = (0.005, 0.0075, 0.01)
MODEL, RULE_SMALL_TALK, RULE_COACHING = 0, 1, 2  # who routes a row, and how
LOGITS_DIR = Path("var/bagging")  # bagging.py's fits, by fit_hash, weight and seed


def fit_hash() -> str:
    """What a fit depends on: the training and calibration rows and the fitting code (not
    the rules), so saved logits are reused only for the same fit."""
    digest = hashlib.sha256()
    for name in ("train", "calibration"):
        digest.update((DATA_DIR / "routing" / f"{name}.jsonl").read_bytes())
    for module in (routing_fit, routing_model):
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()[:10]


def read_rows(name: str) -> list[dict[str, Any]]:
    """A split of the shipped labelled rows ("train", "calibration", "heldout")."""
    path = DATA_DIR / "routing" / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def rule_codes(decisions: Iterable[RouteDecision | None]) -> Any:
    """The rules' decisions as MODEL (none), RULE_SMALL_TALK or RULE_COACHING."""
    return np.array(
        [
            MODEL if d is None else RULE_SMALL_TALK if d.route == SMALL_TALK else RULE_COACHING
            for d in decisions
        ]
    )


def p_small_talk(
    model: RoutingModel, rows: Sequence[dict[str, Any]], histories: Sequence[Sequence[Turn]]
) -> Any:
    """The model's P(small talk) for each row, read with its conversation and challenges."""
    return np.array(
        [
            model.p_small_talk(r["text"], h, challenges_of(r))
            for r, h in zip(rows, histories, strict=True)
        ]
    )


def probabilities(logits: Any) -> Any:
    return 1.0 / (1.0 + np.exp(-np.asarray(logits)))


@dataclass(frozen=True)
class Halves:
    accuracy: float  # mean over the scored halves
    sd: float
    cheap: int  # coaching rows sent cheap, over all scored halves
    coaching: int

    def __str__(self) -> str:
        share = self.cheap / self.coaching if self.coaching else 0.0
        return f"{self.accuracy:.2%} (sd {self.sd:.2%}), cheap {share:.2%}"


def split_halves(p: Any, small_talk: Any, rule: Any, budget: float, splits: int = 10) -> Halves:
    """`p`: each row's P(small talk) from the model; `small_talk`: its label; `rule`: its
    rule code. Seeds 100, 101, ... draw the splits, so every probe cuts the rows alike."""
    accuracies: list[float] = []
    cheap = coaching = 0
    for seed in range(splits):
        order = np.random.default_rng(100 + seed).permutation(len(p))
        halves = (order[: len(p) // 2], order[len(p) // 2 :])
        for setter, scored in (halves, halves[::-1]):
            rows = setter[~small_talk[setter]]
            misses = int((rule[rows] == RULE_SMALL_TALK).sum())
            allowed = model_miss_allowance(budget, len(rows), misses)
            tops = np.sort(p[rows[rule[rows] == MODEL]])[::-1]
            bar = max(0.5, tops[allowed] if allowed < len(tops) else 0.5)
            model_route = p[scored] > bar
            cheap_route = np.where(
                rule[scored] == MODEL, model_route, rule[scored] == RULE_SMALL_TALK
            )
            accuracies.append(float((cheap_route == small_talk[scored]).mean()))
            cheap += int((cheap_route & ~small_talk[scored]).sum())
            coaching += int((~small_talk[scored]).sum())
    return Halves(float(np.mean(accuracies)), float(np.std(accuracies)), cheap, coaching)


def at_budgets(p: Any, small_talk: Any, rule: Any, budgets: Sequence[float] = BUDGETS) -> str:
    return " | ".join(f"{b:.2%}: {split_halves(p, small_talk, rule, b)}" for b in budgets)
