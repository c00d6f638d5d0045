"""Rolling memory: turns that leave the prompt window are folded into `Conversation.summary`.

Runs off the request path: `MemoryKeeper.schedule(conversation_id)` is called right after an
answer is saved and returns at once; a background task (strongly referenced, one per
conversation at a time, re-run if more turns left meanwhile) does the work:

1. the turns older than the window (all but the last `coach_window_turns - 1` complete
   messages, so the next prompt is exactly summary + window; none while fewer are waiting,
   and none from the question of a reply still to be written) are read;
2. `SUMMARY_MODEL` writes a one- or two-sentence recap of them (ledger row kind="summary");
3. a deterministic extractive pass keeps the member's goals, commitments, numbers and names
   whatever the model wrote, and only recap sentences grounded in the turns are kept;
4. the merged memory, capped at `coach_summary_max_chars`, is saved with a compare-and-set
   on `summarized_through`, so two jobs (or two workers) never clobber each other.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import Conversation, LlmCall, Message, utcnow
from app.services.coach.routing_model import domain_hits, tokens
from app.services.coach.store import CLAIMED_AT, claim_lifetime
from app.services.llm import LLMGateway, LLMUnavailable
from app.settings import Settings

log = structlog.get_logger("app.coach.memory")

SUMMARY_ROUTE = "summary"
SUMMARY_MAX_TOKENS = 64
LINE_MAX_CHARS = 160
RECAP_MAX_CHARS = 240
# Eviction order when the memory is over its cap: least valuable kind first, oldest first.
KINDS = ("asked", "recap", "note", "commitment", "goal")
SUMMARY_INSTRUCTIONS = (
    "You write memory notes for a habit coach. Summarize the conversation excerpt in one or "
    "two short sentences. Keep the member's goals, commitments, numbers and names. "
    "Add nothing that is not in the excerpt."
)

_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")
_GOAL = re.compile(
    r"\b(my goal|goal is|i want to|i'd like to|i would like to|i'm training for|"
    r"i am training for|aim(ing)? (to|for)|target|by (the end of|summer|winter|spring|june|"
    r"july|august|september|october|november|december|january|february|march|april|may))\b"
)
_COMMIT = re.compile(
    r"\b(i will|i'll|i'm going to|i am going to|i promise|i commit|i'm committing|let's|"
    r"starting (today|tomorrow|monday|tuesday|wednesday|thursday|friday|saturday|sunday)|"
    r"make it|deal|from now on|every (day|morning|evening|night|week))\b"
)
_FACT = re.compile(
    r"\d|\b(monday|tuesday|wednesday|thursday|friday|saturday|sunday|weekend|morning|"
    r"evening|tonight|tomorrow|weeks?|months?)\b"
)


def _words(text: str) -> list[str]:
    return text.split()


_NOT_NAMES = frozenset(
    _words(
        "I I'm I'll I've I'd OK Ok Coach Momentum Monday Tuesday Wednesday Thursday Friday "
        "Saturday Sunday January February March April May June July August September October "
        "November December"
    )
)
_STOP = frozenset(
    _words(
        "the a an and or but to of in on at for with is are was were be been it this that my your "
        "you i me we our they he she his her them have has had do does did not no so very just "
        "will would should could can about from into than then there what when how why which who "
        "member coach conversation summary"
    )
)


@dataclass(frozen=True, slots=True)
class Line:
    kind: str
    text: str

    def render(self) -> str:
        return f"- {self.kind}: {self.text}"


@dataclass(frozen=True, slots=True)
class Fold:
    """What one update folds: the memory so far and the turns leaving the window."""

    conversation_id: int
    user_id: int
    previous: str
    through_before: int | None
    through_after: int
    turns: list[tuple[str, str]]  # (role, content), oldest first


def _has_name(sentence: str) -> bool:
    words = sentence.split()
    return any(
        w[:1].isupper() and w.strip(".,!?:;'\"") not in _NOT_NAMES and w.isalpha()
        for w in words[1:]
    )


def salient_lines(turns: Sequence[tuple[str, str]]) -> list[Line]:
    """Member sentences worth remembering, by kind (deterministic, no model)."""
    lines: list[Line] = []
    for role, content in turns:
        if role != "user":
            continue
        for raw in _SENTENCES.split(content.strip()):
            sentence = " ".join(raw.split())[:LINE_MAX_CHARS]
            low = sentence.lower()
            if len(tokens(sentence)) < 2:
                continue
            if _GOAL.search(low):
                lines.append(Line("goal", sentence))
            elif _COMMIT.search(low):
                lines.append(Line("commitment", sentence))
            elif _FACT.search(low) or _has_name(sentence):
                lines.append(Line("note", sentence))
            elif domain_hits(tokens(sentence)) and "?" in sentence:
                lines.append(Line("asked", sentence))
    return lines


def _content_words(text: str) -> set[str]:
    return {w for w in tokens(text) if len(w) > 2 and w not in _STOP}


def grounded_recap(model_text: str, source: str) -> str:
    """The model's sentences whose content words mostly appear in the source (a small model
    invents; an invented sentence is dropped), at most two, capped in length."""
    known = _content_words(source)
    kept: list[str] = []
    for raw in _SENTENCES.split(model_text.strip()):
        sentence = " ".join(raw.split())
        words = _content_words(sentence)
        if len(words) < 2 or "member_data" in sentence or "rules" in sentence.lower():
            continue
        if len(words & known) / len(words) >= 0.6:
            kept.append(sentence)
        if len(kept) == 2:
            break
    return " ".join(kept)[:RECAP_MAX_CHARS]


def parse(summary: str) -> list[Line]:
    """Read back a stored memory (lines `- kind: text`; anything else becomes a note)."""
    lines: list[Line] = []
    for raw in summary.splitlines():
        body = raw.strip().removeprefix("- ")
        if not body:
            continue
        kind, sep, text = body.partition(": ")
        lines.append(Line(kind, text) if sep and kind in KINDS else Line("note", body))
    return lines


def _similar(a: str, b: str) -> bool:
    wa, wb = _content_words(a), _content_words(b)
    if not wa or not wb:
        return a.strip().lower() == b.strip().lower()
    return len(wa & wb) / len(wa | wb) >= 0.7


def merge(previous: str, new: Sequence[Line], recap: str, max_chars: int) -> str:
    """Old memory + new lines (a newer line replaces a near-duplicate older one) + the latest
    recap; over the cap, evict by kind (asked, recap, note, commitment, goal), oldest first."""
    lines = [line for line in parse(previous) if line.kind != "recap" or not recap]
    for line in new:
        lines = [old for old in lines if not _similar(old.text, line.text)]
        lines.append(line)
    if recap:
        lines.append(Line("recap", recap))

    def size(items: list[Line]) -> int:
        return sum(len(item.render()) + 1 for item in items) - 1 if items else 0

    for kind in KINDS:
        while size(lines) > max_chars and any(line.kind == kind for line in lines):
            lines.remove(next(line for line in lines if line.kind == kind))
    text = "\n".join(line.render() for line in lines)
    return text[:max_chars]  # a hard cap whatever is left


class MemoryKeeper:
    """Schedules and runs summary updates; one per process (see `keeper_for`)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        gateway: LLMGateway,
        settings: Settings,
    ) -> None:
        self.sessions = sessions
        self.gateway = gateway
        self.settings = settings
        self._running: dict[int, asyncio.Task[None]] = {}  # strong refs: tasks are not GC'd
        self._again: set[int] = set()
        self._locks: dict[int, asyncio.Lock] = {}

    @property
    def pending(self) -> int:
        return len(self._running)

    def schedule(self, conversation_id: int) -> None:
        """Non-blocking: fold what left the window, in the background (coalesced)."""
        if conversation_id in self._running:
            self._again.add(conversation_id)  # it runs once more when the current job ends
            return
        task = asyncio.get_running_loop().create_task(self._run(conversation_id))
        self._running[conversation_id] = task

    async def _run(self, conversation_id: int) -> None:
        try:
            while True:
                self._again.discard(conversation_id)
                try:
                    await self.update(conversation_id)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("summary_update_failed", conversation_id=conversation_id)
                if conversation_id not in self._again:
                    return
        finally:
            self._running.pop(conversation_id, None)

    async def drain(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait for pending updates (shutdown, tests); cancel what is still running after."""
        tasks = list(self._running.values())
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=timeout)
        for task in late:
            task.cancel()

    async def update(self, conversation_id: int) -> bool:
        """Fold the turns that left the window; True if the memory changed."""
        lock = self._locks.setdefault(conversation_id, asyncio.Lock())
        try:
            async with lock:
                fold = await self._plan(conversation_id)
                if fold is None:
                    return False
                return await self._fold(fold)
        finally:
            if not lock.locked():
                self._locks.pop(conversation_id, None)

    async def _plan(self, conversation_id: int) -> Fold | None:
        keep = max(self.settings.coach_window_turns - 1, 0)
        async with self.sessions() as s:
            conv = await s.get(Conversation, conversation_id)
            if conv is None:
                return None
            stmt = select(Message.id, Message.role, Message.content).where(
                Message.conversation_id == conversation_id,
                Message.status.in_(("complete", "interrupted")),
            )
            if conv.summarized_through is not None:
                stmt = stmt.where(Message.id > conv.summarized_through)
            rows = list((await s.execute(stmt.order_by(Message.id))).tuples())
            summary, through, user_id = conv.summary, conv.summarized_through, conv.user_id
            unanswered = await s.scalar(self._first_unanswered(conversation_id))
        if unanswered is not None:  # a reply still to be written keeps its question in context
            rows = [row for row in rows if row[0] < unanswered]
        while rows and rows[-1][1] != "assistant":  # a question still being answered stays
            rows.pop()
        leaving = rows[: max(len(rows) - keep, 0)]
        if not leaving:
            return None
        return Fold(
            conversation_id=conversation_id,
            user_id=user_id,
            previous=summary,
            through_before=through,
            through_after=leaving[-1][0],
            turns=[(role, content) for _, role, content in leaving if content],
        )

    def _first_unanswered(self, conversation_id: int) -> Select[Any]:
        """The earliest question whose reply is pending or streaming under a live claim (a
        reply abandoned for longer than a claim lives no longer holds the memory back)."""
        live_since = utcnow() - claim_lifetime(
            self.gateway.total_timeout, self.settings.db_pool_timeout
        )
        return select(func.min(Message.reply_to)).where(
            Message.conversation_id == conversation_id,
            Message.status.in_(("pending", "streaming")),
            live_since <= CLAIMED_AT,
        )

    async def _fold(self, fold: Fold) -> bool:
        excerpt = "\n".join(
            f"{'Member' if role == 'user' else 'Coach'}: {content}" for role, content in fold.turns
        )
        recap, ledger = "", None
        try:
            done = await self.gateway.complete(
                [
                    {"role": "system", "content": SUMMARY_INSTRUCTIONS},
                    {"role": "user", "content": excerpt},
                ],
                model=self.settings.summary_model,
                max_tokens=SUMMARY_MAX_TOKENS,
                route=SUMMARY_ROUTE,
                temperature=0.2,
                background=True,  # an answer waiting for the local model comes first
            )
            recap = grounded_recap(done.text, excerpt)
            ledger = LlmCall(
                user_id=fold.user_id,
                conversation_id=fold.conversation_id,
                message_id=fold.through_after,
                kind="summary",
                model=done.model,
                route=SUMMARY_ROUTE,
                prompt_tokens=done.prompt_tokens,
                completion_tokens=done.completion_tokens,
                cost_usd=done.cost_usd,
            )
        except LLMUnavailable as exc:  # the extractive memory alone is still useful
            log.warning("summary_model_unavailable", fallback="extractive memory", error=str(exc))
        summary = merge(
            fold.previous, salient_lines(fold.turns), recap, self.settings.coach_summary_max_chars
        )
        return await self._save(fold, summary, ledger)

    async def _save(self, fold: Fold, summary: str, ledger: LlmCall | None) -> bool:
        """Ledger row (the call was paid for either way) + compare-and-set of the memory."""
        covered = Conversation.summarized_through
        async with self.sessions() as s:
            if ledger is not None:
                s.add(ledger)
            result = await s.execute(
                update(Conversation)
                .where(
                    Conversation.id == fold.conversation_id,
                    covered.is_(None)
                    if fold.through_before is None
                    else covered == fold.through_before,
                )
                .values(
                    summary=summary,
                    summarized_through=fold.through_after,
                    updated_at=Conversation.updated_at,  # memory is not member activity
                )
            )
            await s.commit()
        return bool(getattr(result, "rowcount", 0))


_KEEPERS: dict[int, MemoryKeeper] = {}


def keeper_for(
    sessions: async_sessionmaker[AsyncSession], gateway: LLMGateway, settings: Settings
) -> MemoryKeeper:
    """The process-wide keeper for this database (coach services are built per request)."""
    keeper = _KEEPERS.get(id(sessions))
    if keeper is None or keeper.sessions is not sessions:
        keeper = _KEEPERS[id(sessions)] = MemoryKeeper(sessions, gateway, settings)
    return keeper


async def drain_all(timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Let pending summaries finish at shutdown (they are re-derivable if cut short)."""
    await asyncio.gather(*(k.drain(timeout) for k in list(_KEEPERS.values())))
