"""The rolling memory's deterministic parts: what is kept, what a small model may add, caps."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.services.coach.memory import grounded_recap, merge, parse, salient_lines

TURNS = [
    ("user", "I want to run my first 5k in 8 weeks. It's so hot today."),
    ("assistant", "Great goal! Three runs a week to start."),
    ("user", "I will run Monday, Wednesday and Saturday with Priya."),
    ("user", "haha ok"),
]


def test_goals_commitments_and_names_are_kept() -> None:
    lines = salient_lines(TURNS)
    kinds = {line.kind: line.text for line in lines}
    assert "5k in 8 weeks" in kinds["goal"]
    assert "Priya" in kinds["commitment"]
    assert not any("hot today" in line.text for line in lines)  # chit-chat is not memory
    assert not any("Three runs" in line.text for line in lines)  # only the member's words


def test_a_recap_sentence_the_turns_do_not_support_is_dropped() -> None:
    source = "Member: I want to run a 5k in 8 weeks with Priya."
    model_text = "The member wants to run a 5k in 8 weeks. They love skydiving in Peru."
    recap = grounded_recap(model_text, source)
    assert "5k" in recap
    assert "skydiving" not in recap


def test_newer_line_replaces_a_near_duplicate() -> None:
    first = merge("", salient_lines([("user", "I will run 3 days a week.")]), "", 1200)
    second = merge(first, salient_lines([("user", "I will run 4 days a week.")]), "", 1200)
    assert "4 days" in second
    assert "3 days" not in second


def test_goals_outlive_notes_when_over_the_cap() -> None:
    memory = merge("", salient_lines([("user", "My goal is a marathon in October.")]), "", 300)
    for i in range(30):
        memory = merge(memory, salient_lines([("user", f"Ran {i} km on day {i + 1}.")]), "", 300)
    assert len(memory) <= 300
    assert "marathon in October" in memory
    assert "day 30" in memory  # the newest note is there, the oldest were evicted


def test_parse_reads_back_what_merge_writes() -> None:
    memory = merge("", salient_lines(TURNS), "Member plans runs.", 1200)
    assert [line.render() for line in parse(memory)] == memory.splitlines()


@given(
    previous=st.text(max_size=3000),
    turns=st.lists(
        st.tuples(st.sampled_from(["user", "assistant"]), st.text(max_size=600)), max_size=12
    ),
    recap=st.text(max_size=400),
    cap=st.integers(min_value=0, max_value=2000),
)
def test_memory_never_exceeds_its_cap(
    previous: str, turns: list[tuple[str, str]], recap: str, cap: int
) -> None:
    assert len(merge(previous, salient_lines(turns), recap, cap)) <= cap
