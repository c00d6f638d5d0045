"""Step 2 of the fine-tuned encoder probe (needs torch and transformers, which the app does not
ship; see ``onnx_latency.py`` for a separate venv): all-MiniLM-L6-v2 fine-tuned end to end on
the training rows (the message, and as a second segment the coach's question, the member's
previous message and the challenge titles; mean-pooled; one logit), then its logit for every
calibration row.

    PYTHONPATH=src /tmp/probe/bin/python benchmarks/router_probes/finetune.py var/probe [--epochs 2]

Two epochs on 24,483 rows take about 18 minutes on two EPYC cores.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from app.services.coach.encoder import find_model_dir  # imports nothing heavy

BATCH = 32
MAX_TOKENS = 80


def pair(row: dict[str, Any]) -> tuple[str, str]:
    context = []
    if row["question"]:
        context.append(row["question"])
    if row["previous"]:
        context.append("before: " + row["previous"])
    if row["challenges"]:
        context.append("challenges: " + ", ".join(row["challenges"]))
    return row["text"], " | ".join(context) or "none"


def main() -> None:
    import numpy as np
    import torch
    from transformers import BertModel, BertTokenizerFast

    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--lr", type=float, default=5e-5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)

    def read(split: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in (args.folder / f"{split}.jsonl").open()]

    train, calibration = read("train"), read("calibration")
    tokenizer = BertTokenizerFast.from_pretrained(find_model_dir())
    bert = BertModel.from_pretrained(find_model_dir())
    bert.encoder.layer = bert.encoder.layer[: args.layers]

    class Router(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert, self.drop, self.head = bert, torch.nn.Dropout(0.1), torch.nn.Linear(384, 1)

        def forward(self, batch: Any) -> Any:
            hidden = self.bert(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            return self.head(self.drop((hidden * mask).sum(1) / mask.sum(1))).squeeze(-1)

    def encode(rows: list[dict[str, Any]]) -> Any:
        first, second = zip(*(pair(r) for r in rows), strict=True)
        return tokenizer(
            list(first),
            list(second),
            truncation="longest_first",
            max_length=MAX_TOKENS,
            padding=True,
            return_tensors="pt",
        )

    model = Router()
    labels = torch.tensor([float(r["small_talk"]) for r in train])
    steps = int(math.ceil(len(train) / BATCH) * args.epochs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    warm = 0.06 * steps
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, s / warm) * max(0.0, (steps - s) / steps)
    )
    rng, step, start = np.random.default_rng(0), 0, time.time()
    model.train()
    while step < steps:
        order = rng.permutation(len(train))
        for i in range(0, len(train), BATCH):
            if step >= steps:
                break
            batch = order[i : i + BATCH]
            logits = model(encode([train[j] for j in batch]))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if step % 100 == 0:
                print(f"step {step}/{steps} {time.time() - start:.0f} s", file=sys.stderr)
    model.eval()
    with torch.no_grad():
        out = [
            model(encode(calibration[i : i + 128])).numpy() for i in range(0, len(calibration), 128)
        ]
    np.save(args.folder / "finetuned_logits.npy", np.concatenate(out))


if __name__ == "__main__":
    main()
