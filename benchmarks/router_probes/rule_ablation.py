"""Probe: what each routing rule is worth against the model deciding its rows, on split halves
of the calibration rows (each half sets the threshold for the other, the rules' misses counted
first, as train-router does; ten splits), at three budgets of coaching sent cheap.

A rule is switched off by rewriting ``rule_decision``'s source so that its ``return`` is
skipped: the message falls through to the later rules, as it would with the rule deleted
(production code keeps no switch for a probe). Run it at any commit to weigh that commit's
rules (at 737a961 it weighs the four rules the next commit dropped, on that commit's data):

    PYTHONPATH=src .venv/bin/python benchmarks/router_probes/rule_ablation.py [REASON ...]

With reasons (``"rule: laughter"``), those rules go off together; without, each rule alone, all
of them, and every rule that routes small talk. With ``--logits DIR``, the scores are the
``logits-seed*.npy`` that ``bagging.py`` saved (fits from other seeds; a fit does not depend on
the rules) instead of the shipped model's, one block per seed.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

import app.services.coach.routing as routing
from app.services.coach.prompt import turns
from app.services.coach.routing_model import DATA_DIR, challenges_of, model_miss_allowance

BUDGETS = (0.005, 0.0075, 0.01)
SPLITS = 10
_RETURN = re.compile(r'^( +)return (RouteDecision\(\w+, "([^"]+)"\))$', re.M)


def switchable_rules() -> tuple[Any, set[str], dict[str, str]]:
    """``rule_decision`` rebuilt so the reasons in the returned set are skipped, and each
    rule's reason with its route."""
    source = inspect.getsource(routing.rule_decision)
    guarded = _RETURN.sub(
        lambda m: f'{m[1]}if "{m[3]}" not in OFF:\n{m[1]}    return {m[2]}', source
    )
    off: set[str] = set()
    scope = dict(vars(routing), OFF=off)
    exec(guarded, scope)  # noqa: S102 - the module's own source, rewritten above
    # in_coaching_thread follows earlier messages through the rules: give it the rebuilt ones.
    routing.in_coaching_thread.__globals__["rule_decision"] = scope["rule_decision"]
    routes = {m[3]: m[2].split("(")[1].split(",")[0] for m in _RETURN.finditer(source)}
    return scope["rule_decision"], off, dict(sorted(routes.items()))


def split_halves(p: Any, small_talk: Any, rule: Any, budget: float) -> str:
    accuracies, cheap, coaching = [], 0, 0
    for seed in range(SPLITS):
        order = np.random.default_rng(100 + seed).permutation(len(p))
        halves = (order[: len(p) // 2], order[len(p) // 2 :])
        for setter, scored in (halves, halves[::-1]):
            rows = setter[~small_talk[setter]]
            allowed = model_miss_allowance(budget, len(rows), int((rule[rows] == 1).sum()))
            bar = np.sort(p[rows[rule[rows] == 0]])[::-1][allowed]
            cheap_route = np.where(rule[scored] == 0, p[scored] > bar, rule[scored] == 1)
            accuracies.append(float((cheap_route == small_talk[scored]).mean()))
            cheap += int((cheap_route & ~small_talk[scored]).sum())
            coaching += int((~small_talk[scored]).sum())
    return f"{np.mean(accuracies):.2%} (sd {np.std(accuracies):.2%}), cheap {cheap / coaching:.2%}"


def main(args: list[str]) -> int:
    logits = Path(args[args.index("--logits") + 1]) if "--logits" in args else None
    reasons = [a for a in args if a != "--logits" and (logits is None or a != str(logits))]
    decide, off, every = switchable_rules()
    path = DATA_DIR / "routing" / "calibration.jsonl"
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    histories = [turns(r.get("history")) for r in rows]
    router = routing.model()
    if logits:
        scores = {f.stem: np.load(f) for f in sorted(logits.glob("logits-seed*.npy"))}
    else:
        scores = {
            "shipped model": np.array(
                [
                    router.p_small_talk(r["text"], h, challenges_of(r))
                    for r, h in zip(rows, histories, strict=True)
                ]
            )
        }
    small_talk = np.array([r["label"] == routing.SMALL_TALK for r in rows])

    def rules_with(switched_off: set[str]) -> Any:
        off.clear()
        off.update(switched_off)
        decisions = [decide(h, r["text"]) for r, h in zip(rows, histories, strict=True)]
        codes = {None: 0, routing.SMALL_TALK: 1, routing.COACHING: 2}
        return np.array([codes[d.route if d else None] for d in decisions])

    unknown = set(reasons) - set(every)
    if unknown:
        print(f"no such rule: {sorted(unknown)}; the rules: {list(every)}", file=sys.stderr)
        return 2
    small = {reason for reason, route in every.items() if route == "SMALL_TALK"}
    configs: dict[str, set[str]] = {"rules as they are": set()}
    if reasons:
        configs["off: " + ", ".join(reasons)] = set(reasons)
    else:
        configs |= {f"off: {r}": {r} for r in every}
        configs |= {"off: every small-talk rule": small, "off: every rule": set(every)}
    print(f"{path.name}: {len(rows)} rows; {SPLITS} split halves")
    rules = {name: rules_with(switched_off) for name, switched_off in configs.items()}
    for source, p in scores.items():
        print(f"# {source}")
        for name, rule in rules.items():
            cells = [f"{b:.2%}: {split_halves(p, small_talk, rule, b)}" for b in BUDGETS]
            print(f"{name:55s} " + " | ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
