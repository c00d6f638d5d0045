"""Conversation persistence: every write is a short transaction of its own, so a stream
never holds a database connection while the model is generating."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Update, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import Conversation, LlmCall, Message, utcnow
from app.services.coach.prompt import Turn
from app.services.coach.views import ConversationView, MessageView
from app.services.errors import NotFoundError

HISTORY_LIMIT = 200
# A claim older than this belongs to a stream that died with its process (killed, out of
# memory); such a reply reads as pending again and the next stream writes it. See
# `claim_lifetime` for the bound a live stream stays under.
DEFAULT_CLAIM_LIFETIME = timedelta(minutes=10)


def claim_lifetime(llm_total_timeout: float, db_pool_timeout: float) -> timedelta:
    """Longer than any live stream: the model's whole deadline plus the saves' retries (two
    rounds of three tries, each waiting up to the pool timeout), doubled; at least 10 min."""
    live = llm_total_timeout + 2 * (3 * db_pool_timeout + 1.5)
    return max(DEFAULT_CLAIM_LIFETIME, timedelta(seconds=2 * live))


# `claimed_at()` in SQL, for the queries that tell a live claim from a stale one.
CLAIMED_AT = func.coalesce(Message.claimed_at, Message.created_at)


def claimed_at(m: Message) -> datetime:
    """When the reply was claimed; a claim from before `claimed_at` existed dates from the
    reply's creation (aware, UTC: the columns are DateTimeUTC)."""
    return m.claimed_at or m.created_at


def message_view(
    m: Message, now: datetime | None = None, lifetime: timedelta = DEFAULT_CLAIM_LIFETIME
) -> MessageView:
    stale = m.status == "streaming" and (now or utcnow()) - claimed_at(m) > lifetime
    return MessageView(
        id=m.id,
        conversation_id=m.conversation_id,
        role=m.role,
        content=m.content,
        status="pending" if stale else m.status,
        model=m.model,
        route=m.route,
        created_at=m.created_at,
        prompt_tokens=m.prompt_tokens,
        completion_tokens=m.completion_tokens,
        cost_usd=m.cost_usd,
    )


def conversation_view(c: Conversation) -> ConversationView:
    return ConversationView(
        id=c.id, title=c.title, summary=c.summary, created_at=c.created_at, updated_at=c.updated_at
    )


class ClaimLostError(Exception):
    """The reply's claim expired and another stream took it over: this one may not save."""


class Context(NamedTuple):
    """What the model sees of a conversation (its summary and the turns after it), and the
    claim's time, which every save of the reply must match."""

    summary: str
    turns: list[Turn]
    claim: datetime


class CoachStore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        claim_lifetime: timedelta = DEFAULT_CLAIM_LIFETIME,
    ) -> None:
        self.sessions = sessions
        self.claim_lifetime = claim_lifetime

    async def conversations(self, user_id: int, limit: int = 30) -> list[ConversationView]:
        async with self.sessions() as s:
            rows = await s.scalars(
                select(Conversation)
                .where(Conversation.user_id == user_id)
                .order_by(Conversation.updated_at.desc(), Conversation.id.desc())
                .limit(limit)
            )
            return [conversation_view(c) for c in rows]

    async def conversation(self, user_id: int, conversation_id: int) -> ConversationView:
        async with self.sessions() as s:
            return conversation_view(await self._owned(s, user_id, conversation_id))

    async def messages(self, user_id: int, conversation_id: int) -> list[MessageView]:
        async with self.sessions() as s:
            await self._owned(s, user_id, conversation_id)
            rows = await s.scalars(
                select(Message)
                .where(Message.conversation_id == conversation_id)
                .order_by(Message.id)
                .limit(HISTORY_LIMIT)
            )
            now = utcnow()
            return [message_view(m, now, self.claim_lifetime) for m in rows]

    async def create_conversation(self, user_id: int, title: str = "") -> ConversationView:
        async with self.sessions() as s:
            conv = Conversation(user_id=user_id, title=title[:120])
            s.add(conv)
            await s.commit()
            return conversation_view(conv)

    async def add_exchange(
        self, user_id: int, conversation_id: int | None, text: str
    ) -> tuple[Message, Message]:
        """Save the member's message and a pending reply in one transaction."""
        async with self.sessions() as s:
            if conversation_id is None:
                conv = Conversation(user_id=user_id, title=_title(text))
                s.add(conv)
                await s.flush()
            else:
                conv = await self._owned(s, user_id, conversation_id)
                conv.updated_at = datetime.now(UTC)
                if not conv.title:  # started with "New conversation": name it now
                    conv.title = _title(text)
            asked = Message(conversation_id=conv.id, user_id=user_id, role="user", content=text)
            s.add(asked)
            await s.flush()
            reply = Message(
                conversation_id=conv.id,
                user_id=user_id,
                role="assistant",
                status="pending",
                reply_to=asked.id,
            )
            s.add(reply)
            await s.commit()
            return asked, reply

    async def reply(self, user_id: int, reply_id: int) -> Message:
        async with self.sessions() as s:
            msg = await s.get(Message, reply_id)
            if msg is None or msg.user_id != user_id or msg.role != "assistant":
                raise NotFoundError("That message does not exist.")
            return msg

    async def start(self, reply: Message) -> Context | None:
        """Claim the reply (pending, or a stale claim, -> streaming, atomically: one stream per
        answer) and read its context, in one transaction: one pool checkout, and a failure
        claims nothing. None when a live stream holds the claim."""
        assert reply.reply_to is not None
        now = utcnow()
        expired = now - self.claim_lifetime
        claimable = or_(
            Message.status == "pending",
            and_(
                Message.status == "streaming",
                expired > CLAIMED_AT,
            ),
        )
        async with self.sessions() as s:
            claimed = await s.execute(
                update(Message)
                .where(Message.id == reply.id, claimable)
                .values(status="streaming", claimed_at=now)
            )
            if not getattr(claimed, "rowcount", 0):
                await s.rollback()
                return None
            conv = await s.get(Conversation, reply.conversation_id)
            if conv is None:
                raise NotFoundError("That conversation does not exist.")
            stmt = select(Message).where(
                Message.conversation_id == reply.conversation_id,
                Message.id <= reply.reply_to,
                Message.status.in_(("complete", "interrupted")),
            )
            if conv.summarized_through is not None:
                # The question itself always: the memory may have moved past a late reply's.
                stmt = stmt.where(
                    or_(Message.id > conv.summarized_through, Message.id == reply.reply_to)
                )
            rows = await s.scalars(stmt.order_by(Message.id))
            turns = [Turn(m.role, m.content) for m in rows if m.content]
            await s.commit()
            return Context(conv.summary, turns, now)

    async def finish(self, reply_id: int, *, claim: datetime | None = None, **fields: Any) -> None:
        """Update the reply; with `claim`, only while that claim still holds it."""
        async with self.sessions() as s:
            await s.execute(_held(reply_id, claim).values(**fields))
            await s.commit()

    async def record_call(self, **fields: Any) -> None:
        async with self.sessions() as s:
            s.add(LlmCall(**fields))
            await s.commit()

    async def finish_with_ledger(
        self, reply_id: int, ledger: dict[str, Any], *, claim: datetime, **fields: Any
    ) -> None:
        """The answer and its ledger row land together or not at all, once: only a reply still
        "streaming" under this claim is settled, so a retry after a commit that did land
        changes nothing. Raises ClaimLostError if another stream took the reply over."""
        async with self.sessions() as s:
            settled = await s.execute(
                _held(reply_id, claim).where(Message.status == "streaming").values(**fields)
            )
            if getattr(settled, "rowcount", 0):
                s.add(LlmCall(**ledger))
                await s.commit()
                return
            ours = await s.scalar(
                select(Message.id).where(Message.id == reply_id, Message.claimed_at == claim)
            )
            if ours is None:
                raise ClaimLostError(f"reply {reply_id} was claimed by another stream")

    async def tokens_today(self, user_id: int) -> int:
        midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        async with self.sessions() as s:
            total = await s.scalar(
                select(
                    func.coalesce(func.sum(LlmCall.prompt_tokens + LlmCall.completion_tokens), 0)
                ).where(LlmCall.user_id == user_id, LlmCall.created_at >= midnight)
            )
            return int(total or 0)

    @staticmethod
    async def _owned(s: AsyncSession, user_id: int, conversation_id: int) -> Conversation:
        conv = await s.get(Conversation, conversation_id)
        if conv is None or conv.user_id != user_id:
            # Someone else's conversation is as invisible as one that does not exist.
            raise NotFoundError("That conversation does not exist.")
        return conv


def _title(text: str) -> str:
    first_line = text.strip().splitlines()[0] if text.strip() else "Conversation"
    return first_line[:60] + ("..." if len(first_line) > 60 else "")


def _held(reply_id: int, claim: datetime | None) -> Update:
    stmt = update(Message).where(Message.id == reply_id)
    return stmt if claim is None else stmt.where(Message.claimed_at == claim)
