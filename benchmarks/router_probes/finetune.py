"""Step 2 of the fine-tuned encoder probe (needs torch and transformers, which the app does not
ship; see ``onnx_latency.py`` for a separate venv): all-MiniLM-L6-v2's first ``--layers``
layers fine-tuned end to end on the training rows (the message, and as a second segment the
coach's question, the member's previous message and the challenge titles; mean-pooled; one
logit), then its logit for every calibration row. With ``--freeze-words --onnx FILE``, the
model after the word-vector lookup is exported as int8 ONNX and the calibration rows are
scored again through it as the app would run it (``onnx_router.py``, ``onnx_logits.npy``);
the float32 export is kept beside FILE as ``FILE.f32.onnx`` (22 MB for three layers).
The folder comes from ``dump_inputs.py``.

    PYTHONPATH=src /tmp/probe/bin/python benchmarks/router_probes/finetune.py var/probe [--epochs 2]
    PYTHONPATH=src /tmp/probe/bin/python benchmarks/router_probes/finetune.py var/probe \
        --layers 3 --max-tokens 64 --freeze-words --save var/probe/l3.pt --onnx var/probe/l3.onnx

Two epochs of six layers over 80 word pieces on 24,483 rows took about 18 minutes on two EPYC
cores (session 10); three layers over 64 on 26,883 rows, 23 minutes on a slower one (session
11). ``--load`` skips training and reuses ``--save``'s weights.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from onnx_router import OnnxRouter, pair_text  # beside this file

from app.services.coach.encoder import find_model_dir  # imports nothing heavy

BATCH = 32
MAX_TOKENS = 80  # both segments; session 11's three-layer run used 64


def pair(row: dict[str, Any]) -> tuple[str, str]:
    return pair_text(row["text"], row["question"], row["previous"], row["challenges"])


def main() -> None:
    import numpy as np
    import torch
    from transformers import BertModel, BertTokenizerFast

    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("--epochs", type=float, default=None, help="default 2")
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--max-tokens", type=int, default=MAX_TOKENS)
    parser.add_argument("--freeze-words", action="store_true", help="keep MiniLM's word vectors")
    parser.add_argument("--save", type=Path, help="write the fine-tuned weights here (torch)")
    parser.add_argument("--load", type=Path, help="skip training: read weights saved by --save")
    parser.add_argument("--onnx", type=Path, help="export int8 ONNX here (needs --freeze-words)")
    parser.add_argument(
        "--per-channel", action="store_true", help="int8 on the MatMuls only, a scale per channel"
    )
    args = parser.parse_args()
    if args.per_channel and not args.onnx:
        parser.error("--per-channel applies to --onnx")
    if args.load and args.epochs is not None:
        parser.error("--load skips training: --epochs does not apply")
    args.epochs = 0 if args.load else (2.0 if args.epochs is None else args.epochs)
    shape = {
        "layers": args.layers,
        "max_tokens": args.max_tokens,
        "freeze_words": args.freeze_words,
    }
    if args.onnx and not args.freeze_words:
        parser.error(
            "--onnx: the exported model starts after the word-vector lookup, which "
            "onnx_router.py does from MiniLM's own vectors: train with --freeze-words"
        )
    torch.set_num_threads(2)
    torch.manual_seed(0)

    def read(split: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in (args.folder / f"{split}.jsonl").open()]

    train, calibration = read("train"), read("calibration")
    tokenizer = BertTokenizerFast.from_pretrained(find_model_dir())
    bert = BertModel.from_pretrained(find_model_dir())
    bert.encoder.layer = bert.encoder.layer[: args.layers]
    if args.freeze_words:
        bert.embeddings.word_embeddings.weight.requires_grad_(False)

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
            max_length=args.max_tokens,
            padding=True,
            return_tensors="pt",
        )

    model = Router()
    if args.load:
        saved = torch.load(args.load)
        if not isinstance(saved, dict) or "shape" not in saved:
            parser.error(f"--load: {args.load} was saved before --save recorded its shape")
        if saved["shape"] != shape:
            parser.error(f"--load: {args.load} was trained with {saved['shape']}, not {shape}")
        model.load_state_dict(saved["state"])
    labels = torch.tensor([float(r["small_talk"]) for r in train])
    steps = int(math.ceil(len(train) / BATCH) * args.epochs)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.01)
    warm = max(0.06 * steps, 1.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, s / warm) * max(0.0, (steps - s) / max(steps, 1))
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
        torch_logits = np.concatenate(
            [
                model(encode(calibration[i : i + 128])).numpy()
                for i in range(0, len(calibration), 128)
            ]
        )
    np.save(args.folder / "finetuned_logits.npy", torch_logits)
    (args.folder / "onnx_logits.npy").unlink(missing_ok=True)  # another run's: report.py reads it
    if args.save:
        torch.save({"state": model.state_dict(), "shape": shape}, args.save)
    if args.onnx:
        float32 = args.onnx.with_suffix(".f32.onnx")
        export_int8(model, float32, args.onnx, per_channel=args.per_channel)

        def score(path: Path, rows: list[dict[str, Any]]) -> Any:
            # As the app would run it: its own tokenizer, word-vector lookup and ONNX Runtime.
            exported = OnnxRouter(path, args.max_tokens)
            return np.array(
                [
                    exported.logit(r["text"], r["question"], r["previous"], r["challenges"])
                    for r in rows
                ]
            )

        # float32 first: any gap here is the export or the feeding, not int8
        gap = np.abs(score(float32, calibration[:500]) - torch_logits[:500]).max()
        print(f"float32 ONNX vs torch, first 500 rows: max |diff| {gap:.2e}", file=sys.stderr)
        if gap > 1e-3:
            sys.exit("the exported model does not read its input as torch did")
        np.save(args.folder / "onnx_logits.npy", score(args.onnx, calibration))


def export_int8(model: Any, float32: Path, int8: Path, *, per_channel: bool) -> None:
    """The model after the word-vector lookup (the app does that in numpy), as float32 and with
    int8 weights."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    class AfterLookup(torch.nn.Module):  # keyword arguments: BertModel's positional order shifts
        def __init__(self) -> None:
            super().__init__()
            self.router = model

        def forward(self, embeds: Any, mask: Any, types: Any) -> Any:
            hidden = self.router.bert(
                inputs_embeds=embeds, attention_mask=mask, token_type_ids=types
            ).last_hidden_state
            weights = mask.unsqueeze(-1).float()
            pooled = (hidden * weights).sum(1) / weights.sum(1)
            return self.router.head(pooled).squeeze(-1)

    embeds = torch.zeros(1, 16, 384)
    ones = torch.ones(1, 16, dtype=torch.long)
    torch.onnx.export(
        AfterLookup().eval(),
        (embeds, ones, ones * 0),
        str(float32),
        input_names=["inputs_embeds", "attention_mask", "token_type_ids"],
        output_names=["logit"],
        dynamic_axes={
            "inputs_embeds": {0: "batch", 1: "tokens"},
            "attention_mask": {0: "batch", 1: "tokens"},
            "token_type_ids": {0: "batch", 1: "tokens"},
        },
        opset_version=17,
        dynamo=False,
    )
    quantize_dynamic(
        str(float32),
        str(int8),
        weight_type=QuantType.QInt8,
        per_channel=per_channel,
        op_types_to_quantize=["MatMul"] if per_channel else None,
    )


if __name__ == "__main__":
    main()
