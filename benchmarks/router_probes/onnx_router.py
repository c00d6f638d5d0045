"""The fine-tuned encoder as the app would have run it (probe, not part of the app): MiniLM's
tokenizer on the message and its context, the word vectors looked up in numpy, the rest of the
model (exported by ``finetune.py --freeze-words --onnx``, int8) by ONNX Runtime on one thread.
``finetune.py`` scores the calibration rows through it, so its figures are the exported file's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.services.coach.encoder import MAX_CHARS, find_model_dir  # imports nothing heavy


def pair_text(
    text: str, question: str | None, previous: str | None, challenges: Sequence[str]
) -> tuple[str, str]:
    """The two segments the model reads: the message, and its context in one line."""
    context = []
    if question:
        context.append(question)
    if previous:
        context.append("before: " + previous)
    if challenges:
        context.append("challenges: " + ", ".join(challenges))
    return text[:MAX_CHARS], (" | ".join(context) or "none")[:MAX_CHARS]


class OnnxRouter:
    """One ONNX Runtime session (one thread), MiniLM's tokenizer and its word vectors."""

    def __init__(self, model_path: Path, max_tokens: int) -> None:
        import numpy as np
        import onnxruntime
        from safetensors import safe_open
        from tokenizers import Tokenizer

        folder = find_model_dir()
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=max_tokens, strategy="longest_first")
        with safe_open(str(folder / "model.safetensors"), framework="numpy") as weights:
            self._words = weights.get_tensor("embeddings.word_embeddings.weight").astype(np.float32)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )

    def logit(
        self, text: str, question: str | None, previous: str | None, challenges: Sequence[str]
    ) -> float:
        """log(P(small talk) / P(coaching)) by the fine-tuned model alone."""
        import numpy as np

        encoding = self._tokenizer.encode(*pair_text(text, question, previous, challenges))
        ids = np.asarray(encoding.ids, dtype=np.int64)
        feed: dict[str, Any] = {
            "inputs_embeds": self._words[ids][None, :, :],
            "attention_mask": np.ones((1, len(ids)), dtype=np.int64),
            "token_type_ids": np.asarray([encoding.type_ids], dtype=np.int64),
        }
        return float(self._session.run(None, feed)[0][0])
