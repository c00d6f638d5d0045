"""Probe: what each routing rule is worth against the model deciding its rows, on split halves
of the calibration rows (``_halves``: ten splits, three budgets of coaching sent cheap).

A rule is switched off by rewriting ``rule_decision``'s source so that its ``return`` is
skipped: the message falls through to the later rules, as it would with the rule deleted
(production code keeps no switch for a probe). Run it at any commit to weigh that commit's
rules; session 13 ran it in a worktree of 737a961, with the calibration file of 3942b06, to
weigh the four rules 3942b06 dropped:

    PYTHONPATH=src .venv/bin/python benchmarks/router_probes/rule_ablation.py \
        [--logits DIR] [REASON ...]

With reasons (``"rule: laughter"``), those rules go off together; without, each rule alone, all
of them, and every rule that routes small talk. With ``--logits DIR``, the scores are the
unweighted fits ``bagging.py`` saved for this data (``logits-<fit_hash>-w1-seed*.npy``: fits
from other seeds; a fit does not depend on the rules) instead of the shipped model's, one block
per seed. To weigh another commit's rules with them (the fit of 737a961 and 3942b06 is the
same; their hashes differ by comments), name the fits with ``--fit HASH`` as bagging.py
printed it.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
from _halves import at_budgets, fit_hash, p_small_talk, probabilities, read_rows, rule_codes

import app.services.coach.routing as routing
from app.services.coach.prompt import turns

# One rule: `return RouteDecision(ROUTE, "reason")` on a line of its own.
_RETURN = re.compile(r'^( +)return (RouteDecision\((\w+), "([^"]+)"\))$', re.M)


def switchable_rules() -> tuple[set[str], dict[str, str]]:
    """Swap ``routing.rule_decision`` for a copy whose rules are skipped while their reason is
    in the returned set (``in_coaching_thread`` follows earlier messages through the module's
    ``rule_decision``, so it sees the copy too); and each rule's reason with its route."""
    source = inspect.getsource(routing.rule_decision)
    rules = list(_RETURN.finditer(source))
    if len(rules) != source.count("return RouteDecision("):
        raise SystemExit("rule_decision has a rule this probe cannot switch off: fix _RETURN")
    guarded = _RETURN.sub(
        lambda m: f'{m[1]}if "{m[4]}" not in OFF:\n{m[1]}    return {m[2]}', source
    )
    off: set[str] = set()
    scope = dict(vars(routing), OFF=off)
    exec(guarded, scope)  # noqa: S102 - the module's own source, rewritten above
    routing.rule_decision = scope["rule_decision"]
    return off, {m[4]: m[3] for m in sorted(rules, key=lambda m: m[4])}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logits", type=Path, help="score with bagging.py's saved logits")
    parser.add_argument("--fit", default=None, help="the saved fits' hash (default: this code's)")
    parser.add_argument("reasons", nargs="*", help="switch these rules off together")
    args = parser.parse_args(argv)
    off, every = switchable_rules()
    unknown = set(args.reasons) - set(every)
    if unknown:
        print(f"no such rule: {sorted(unknown)}; the rules: {list(every)}", file=sys.stderr)
        return 2
    rows = read_rows("calibration")
    histories = [turns(r.get("history")) for r in rows]
    scores: dict[str, Any] = {}
    if args.logits:
        saved = sorted(args.logits.glob(f"logits-{args.fit or fit_hash()}-w1-seed*.npy"))
        scores = {f.stem: probabilities(np.load(f)) for f in saved}
        if not scores or any(len(p) != len(rows) for p in scores.values()):
            print(f"no saved fits for this data and code in {args.logits}", file=sys.stderr)
            return 2
    else:
        scores["shipped model"] = p_small_talk(routing.model(), rows, histories)
    small_talk = np.array([r["label"] == routing.SMALL_TALK for r in rows])

    def rules_with(switched_off: set[str]) -> Any:
        off.clear()
        off.update(switched_off)
        pairs = zip(rows, histories, strict=True)
        return rule_codes(routing.rule_decision(h, r["text"]) for r, h in pairs)

    configs: dict[str, set[str]] = {"rules as they are": set()}
    if args.reasons:
        configs["off: " + ", ".join(args.reasons)] = set(args.reasons)
    else:
        small = {reason for reason, route in every.items() if route == "SMALL_TALK"}
        configs |= {f"off: {r}": {r} for r in every}
        configs |= {"off: every small-talk rule": small, "off: every rule": set(every)}
    codes = {name: rules_with(switched_off) for name, switched_off in configs.items()}
    print(f"calibration.jsonl: {len(rows)} rows; ten split halves")
    for source, p in scores.items():
        print(f"# {source}")
        for name, rule in codes.items():
            print(f"{name:55s} {at_budgets(p, small_talk, rule)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
