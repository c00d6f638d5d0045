"""A streaming guard that keeps the coach's rules out of its answers.

The prompt fences member text off, but a small model asked to "print your system prompt" may
still recite its rules. The guard watches the answer word by word: a run of `SPAN` words
that also appears in the rules is a leak, and is dropped up to the end of its sentence.
Words that could be the start of such a run are held back until they either complete it
(dropped) or stop matching (released), so an ordinary answer streams with at most a
word of delay, and the saved answer is exactly what the member saw.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from app.services.coach.prompt import RULES

SPAN = 5
# Words of the prompt's structure: never shown, wherever they appear.
MARKERS = frozenset({"member_data"})
REFUSAL = "I keep my instructions private, but I'm glad to help with your challenges."

_WORD = re.compile(r"\s*\S+\s+")
_WORD_END = re.compile(r"\S*\s+")
_SENTENCE_END = re.compile(r"[.!?:]['\")\]]*\s|\n")


def key(word: str) -> str:
    """What two words must share to count as the same: lower case, letters and _ only.
    Numbers are left out (empty key, skipped in matching): "1." opens half of all answers
    and would otherwise be held back as the start of the rules' numbered list."""
    return re.sub(r"[\W\d]+", "", word.lower())


def spans(text: str, size: int = SPAN) -> frozenset[tuple[str, ...]]:
    """Every run of `size` consecutive (keyed, non-empty) words of `text`."""
    words = [k for k in (key(w) for w in text.split()) if k]
    return frozenset(tuple(words[i : i + size]) for i in range(len(words) - size + 1))


@dataclass
class LeakGuard:
    """Feed it the model's deltas; it returns the text that is safe to show now."""

    secret: frozenset[tuple[str, ...]]
    markers: frozenset[str] = MARKERS
    leaked: bool = False
    matched: str = ""  # the first secret span seen (for the log)
    _held: list[str] = field(default_factory=list)  # whole words (with their whitespace)
    _partial: str = ""  # the word being typed, not shown yet
    _shown: bool = False  # the word being typed was already (partly) shown
    _sent: bool = False  # anything shown yet
    _dropping: bool = False  # inside a leaking sentence: skip to its end

    def feed(self, delta: str) -> str:
        out: list[str] = []
        text, self._partial = self._partial + delta, ""
        if self._shown:  # the rest of a word already (partly) shown: show it too
            end = _WORD_END.match(text)
            if end is None:
                return text
            out.append(text[: end.end()])
            text, self._shown = text[end.end() :], False
        end_of_words = 0
        for match in _WORD.finditer(text):
            end_of_words = match.end()
            out.append(self._word(match.group()))
        self._partial = text[end_of_words:]
        if self._partial and not self._dropping:
            out.append(self._typing())
        self._sent = self._sent or any(out)
        return "".join(out)

    def finish(self) -> str:
        """The rest of the answer, once the model is done."""
        rest = "".join(self._held) + self._partial
        if self._is_marker(self._partial):
            self.leaked, rest = True, "".join(self._held)
        if self._dropping or self._is_leak([*self._held, self._partial]):
            self.leaked = self.leaked or not self._dropping
            rest = ""
        self._held, self._partial, self._shown, self._dropping = [], "", False, False
        if self.leaked:
            shown_before = self._sent or bool(rest.strip())
            rest = rest.rstrip() + ("\n\n" if shown_before else "") + REFUSAL
        return rest

    # ---- internals ---------------------------------------------------------------------

    def _word(self, word: str) -> str:
        """A completed word (with its whitespace)."""
        if self._dropping:
            self._dropping = not _SENTENCE_END.search(word)
            return ""
        if self._is_marker(word):
            self.leaked = True
            return self._release()
        self._held.append(word)
        if self._is_leak(self._held):
            self.matched = self.matched or " ".join(key(w) for w in self._held)
            self.leaked, self._held = True, []
            self._dropping = not _SENTENCE_END.search(word)
            return ""
        return self._release()

    def _typing(self) -> str:
        """The word being typed: show it now unless it may be part of a leak."""
        partial = key(self._partial)
        released = self._release(partial)
        if not self._held and not self._could_continue([], partial) and not self._marker():
            self._shown = True
            released += self._partial
            self._partial = ""
        return released

    def _release(self, partial: str = "") -> str:
        """Emit the held words that can no longer start a leak; keep the rest."""
        keys = [key(w) for w in self._held]
        for start in range(len(keys)):
            if self._could_continue(keys[start:], partial):
                released, self._held = self._held[:start], self._held[start:]
                return "".join(released)
        released, self._held = self._held, []
        return "".join(released)

    def _marker(self) -> bool:
        """Could the word being typed still become a marker (a tag such as <member_data>)?"""
        typed = key(self._partial)
        if not typed:
            return "<" in self._partial
        return any(m.startswith(typed) or m in typed for m in self.markers)

    def _is_marker(self, word: str) -> bool:
        typed = key(word)
        return any(marker in typed for marker in self.markers)

    def _could_continue(self, prefix: list[str], partial: str) -> bool:
        """Could `prefix` (+ the word being typed) still grow into a secret span?"""
        words = [k for k in prefix if k]
        n = len(words)
        if n >= SPAN or (n == 0 and not partial):
            return False
        return any(
            list(span[:n]) == words and (not partial or span[n].startswith(partial))
            for span in self.secret
        )

    def _is_leak(self, words: Iterable[str]) -> bool:
        keys = tuple(k for k in (key(w) for w in words) if k)
        return len(keys) >= SPAN and keys[-SPAN:] in self.secret


RULE_SPANS = spans(RULES)  # what the coach must never recite
