"""A small conversation-aware text classifier for routing: logistic regression, with one
small hidden layer over its vectors (see ``routing_fit``), over the member's message (word and
character n-grams, shape flags, topic lexicons, and a sentence vector, the mean of MiniLM's
token embeddings, see ``encoder``) and the conversation: the coach's last turn (its words,
whether it asked a question and about what) and, as the mean of their token embeddings, the
coach's question and the member's previous message; and the titles of the member's active
challenges (see ``challenge_features`` and ``challenge_vector``).

At inference a dict lookup per feature, a few embedding means and a 64x1536 product (p99
0.9-2.4 ms on held-out rows, by machine); numpy to train. Trained offline by ``python -m app
coach train-router`` on the shipped labelled set (``app/data/routing/train.jsonl``), its threshold
set on ``calibration.jsonl``; the weights ship as ``app/data/routing_model.json``."""

from __future__ import annotations

import functools
import itertools
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.services.coach.encoder import DIM, LAYERS, MAX_CHARS, get_encoder
from app.services.coach.prompt import turns
from app.services.coach.routing_fit import EPOCHS, HIDDEN, fit

DATA_DIR = Path(__file__).resolve().parents[2] / "data"
WEIGHTS_PATH = DATA_DIR / "routing_model.json"
SMALL_TALK_LABEL = "small_talk"
SHORT_REPLY_WORDS = 6
# Sentence vectors enter the fit multiplied by this (unit vectors have small components, and
# the L2 penalty is shared with the sparse weights); the shipped weights have it folded in.
VECTOR_SCALE = 3.0

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?|\d+|[?!]|:\)")


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


# Hand-written priors that generalise past the training vocabulary: stems of the coaching
# domain, and the shapes of a request for help.
COACHING_STEMS = tuple(
    """habit streak goal plan challeng check-in checkin routine run jog walk step workout
    exercis gym train pushup plank squat yoga stretch meditat sleep bed wake alarm
    snooze read page journal study studi learn practi diet eat sugar water hydrat calori
    weight kilo motivat consisten progress track target schedul week daily minute rep set
    injur hurt pain sore stress procrastinat focus productiv quit skip miss fail relaps tip
    advice help improv fit strength cardio mileage endurance pace race marathon
    milestone reward accountab discipline overwhelm burnout tired lazy stuck struggl
    myself mornings evenings afternoons weekends weekdays chaos chaotic apart busy monday
    tuesday wednesday thursday friday saturday sunday saving saved savings budget spend spent
    debt kilomet km mile""".split()  # noqa: SIM905
)
ASK_PATTERNS = re.compile(
    r"\b(how (do|can|should|much|many|long|often)|should i|can you|could you|help me|"
    r"what (should|is the best|'s the best|'s a good|is a good|can i)|"
    r"is it (ok|okay|bad|fine|normal|better)|why do i|i want to|i'd like to|i need|give me|"
    r"suggest|any (tips|advice|ideas))\b"
)


# Asking the coach what to do, or pointing back at the agreed plan: coaching whatever the topic
# (473 of the 6,940 training rows match; 2 of them are small talk).
ADVICE_PATTERNS = re.compile(
    r"\b(should i|shall i|do i need to|how (do|can|should) i|what (do|should|can) i do|"
    r"whether i should|if i should|is it (ok|okay|bad|fine|normal|safe) (to|if)|"
    r"any (tips|advice)|what if i|can i still|like we said|as we (said|discussed|agreed)|"
    r"like you said|as planned)\b"
)


_LONG_STEMS = tuple(s for s in COACHING_STEMS if len(s) >= 5)
# Stems that name the coaching domain in any sentence: a feature of the model, and what makes
# the coach's turn a plan for the rules. The rest of COACHING_STEMS ("sleep", "walk", "week",
# "tired") is everyday talk too.
STRONG_STEMS = tuple(
    """habit streak goal challeng checkin routine workout exercis pushup plank squat meditat
    journal calori hydrat motivat consisten procrastinat relaps accountab disciplin burnout
    injur mileage marathon cardio endurance milestone schedul progress diet weight""".split()  # noqa: SIM905
)
# Progress reports: "day 30", "week 3", "10 days in a row", "I did it"; "day 20" in German,
# Spanish, Portuguese, French, Italian and Dutch ("Tag 20 geschafft!").
_PROGRESS = re.compile(
    r"\b(?:day|week|month|tag|d[ií]a|jour|giorno|dag)\s*#?\d+\b|\bin a row\b|\bi did it\b"
)
# Domain words the word tokens split ("push-ups" -> push, ups; "5k" -> 5, k): matched on text.
_SPLIT_STEMS = re.compile(r"\bpush-ups?\b|\bcheck-ins?\b|\b\d+ ?k\b(?! ?(?:views|likes|followers))")


def domain_hits(words: Sequence[str]) -> int:
    """Words of the coaching domain ("overtraining" counts: long stems match inside words)."""
    return sum(1 for w in words if w.startswith(COACHING_STEMS) or any(s in w for s in _LONG_STEMS))


def coaching_hits(text: str) -> int:
    """Words of the coaching domain, plus one for a progress report ("day 30 done!")."""
    low = text.lower()
    return domain_hits(tokens(low)) + _text_hits(low)


def strong_hits(text: str) -> int:
    """Words that name the coaching domain in any sentence, plus one for a progress report."""
    low = text.lower()
    return sum(1 for w in tokens(low) if w.startswith(STRONG_STEMS)) + _text_hits(low)


def _text_hits(low: str) -> int:
    """What the word tokens cannot see: split domain words ("push-ups", "5k") and a progress
    report ("day 30"), counted on the lower-cased text."""
    return len(_SPLIT_STEMS.findall(low)) + bool(_PROGRESS.search(low))


def word_count(words: Sequence[str]) -> int:
    """Words, not counting ? and ! tokens."""
    return sum(1 for w in words if w not in ("?", "!"))


def is_short(text: str) -> bool:
    return word_count(tokens(text)) <= SHORT_REPLY_WORDS


def _length_bucket(n: int) -> str:
    for limit, name in ((1, "1"), (2, "2"), (3, "3"), (6, "4-6"), (12, "7-12")):
        if n <= limit:
            return name
    return "13+"


LEXICON_DIR = DATA_DIR / "routing"
LEXICONS = ("coaching", "social")  # lexicon-<name>.txt: topic words and phrases, one a line
_LEX_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")
_LEX_LONGEST = 4


@functools.lru_cache(maxsize=1)
def lexicons() -> dict[str, frozenset[str]]:
    """Topic lexicons (thousands of words of the coaching domain and of chit-chat topics):
    they reach words the labelled rows never used ("anki", "jigsaw")."""
    out = {}
    for name in LEXICONS:
        lines = (LEXICON_DIR / f"lexicon-{name}.txt").read_text("utf-8").splitlines()
        out[name] = frozenset(" ".join(_LEX_WORD.findall(x.lower())) for x in lines if x.strip())
    return out


def lexicon_counts(text: str) -> dict[str, int]:
    """How many words and phrases (up to four words) of each lexicon the text holds."""
    words = _LEX_WORD.findall(text.lower())
    phrases = [
        " ".join(words[i : i + n])
        for n in range(1, _LEX_LONGEST + 1)
        for i in range(len(words) - n + 1)
    ]
    return {name: sum(p in entries for p in phrases) for name, entries in lexicons().items()}


def lexicon_features(text: str, prefix: str) -> list[str]:
    counts = lexicon_counts(text)
    feats = [f"{prefix}{name}{min(c, 3)}" for name, c in counts.items() if c]
    if counts["social"] > counts["coaching"]:
        feats.append(f"{prefix}more_social")
    elif counts["coaching"] > counts["social"]:
        feats.append(f"{prefix}more_coaching")
    return feats


def features(text: str) -> list[str]:
    """Word unigrams and bigrams, character 3-grams inside words, and a few shape flags."""
    words = tokens(text)
    feats = [f"w:{w}" for w in words]
    padded = ["<s>", *words, "</s>"]
    feats += [f"b:{a}_{b}" for a, b in itertools.pairwise(padded)]
    for w in words:
        if w.isalpha() and len(w) > 2:
            marked = f"<{w}>"
            feats += [f"c:{marked[i : i + 3]}" for i in range(len(marked) - 2)]
    feats.append(f"len:{_length_bucket(word_count(words))}")
    if any(ch.isdigit() for ch in text):
        feats.append("has:digit")
    if "?" in text:
        feats.append("has:question")
    hits = coaching_hits(text)
    if hits:
        feats.append("lex:domain")
    if hits >= 2:
        feats.append("lex:domain2")
    if strong_hits(text):
        feats.append("lex:strong")
    if ASK_PATTERNS.search(text.lower()):
        feats.append("lex:ask")
    feats += lexicon_features(text, "lx:")
    return feats


_QUESTION = re.compile(r"[^.!?\n]*\?")


def last_question(text: str) -> str | None:
    """The last question in a message, if it asks one."""
    questions: list[str] = _QUESTION.findall(text)
    return questions[-1].strip() if questions else None


def coach_question(history: Sequence[Any]) -> str | None:
    """What the member is answering: the coach's last question, or its whole last turn if it
    asked none; None when the coach did not speak last."""
    if not history or history[-1].role != "assistant":
        return None
    coach: str = history[-1].content
    return last_question(coach) or coach


def member_previous(history: Sequence[Any]) -> str | None:
    """What the member said before (the thread they are in), if they said anything."""
    said = [turn.content for turn in history if turn.role == "user"]
    return str(said[-1]) if said else None


# Turns the model reads as the mean of their token embeddings (encoder depth 0, about 0.1 ms
# each), by the name of their weights: what the member is answering (+0.5 pt on split halves
# of calibration) and what they said before it (+1.4 pt leaving each of four writers' splits
# out of calibration in turn).
CONTEXT_VECTORS: dict[str, Callable[[Sequence[Any]], str | None]] = {
    "question_weights": coach_question,
    "previous_weights": member_previous,
}
# The message and its closest challenge title, as the product of their embedding means (see
# challenge_vector), last: with the challenge features, the coaching rows of three training
# sets written with challenges went cheap 12 times in 936 with each set left out in turn,
# against 16 with the features alone and 29 with neither.
VECTOR_FIELDS = ("vector_weights", *CONTEXT_VECTORS, "challenge_weights")


def context_features(history: Sequence[Any], text: str) -> list[str]:
    """What the conversation says about the new message: the coach's last turn (words,
    coaching words, its question) and whether the member's previous message was about
    coaching. `history` holds turns with `.role` and `.content`, oldest first."""
    if not history or history[-1].role != "assistant":
        return ["ctx:none"]
    coach = history[-1].content
    feats = ["ctx:coach"] + [f"a:{w}" for w in set(tokens(coach))]
    hits = coaching_hits(coach)
    feats += ["a:coaching"] * (hits >= 1) + ["a:coaching2"] * (hits >= 2)
    question = last_question(coach)
    feats += lexicon_features(question or coach, "qlx:")
    if question:
        feats += ["q:asked"] + [f"q:{w}" for w in set(tokens(question))]
        feats += ["q:coaching"] * bool(coaching_hits(question))
    earlier = [t.content for t in history if t.role == "user"]
    if earlier and coaching_hits(earlier[-1]):
        feats.append("u:coaching")
    if is_short(text):
        feats += ["ctx:short"] + ["q:short_answer"] * bool(question)
    return feats


# Title words too generic to tie a message to a challenge ("30-day streak", "10 minutes daily").
_TITLE_STOPWORDS = frozenset(
    """day days daily week weeks weekly month months minute minutes challenge streak every
    each times with from your into less more than""".split()  # noqa: SIM905
)
SIMILARITY_STEPS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
MAX_CHALLENGES = 8


def _content_words(text: str) -> set[str]:
    return {w for w in tokens(text) if len(w) >= 4 and w not in _TITLE_STOPWORDS}


def shares_a_word(text: str, title_words: set[str]) -> bool:
    """Does the text use a word of a title, or one that extends it ("cooked" for "cook",
    "gardening" for "garden")? Words of four letters or more."""
    return any(
        w.startswith(t) or t.startswith(w) for w in _content_words(text) for t in title_words
    )


def _read_only_mean(text: str) -> Any:
    vector = get_encoder().encode(text, depth=0)
    vector.setflags(write=False)  # shared by every caller of the caches below
    return vector


# Titles come back with every message of their members; a message and the coach's question
# are read two or three times within one decision. Two caches, so that messages never push
# the titles out and member text is not kept beyond the last few decisions.
_title_mean = functools.lru_cache(maxsize=512)(_read_only_mean)
_recent_mean = functools.lru_cache(maxsize=16)(_read_only_mean)


def embedding_mean(text: str, *, title: bool = False) -> Any:
    """The mean of a text's token embeddings (encoder depth 0), read-only and cached."""
    return _title_mean(text) if title else _recent_mean(text[:MAX_CHARS])


def _titles(challenges: Sequence[str]) -> list[str]:
    return [t for t in challenges[:MAX_CHALLENGES] if t.strip()]


def challenges_of(row: Mapping[str, Any]) -> tuple[str, ...]:
    """The active challenges' titles of a JSON row (``"challenges": ["Run a 5k", ...]``; absent
    or null: none known). Anything but a list of strings is refused."""
    raw = row.get("challenges")
    raw = [] if raw is None else raw
    if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
        raise ValueError('"challenges" must be a list of challenge titles (strings)')
    return tuple(raw)


def challenge_features(text: str, history: Sequence[Any], challenges: Sequence[str]) -> list[str]:
    """What the member's active challenges (their titles) say about the message: whether it
    or the coach's question shares a word with a title, and how close each comes to the
    closest title (cosine of embedding means, in cumulative steps). "chickpea curry from that
    recipe" is about the member's habit in a cook-at-home challenge, chit-chat in a running
    one. No challenges known (rows labelled without them): no features."""
    titles = _titles(challenges)
    if not titles:
        return []
    feats = ["ch:known"]
    title_words = set().union(*(_content_words(t) for t in titles))
    title_vectors = [embedding_mean(t, title=True) for t in titles]
    for prefix, said in (("", text), ("q", coach_question(history))):
        if not said:
            continue
        if shares_a_word(said, title_words):
            feats.append(f"ch:{prefix}word")
        vector = embedding_mean(said)
        closest = max(float(vector @ title) for title in title_vectors)
        feats += [f"ch:{prefix}sim>={step}" for step in SIMILARITY_STEPS if closest >= step]
    return feats


# Unit vectors' products component by component are tiny; scaled before the fit as the other
# vectors are by VECTOR_SCALE (the shipped weights have both folded in).
CHALLENGE_PRODUCT_SCALE = 20.0


def challenge_vector(text: str, challenges: Sequence[str]) -> Any | None:
    """The message's embedding mean times that of the closest active challenge's title,
    component by component: the model learns which shared topics make a message about the
    member's habit. None when no challenge is known."""
    titles = _titles(challenges)
    if not titles:
        return None
    said = embedding_mean(text)
    closest = max(
        (embedding_mean(t, title=True) for t in titles), key=lambda title: float(said @ title)
    )
    return CHALLENGE_PRODUCT_SCALE * said * closest


def model_input(text: str, history: Sequence[Any], challenges: Sequence[str]) -> Any:
    """The unscaled vectors the model reads, concatenated in VECTOR_FIELDS order, zeros where
    one is absent: the message's sentence vector, the CONTEXT_VECTORS' turns and the
    challenge product."""
    import numpy as np

    said = [context(history) for context in CONTEXT_VECTORS.values()]
    # With no layer the sentence vector is the embedding mean the challenge features read too.
    message = embedding_mean(text) if LAYERS == 0 else get_encoder().encode(text)
    product = challenge_vector(text, challenges)
    nothing = np.zeros(DIM, dtype=np.float32)
    return np.concatenate(
        [
            message,
            *(embedding_mean(t) if t else nothing for t in said),
            nothing if product is None else product,
        ]
    )


def conversation_features(
    text: str, history: Sequence[Any], challenges: Sequence[str] = ()
) -> list[str]:
    """Everything the model sees: the message's features, the conversation's and what the
    member's active challenges say about it."""
    feats = set(features(text)) | set(context_features(history, text))
    return sorted(feats | set(challenge_features(text, history, challenges)))


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


@dataclass
class RoutingModel:
    """P(small_talk | message, conversation) = sigmoid(bias + the features' weights + the
    message's sentence vector . vector_weights + for each of CONTEXT_VECTORS, its turn's
    embedding mean . its weights + challenge_vector . challenge_weights + the hidden layer's
    output over the four vectors)."""

    bias: float
    weights: dict[str, float]
    threshold: float  # route small talk only at or above this probability
    meta: dict[str, Any] = field(default_factory=dict)
    vector_weights: list[float] = field(default_factory=list)  # empty: no sentence vector
    question_weights: list[float] = field(default_factory=list)  # see CONTEXT_VECTORS
    previous_weights: list[float] = field(default_factory=list)
    challenge_weights: list[float] = field(default_factory=list)  # see challenge_vector
    # The hidden layer over the four vectors, concatenated in VECTOR_FIELDS order (see routing_fit)
    hidden_weights: list[list[float]] = field(default_factory=list)
    hidden_bias: list[float] = field(default_factory=list)
    output_weights: list[float] = field(default_factory=list)

    def p_small_talk(
        self, text: str, history: Sequence[Any] = (), challenges: Sequence[str] = ()
    ) -> float:
        w = self.weights
        feats = conversation_features(text, history, challenges)
        z = self.bias + sum(w.get(f, 0.0) for f in feats)
        linear = self._linear
        if linear is None and not self.hidden_weights:
            return _sigmoid(z)
        x = model_input(text, history, challenges)
        if linear is not None:
            z += float(x @ linear)
        if self.hidden_weights:
            import numpy as np

            hidden, hidden_bias, output = self._hidden
            z += float(np.maximum(hidden @ x + hidden_bias, 0.0) @ output)
        return _sigmoid(z)

    @functools.cached_property
    def _hidden(self) -> tuple[Any, Any, Any]:
        import numpy as np

        return (
            np.asarray(self.hidden_weights, dtype=np.float32),
            np.asarray(self.hidden_bias, dtype=np.float32),
            np.asarray(self.output_weights, dtype=np.float32),
        )

    @functools.cached_property
    def _linear(self) -> Any | None:
        """The vector weights concatenated as model_input's vectors are (zeros for a field
        without weights), or None when there are none."""
        import numpy as np

        fields = [getattr(self, name) for name in VECTOR_FIELDS]
        if not any(fields):
            return None
        return np.concatenate([np.asarray(f or np.zeros(DIM), dtype=np.float32) for f in fields])

    def to_json(self) -> str:
        body = {
            "bias": round(self.bias, 5),
            "threshold": self.threshold,
            "meta": self.meta,
            **{name: [round(v, 5) for v in getattr(self, name)] for name in VECTOR_FIELDS},
            "hidden_bias": [round(v, 5) for v in self.hidden_bias],
            "output_weights": [round(v, 5) for v in self.output_weights],
            "hidden_weights": [[round(v, 5) for v in row] for row in self.hidden_weights],
            "weights": {k: round(v, 4) for k, v in sorted(self.weights.items()) if abs(v) >= 1e-3},
        }
        return json.dumps(body, indent=0, sort_keys=False, ensure_ascii=False)

    @classmethod
    def load(cls, path: Path = WEIGHTS_PATH) -> RoutingModel:
        raw = json.loads(path.read_text(encoding="utf-8"))
        vectors = {name: [float(v) for v in raw.get(name, [])] for name in VECTOR_FIELDS}
        for name, values in vectors.items():
            if len(values) not in (0, DIM):
                raise ValueError(f"{path}: {len(values)} {name}, the encoder has {DIM} dimensions")
        meta = dict(raw.get("meta", {}))
        if vectors["vector_weights"] and meta.get("encoder_layers") != LAYERS:
            raise ValueError(
                f"{path}: trained on {meta.get('encoder_layers')} encoder layers, the encoder runs "
                f"{LAYERS}: retrain with `python -m app coach train-router`"
            )
        scale = meta.get("challenge_product_scale")
        if vectors["challenge_weights"] and scale != CHALLENGE_PRODUCT_SCALE:
            raise ValueError(
                f"{path}: trained with challenge vectors scaled by {scale}, the router scales them "
                f"by {CHALLENGE_PRODUCT_SCALE}: retrain with `python -m app coach train-router`"
            )
        hidden = [[float(v) for v in row] for row in raw.get("hidden_weights", [])]
        hidden_bias = [float(v) for v in raw.get("hidden_bias", [])]
        output = [float(v) for v in raw.get("output_weights", [])]
        inputs = len(VECTOR_FIELDS) * DIM
        if any(len(row) != inputs for row in hidden) or not (
            len(hidden) == len(hidden_bias) == len(output)
        ):
            raise ValueError(
                f"{path}: the hidden layer needs {inputs} inputs a unit and one bias and one "
                "output weight a unit: retrain with `python -m app coach train-router`"
            )
        return cls(
            bias=float(raw["bias"]),
            weights={str(k): float(v) for k, v in raw["weights"].items()},
            threshold=float(raw["threshold"]),
            meta=meta,
            **vectors,
            hidden_weights=hidden,
            hidden_bias=hidden_bias,
            output_weights=output,
        )


def model_miss_allowance(budget: float, coaching: int, rule_misses: int) -> int:
    """How many calibration coaching rows the model may send cheap: `budget` of all of them,
    less those the rules already sent cheap."""
    return max(0, int(budget * coaching) - rule_misses)


def train(
    rows: Iterable[dict[str, Any]],
    *,
    calibration: Sequence[dict[str, Any]],
    rule_route: Callable[[dict[str, Any]], str | None],
    budget: float = 0.005,
    l2: float = 2e-4,
    hidden: int = HIDDEN,
    epochs: int = EPOCHS,
) -> RoutingModel:
    """Fit on every labelled row (with its conversation); pick the threshold on the
    `calibration` rows, which the model never saw: the lowest bar at which at most `budget`
    of their coaching messages go cheap, the rules' own mistakes counted first. The target is
    1 %; the budget is half of it because a real question sent to the cheap model is the
    expensive mistake and a held-out split of ~230 coaching rows allows only two (at 0.75 %,
    held-out v7 saw 4 of 231). `rule_route` is the rules' answer for a row, or None.

    Why not cross-validation on the training rows: they hold deliberately hard coaching rows
    (coaching with no habit word at all) in a larger share than real traffic; their bar
    (0.978, fitted on 6,536 rows) scored 85.7 % on the 1,312 calibration rows of the time
    against 89.6 % for a calibrated one (0.952)."""
    import numpy as np

    rows = list(rows)
    histories = [turns(r.get("history")) for r in rows]
    feats = [
        conversation_features(str(r["text"]), h, challenges_of(r))
        for r, h in zip(rows, histories, strict=True)
    ]
    vectors = VECTOR_SCALE * np.array(
        [
            model_input(str(r["text"]), h, challenges_of(r))
            for r, h in zip(rows, histories, strict=True)
        ]
    )
    labels = [r["label"] == SMALL_TALK_LABEL for r in rows]
    fitted = fit(feats, labels, vectors=vectors, l2=l2, hidden=hidden, epochs=epochs)
    # The vectors were scaled for the fit: the scale is folded into the weights that read them.
    by_field: dict[str, Any] = {
        name: [VECTOR_SCALE * x for x in fitted.vector_weights[i * DIM : (i + 1) * DIM]]
        for i, name in enumerate(VECTOR_FIELDS)
    }
    by_field["hidden_weights"] = [[VECTOR_SCALE * x for x in row] for row in fitted.hidden_weights]
    by_field["hidden_bias"] = fitted.hidden_bias
    by_field["output_weights"] = fitted.output_weights
    bias, weights = fitted.bias, fitted.weights
    coaching = [r for r in calibration if r["label"] != SMALL_TALK_LABEL]
    if not coaching:
        raise ValueError("calibration rows hold no coaching message: no threshold to set")
    by_rules = [rule_route(r) for r in coaching]
    rule_misses = sum(route == SMALL_TALK_LABEL for route in by_rules)
    allowed = model_miss_allowance(budget, len(coaching), rule_misses)
    unbarred = RoutingModel(bias, weights, threshold=1.0, **by_field)
    model_decides = sorted(
        (
            unbarred.p_small_talk(str(r["text"]), turns(r.get("history")), challenges_of(r))
            for r, route in zip(coaching, by_rules, strict=True)
            if route is None
        ),
        reverse=True,
    )
    # Route small talk only strictly above the allowed-th highest coaching score.
    bar = model_decides[allowed] if allowed < len(model_decides) else 0.5
    threshold = round(min(1.0, max(0.5, bar + 1e-4)), 4)  # 1.0: the model never routes cheap
    meta = {
        "l2_per_epoch": l2,
        "hidden": hidden,
        "epochs": epochs,
        "vector_scale": VECTOR_SCALE,
        "encoder_layers": LAYERS,
        "challenge_product_scale": CHALLENGE_PRODUCT_SCALE,
        "budget": budget,
        "trained_on": len(rows),
        "calibration_rows": len(calibration),
        "calibration_coaching": len(coaching),
        "calibration_rule_misses": rule_misses,
        "calibration_allowed_model_misses": allowed,
        "calibration_top_coaching_p": [round(p, 4) for p in model_decides[: allowed + 3]],
    }
    return RoutingModel(bias, weights, threshold, meta, **by_field)
