"""Step 1 of the fine-tuned encoder probe (run with the project's venv): what the router reads
for every training and calibration row, and the shipped router's logit for each calibration
row, written to a folder for ``finetune.py`` and ``report.py``.

    PYTHONPATH=src .venv/bin/python benchmarks/router_probes/dump_inputs.py var/probe
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

from app.services.coach import routing, routing_model
from app.services.coach.prompt import turns

ROUTING_DIR = routing_model.DATA_DIR / "routing"


def row_inputs(row: dict[str, object]) -> dict[str, object]:
    history = turns(row.get("history"))
    return {
        "text": str(row["text"]),
        "question": routing_model.coach_question(history),
        "previous": routing_model.member_previous(history),
        "challenges": list(routing_model.challenges_of(row)),
        "small_talk": row["label"] == routing_model.SMALL_TALK_LABEL,
        "rule": routing.rule_route(row),
    }


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model = routing.model()
    for split in ("train", "calibration"):
        lines = (ROUTING_DIR / f"{split}.jsonl").read_text().splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
        with (out / f"{split}.jsonl").open("w") as f:
            for row in rows:
                f.write(json.dumps(row_inputs(row), ensure_ascii=False) + "\n")
        if split == "calibration":
            p = [
                model.p_small_talk(
                    str(r["text"]), turns(r.get("history")), routing_model.challenges_of(r)
                )
                for r in rows
            ]
            clipped = [min(max(x, 1e-12), 1 - 1e-12) for x in p]
            np.save(out / "shipped_logits.npy", np.array([math.log(x / (1 - x)) for x in clipped]))
        print(split, len(rows), file=sys.stderr)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
