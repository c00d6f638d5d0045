"""Routing: fixed cases (single and multi-turn), the held-out targets, and its speed."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from app.coach_cli import ROUTING_DIR, wilson_interval
from app.services.coach.prompt import Turn, turns
from app.services.coach.routing import (
    COACHING,
    LAUGHTER,
    SMALL_TALK,
    classify,
    evaluate,
    in_coaching_thread,
    social_kind,
)
from app.services.coach.routing_model import challenges_of, strong_hits, train

PLAN = [
    Turn("user", "Can you make me a plan to run a 5k?"),
    Turn("assistant", "Start with three runs a week. Would you like it over 6 or 8 weeks?"),
]
CHAT = [Turn("user", "hi"), Turn("assistant", "Hi! Nice to see you.")]


@pytest.mark.parametrize(
    "text",
    ["hi", "thanks!", "good night", "great, thanks!", "haha", "how are you?", "bye bye"],
)
def test_greetings_thanks_and_chit_chat_are_small_talk(text: str) -> None:
    assert classify([], text).route == SMALL_TALK


@pytest.mark.parametrize(
    "text",
    [
        "How do I keep my streak when I travel?",
        "I missed three days, what now",
        "my goal is to read 12 books this year",
        "what are signs I'm overtraining",
        "thanks, but how do I stay consistent on weekends?",
    ],
)
def test_real_questions_are_coaching(text: str) -> None:
    assert classify([], text).route == COACHING


@pytest.mark.parametrize(
    "text", ["yes, make it 4 weeks", "ok", "mornings", "sure, let's try it", "6 weeks"]
)
def test_short_reply_continuing_a_coaching_thread_stays_coaching(text: str) -> None:
    assert classify(PLAN, text).route == COACHING


def test_the_same_reply_after_chit_chat_is_small_talk() -> None:
    assert classify(CHAT, "ok").route == SMALL_TALK


def test_thanks_after_coaching_is_small_talk() -> None:
    assert classify(PLAN, "thanks!").route == SMALL_TALK


def test_a_chain_of_short_replies_keeps_the_thread() -> None:
    history = [*PLAN, Turn("user", "8 weeks"), Turn("assistant", "Great, 8 weeks it is.")]
    assert classify(history, "yes").route == COACHING
    # "yes" holds no coaching word: the thread is found by routing it in its own context
    agreed = [*PLAN, Turn("user", "yes"), Turn("assistant", "Great, done.")]
    assert in_coaching_thread(agreed)
    assert classify(agreed, "ok").reason == "rule: agreeing with the coach's plan"


@pytest.mark.parametrize(
    "text",
    ["haha ok thanks coach", "cool cool. bye!", "got it, thanks a lot", "🙌🙌", "gn!"],
)
def test_closing_words_and_reactions_after_coaching_are_small_talk(text: str) -> None:
    done = [*PLAN, Turn("user", "8 weeks"), Turn("assistant", "Saved: 8 weeks, 3 runs a week.")]
    assert classify(done, text).route == SMALL_TALK


def test_a_reply_to_the_coachs_question_is_coaching_without_coaching_words() -> None:
    vague = [
        Turn("user", "My evenings are a mess."),
        Turn("assistant", "Pick one anchor: phone off at 10pm. Which evening is hardest for you?"),
    ]
    for text in ("yep", "no, mornings are better", "I'll try it tonight", "👍"):
        assert classify(vague, text).route == COACHING, text


@pytest.mark.parametrize("text", ["I did it!!! day 30 🎉", "week 3 done", "gotta run 5k today"])
def test_progress_reports_are_coaching(text: str) -> None:
    assert classify([], text).route == COACHING


def test_every_decision_has_a_reason() -> None:
    for text in ("hi", "how do I sleep better?", ""):
        assert classify([], text).reason


def _rows(name: str) -> list[dict[str, object]]:
    lines = (ROUTING_DIR / f"{name}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.mark.xfail(
    strict=True,
    reason="held-out c-held-13 + c-held-14 (840 rows with the member's active challenges, by two "
    "separate sessions that never saw the router or its data, scored once): accuracy 87.7 % "
    "(90.2 % and 85.2 %; 84.8 % on the pair before); the misses are mostly small talk sent to "
    "the capable model (issue 5 open)",
)
def test_heldout_accuracy_target() -> None:
    result = evaluate(_rows("heldout"))
    assert result["n"] >= 400
    assert result["accuracy"] >= 0.95


def test_the_accuracy_interval_is_wilsons() -> None:
    """eval-router prints it: how far a split of this size can sit from the true accuracy."""
    assert wilson_interval(737, 840) == [0.853, 0.898]  # c-held-13 + c-held-14
    assert wilson_interval(0, 10) == [0.0, 0.278]
    assert wilson_interval(10, 10) == [0.722, 1.0]
    assert wilson_interval(0, 0) == [0.0, 1.0]


def test_heldout_expensive_mistakes_target() -> None:
    """At most 1 % of coaching messages sent to the cheap model (c-held-13 + c-held-14: 1 of 440,
    as for 737a961, which had four more rules; c-held-11 + c-held-12: 2 of 439)."""
    assert evaluate(_rows("heldout"))["coaching_to_small_talk"] <= 0.01


def test_the_calibration_split_holds_the_budget_its_threshold_was_set_for() -> None:
    """Calibration rows (10,046 by thirty-three writers, never fitted on) set the threshold at
    0.5 % of their coaching rows sent cheap (the shipped router: 90.5 %, 25 of 5,330)."""
    result = evaluate(_rows("calibration"))
    assert result["n"] >= 1000
    assert result["coaching_to_small_talk"] <= 0.005
    assert result["accuracy"] >= 0.87


def test_the_threshold_allows_the_budget_counting_rule_misses_first() -> None:
    def rule(row: dict[str, Any]) -> str | None:
        return SMALL_TALK if row["text"] == "ruled cheap" else None

    fit_on = [{"text": t, "label": SMALL_TALK} for t in ("hi there", "lol", "nice weather")] + [
        {"text": t, "label": COACHING} for t in ("my run plan", "sleep goal", "streak help")
    ]
    words = ("hi", "there", "lol", "nice", "weather")
    subsets = [c for n in range(1, 6) for c in itertools.combinations(words, n)]
    coaching = [{"text": " ".join(c), "label": COACHING} for c in subsets]  # 31 distinct scores
    calibration = [*coaching, {"text": "ruled cheap", "label": COACHING}]
    model = train(fit_on, calibration=calibration, rule_route=rule, budget=0.125, l2=0.05)
    cheap = [r for r in coaching if model.p_small_talk(str(r["text"])) >= model.threshold]
    assert model.meta["calibration_rule_misses"] == 1
    assert len(cheap) == 3  # 12.5 % of 32 is 4, the rules took one


def test_the_hidden_layer_learns_what_a_linear_model_cannot() -> None:
    """Small talk exactly when one of two signals is on (exclusive or): no weighted sum of the
    signals separates that, the hidden layer does."""
    import numpy as np

    from app.services.coach.routing_fit import fit

    corners = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]] * 200)
    small_talk = [bool(a) != bool(b) for a, b in corners]
    fitted = fit([[] for _ in corners], small_talk, vectors=corners, epochs=60, lr=0.02)
    hidden = np.maximum(corners @ np.array(fitted.hidden_weights).T + fitted.hidden_bias, 0)
    z = fitted.bias + corners @ np.array(fitted.vector_weights) + hidden @ fitted.output_weights
    assert ((z > 0) == np.array(small_talk)).all()


def test_the_router_reads_what_the_fit_learnt(monkeypatch: pytest.MonkeyPatch) -> None:
    """p_small_talk (the vectors' scale folded into the weights, absent vectors as zeros, the
    hidden layer) gives the fit's own forward pass over the inputs it was fitted on."""
    import numpy as np

    from app.services.coach import routing_fit, routing_model
    from app.services.coach.routing import rule_route

    seen: dict[str, Any] = {}

    def recording_fit(rows: Any, labels: Any, **kwargs: Any) -> routing_fit.Fitted:
        seen["rows"], seen["vectors"] = rows, kwargs["vectors"]
        seen["fitted"] = routing_fit.fit(rows, labels, **kwargs)
        return seen["fitted"]

    monkeypatch.setattr(routing_model, "fit", recording_fit)
    rows = _rows("train")[-600:]  # written with the member's challenges
    model = train(rows, calibration=_rows("heldout"), rule_route=rule_route, epochs=3)
    fitted, x = seen["fitted"], seen["vectors"]
    hidden = np.maximum(x @ np.array(fitted.hidden_weights).T + fitted.hidden_bias, 0)
    wide = [sum(fitted.weights[f] for f in feats) for feats in seen["rows"]]
    z = fitted.bias + np.array(wide) + x @ fitted.vector_weights + hidden @ fitted.output_weights
    read = [model.p_small_talk(str(r["text"]), turns(r["history"]), challenges_of(r)) for r in rows]
    assert read == pytest.approx(1 / (1 + np.exp(-z)), abs=1e-5)


def test_hardly_any_training_coaching_message_goes_cheap() -> None:
    """A regression guard: the rules and the fitted model on the rows they were fitted on."""
    assert evaluate(_rows("train"))["coaching_to_small_talk"] <= 0.005


def test_p99_under_5ms() -> None:
    """CPU time of the process per decision, BLAS threads included (wall time on a loaded
    2-core box measures the scheduler)."""
    rows = _rows("heldout")
    cases = [(turns(r["history"]), str(r["text"]), challenges_of(r)) for r in rows]
    classify([], "warm up")
    timings = []
    for _ in range(5):
        for history, text, challenges in cases:
            started = time.process_time()
            classify(history, text, challenges)
            timings.append(time.process_time() - started)
    timings.sort()
    assert timings[int(len(timings) * 0.99)] < 0.005


def test_route_command_answers_one_line_per_input_in_order() -> None:
    lines = [
        {"history": [], "text": "hello"},
        {
            "history": [
                {"role": "user", "content": "plan my runs"},
                {"role": "assistant", "content": "3 runs a week, which days?"},
            ],
            "text": "mondays",
        },
        {"history": [], "text": "How do I stop snoozing?"},
        {"history": [], "text": "thanks!", "challenges": ["Run a 5k"]},
    ]
    out = subprocess.run(
        [sys.executable, "-m", "app", "coach", "route"],
        input="\n".join(json.dumps(x) for x in lines) + "\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    got = [json.loads(line) for line in out]
    assert [g["route"] for g in got] == [SMALL_TALK, COACHING, COACHING, SMALL_TALK]
    assert all(set(g) == {"route", "model"} for g in got)


def _route_command(lines: list[str], *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", "coach", "route", *options],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_route_command_passes_the_members_challenges_to_the_model() -> None:
    asked = [{"role": "assistant", "content": "What did you make this week?"}]
    row = {"history": asked, "text": "lasagna, first time making it"}
    cooking = {**row, "challenges": ["Cook dinner at home, 30 days"]}
    done = _route_command([json.dumps(row), json.dumps(cooking)], "--reason")
    assert done.returncode == 0, done.stderr
    plain, with_challenge = (json.loads(line)["reason"] for line in done.stdout.splitlines())
    assert plain.startswith("model:") and with_challenge.startswith("model:")
    assert plain != with_challenge  # the title moved P(small_talk)


@pytest.mark.parametrize(
    ("line", "problem"),
    [('{"text": "hi", "challenges": "Run a 5k"}', "list of challenge titles"), ("{oops", "line 2")],
)
def test_route_command_names_the_bad_line(line: str, problem: str) -> None:
    done = _route_command(['{"text": "hi"}', line])
    assert done.returncode == 2
    assert problem in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("text", ["haha yes", "lol ok", "good idea", "sounds good"])
def test_agreeing_with_the_coachs_plan_is_coaching(text: str) -> None:
    assert classify(PLAN, text).route == COACHING


@pytest.mark.parametrize("text", ["haha", "lol good one", "love it"])
def test_laughter_at_chit_chat_is_small_talk(text: str) -> None:
    joke = [Turn("user", "tell me a joke"), Turn("assistant", "Why did the scarecrow win? 🌾")]
    assert (
        classify([*joke, Turn("user", "why"), Turn("assistant", "He was outstanding!")], text).route
        == SMALL_TALK
    )


@pytest.mark.parametrize("text", ["u too", "ty coach", "gracias!! 😊", "merci beaucoup", "thx, gn"])
def test_thanks_and_goodbyes_in_shorthand_and_other_languages_are_small_talk(text: str) -> None:
    done = [*PLAN, Turn("user", "8 weeks"), Turn("assistant", "Saved. Take care!")]
    assert classify(done, text).route == SMALL_TALK


def test_everyday_words_do_not_make_chit_chat_coaching_by_rule() -> None:
    """ "week", "sleep" and "monday" are coaching words to the model; no rule reads them in
    the member's message."""
    for text in ("is it me or is monday the longest day ever", "do you sleep at night?"):
        assert not classify([], text).reason.startswith("rule:"), text


def test_a_social_question_in_a_coaching_thread_is_not_a_coaching_thread() -> None:
    trip = [
        Turn("user", "I'm away next week"),
        Turn("assistant", "That sounds lovely! Where are you headed?"),
    ]
    assert not in_coaching_thread(trip)
    assert not classify(trip, "yes").reason.startswith("rule:")  # the model reads it in context


def test_a_greeting_word_that_picks_the_coachs_option_is_coaching() -> None:
    slot = [Turn("assistant", "Do you prefer a morning or evening slot?")]
    assert classify(slot, "evening").route == COACHING
    assert classify([Turn("assistant", "Hi there!")], "evening").route == SMALL_TALK


@pytest.mark.parametrize("text", ["lol", "haha true", "lmaooo"])
def test_laughing_at_the_coachs_remark_is_small_talk(text: str) -> None:
    remark = [*PLAN, Turn("user", "8 weeks"), Turn("assistant", "Cake at work is an ambush 😄")]
    assert classify(remark, text).route == SMALL_TALK


def test_laughing_answer_to_a_coaching_question_is_coaching() -> None:
    asked = [Turn("assistant", "Did you manage the 10 minutes of Japanese flashcards today?")]
    assert classify(asked, "lol no").route == COACHING


@pytest.mark.parametrize(
    "text",
    [
        "thank you so much!! oh and quick q - what do I do if I miss a day while travelling?",
        "Good morning coach. I wanted to ask whether I should continue my pranayama when I'm ill",
        "good night coach 🌙 phone's going in the drawer like we said",
    ],
)
def test_asking_what_to_do_or_pointing_at_the_plan_is_coaching(text: str) -> None:
    decision = classify([], text)
    assert decision.route == COACHING
    assert decision.reason.startswith("rule:")


def test_the_shipped_weights_are_what_the_shipped_data_trains() -> None:
    """Editing the labelled rows, the lexicons or the features without retraining fails here."""
    from app.services.coach.routing import rule_route
    from app.services.coach.routing_model import RoutingModel

    shipped = RoutingModel.load()
    model = train(_rows("train"), calibration=_rows("calibration"), rule_route=rule_route)
    # Within rounding: numpy's exp may differ in the last bits from one CPU to another.
    assert model.threshold == pytest.approx(shipped.threshold, abs=2e-4)
    assert model.bias == pytest.approx(shipped.bias, abs=1e-3)
    features = model.weights.keys() | shipped.weights.keys()
    assert max(abs(model.weights.get(f, 0) - shipped.weights.get(f, 0)) for f in features) < 2e-3
    assert len(model.vector_weights) == len(shipped.vector_weights) == 384
    assert model.vector_weights == pytest.approx(shipped.vector_weights, abs=2e-3)
    for name in ("question_weights", "previous_weights", "challenge_weights"):
        assert len(getattr(model, name)) == len(getattr(shipped, name)) == 384
        assert getattr(model, name) == pytest.approx(getattr(shipped, name), abs=2e-3)
    assert len(model.hidden_weights) == len(shipped.hidden_weights) == 64
    for fitted, stored in zip(model.hidden_weights, shipped.hidden_weights, strict=True):
        assert fitted == pytest.approx(stored, abs=2e-3)
    assert model.hidden_bias == pytest.approx(shipped.hidden_bias, abs=2e-3)
    assert model.output_weights == pytest.approx(shipped.output_weights, abs=2e-3)


def _load_edited(tmp_path: Path, meta: dict[str, Any], **fields: object) -> None:
    """Load the shipped weights with some top-level fields and meta entries replaced."""
    from app.services.coach.routing_model import WEIGHTS_PATH, RoutingModel

    raw = json.loads(WEIGHTS_PATH.read_text())
    raw.update(fields)
    raw["meta"].update(meta)
    edited = tmp_path / "weights.json"
    edited.write_text(json.dumps(raw))
    RoutingModel.load(edited)


@pytest.mark.parametrize(
    ("key", "stale_value"),
    [("encoder_layers", 2), ("challenge_product_scale", 1.0)],
    ids=["another encoder depth", "challenge vectors scaled otherwise"],
)
def test_weights_trained_otherwise_are_refused(
    tmp_path: Path, key: str, stale_value: float
) -> None:
    with pytest.raises(ValueError, match="retrain"):
        _load_edited(tmp_path, {key: stale_value})


@pytest.mark.parametrize(
    ("key", "broken"),
    [("hidden_bias", [0.0]), ("hidden_weights", [[0.0] * 384] * 64)],
    ids=["a bias short", "a unit with a quarter of its inputs"],
)
def test_a_malformed_hidden_layer_is_refused(tmp_path: Path, key: str, broken: object) -> None:
    with pytest.raises(ValueError, match="hidden layer"):
        _load_edited(tmp_path, {}, **{key: broken})


def test_the_model_reads_the_coach_question_and_the_members_previous_message() -> None:
    from app.services.coach.routing_model import coach_question, member_previous

    assert coach_question([]) is None
    assert coach_question([Turn("user", "hi")]) is None
    asked = [Turn("assistant", "Nice work today. How did the new route feel? Any pain?")]
    assert coach_question(asked) == "Any pain?"
    told = [Turn("assistant", "Great job, see you tomorrow!")]
    assert coach_question(told) == "Great job, see you tomorrow!"
    assert member_previous(told) is None
    thread = [Turn("user", "ran 5k"), Turn("assistant", "Nice!"), Turn("user", "and stretched")]
    assert (
        member_previous([*thread, Turn("assistant", "How do your legs feel?")]) == "and stretched"
    )


@pytest.mark.parametrize(
    ("coach", "text"),
    [
        ("How was the weekend?", "lovely and sunny, so I did my run by the canal instead"),
        ("Any plans tonight?", "pub quiz, but I'll be on lemonade to keep my streak"),
        ("", "my sleep has been all over the place since the clocks changed"),
        ("", "Día 12 completado 💪"),
        ("", "Tag 20 geschafft!"),
    ],
)
def test_a_habit_named_as_the_members_own_is_coaching_in_any_frame(coach: str, text: str) -> None:
    history = [Turn("assistant", coach)] if coach else []
    assert classify(history, text).route == COACHING


def test_he_is_a_word_not_laughter() -> None:
    gym = [
        Turn("user", "going to the gym with my brother tomorrow at 7"),
        Turn("assistant", "Great plan! Let me know how it goes."),
    ]
    assert social_kind("he") is None
    assert social_kind("hehe") == LAUGHTER
    assert classify(gym, "he overslept").route == COACHING


@pytest.mark.parametrize(
    "text", ["20 push-ups before bed", "signed up for a 10k", "missed my check-in"]
)
def test_words_the_tokens_split_still_name_the_domain(text: str) -> None:
    assert strong_hits(text) > 0
    assert classify([], text).route == COACHING


def test_calibration_without_coaching_rows_is_refused() -> None:
    from app.services.coach.routing import rule_route

    rows = [{"text": "hi", "label": SMALL_TALK}, {"text": "my plan", "label": COACHING}]
    with pytest.raises(ValueError, match="no coaching"):
        train(rows, calibration=[{"text": "hi", "label": SMALL_TALK}], rule_route=rule_route)


def test_without_the_sentence_encoder_the_model_step_routes_coaching(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A missing wheel must not break answers: unsure means coaching."""
    from app.services.coach import routing_model
    from app.services.coach.encoder import EncoderUnavailableError

    def missing() -> None:
        raise EncoderUnavailableError("not installed")

    monkeypatch.setattr(routing_model, "get_encoder", missing)
    decision = classify(CHAT, "the weather is nice today")
    assert decision.route == COACHING
    assert "encoder" in decision.reason
    assert classify([], "hello").route == SMALL_TALK  # the rules still decide what they can


COOKED = [Turn("assistant", "Welcome back! What did you make this week?")]


def test_the_members_challenges_move_a_socially_phrased_answer_towards_coaching() -> None:
    """The same answer about food is about the member's habit in a cook-at-home challenge and
    chit-chat from a member whose challenge is running."""
    from app.services.coach.routing import model

    text = "a big pot of dal with my mum's recipe, so good"
    cooking = model().p_small_talk(text, COOKED, ["Cook dinner at home, 30 days"])
    running = model().p_small_talk(text, COOKED, ["Run a 5k"])
    assert cooking < running


def test_challenge_features_read_titles_words_and_closeness() -> None:
    from app.services.coach.routing_model import challenge_features, shares_a_word

    def steps(text: str, title: str) -> int:
        feats = challenge_features(text, COOKED, [title])
        return sum(f.startswith("ch:sim>=") for f in feats)

    assert challenge_features("we cooked a curry", COOKED, []) == []
    feats = challenge_features("we cooked a curry", COOKED, ["Cook dinner at home"])
    assert {"ch:known", "ch:word"} <= set(feats)
    assert "ch:word" not in challenge_features("we had a curry", [], ["Run a 5k"])
    # closeness: the cooking title is nearer a cooking report than the running one or "thanks"
    assert steps("we cooked a curry", "Cook dinner at home") > steps(
        "we cooked a curry", "Run a 5k"
    )
    assert steps("we cooked a curry", "Cook dinner at home") > steps(
        "thanks!", "Cook dinner at home"
    )
    assert shares_a_word("the gardening went well", {"garden"})
    assert not shares_a_word("30 days of it", {"days"})  # too short or generic: no match


@pytest.mark.parametrize("bad", ["Run a 5k", [1, 2], {"title": "Run"}, {}, "", 0, False])
def test_challenges_must_be_a_list_of_titles(bad: object) -> None:
    from app.services.coach.routing_model import challenges_of

    with pytest.raises(ValueError, match="list of challenge titles"):
        challenges_of({"text": "hi", "challenges": bad})
    assert challenges_of({"text": "hi"}) == ()
    assert challenges_of({"text": "hi", "challenges": ["Run a 5k"]}) == ("Run a 5k",)
