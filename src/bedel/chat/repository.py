import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    DateTime,
    Integer,
    Select,
    String,
    Table,
    Text,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    union,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, undefer
from sqlalchemy.sql.elements import ColumnElement

from bedel.chat.activity import ActivityRepository
from bedel.chat.models import Attachment, DeliveryPath, Message, Role, Thread, ThreadStatus
from bedel.chat.schemas import AttachmentCreate, ThreadSearch
from bedel.db import as_utc, conflict_insert, utcnow
from bedel.delivery import DeliveryStatus, delivery_moves_forward


class OpenTurn(NamedTuple):
    thread_id: uuid.UUID
    seq: int
    summary: str
    summarized_through: int
    status: str


class StoredTurn(NamedTuple):
    seq: int
    role: str
    content: str


# The hot path runs Core statements built once with bind parameters: building and
# caching an expression per request costs more CPU than executing it.
_threads = cast(Table, Thread.__table__)
_messages = cast(Table, Message.__table__)

# A message takes its thread's next seq only in a statement that finds no turn holding the lease.
_UNLEASED = or_(_threads.c.locked_until.is_(None), _threads.c.locked_until < bindparam("b_now"))
_OPEN_TURN = (
    update(_threads)
    .where(_threads.c.phone == bindparam("b_phone"), _UNLEASED)
    .values(
        locked_until=bindparam("b_until"),
        lock_token=bindparam("b_token"),
        message_count=_threads.c.message_count + 1,
    )
    .returning(
        _threads.c.id, _threads.c.message_count, _threads.c.summary, _threads.c.summarized_through, _threads.c.status
    )
)
# Words in this many messages fill the first pages from the newest threads quickly: searched by walking
# them (see `_containing`), as far as the first WALK_AT_MOST results.
FREQUENT = 2000
WALK_AT_MOST = 200
_status_param = bindparam("b_status", type_=String)
# A None parameter leaves its column as it is.
_CLOSE_TURN = (
    update(_threads)
    .where(_threads.c.id == bindparam("b_id"), _threads.c.lock_token == bindparam("b_token"))
    .values(
        locked_until=None,
        lock_token=None,
        message_count=func.coalesce(bindparam("b_count", type_=Integer), _threads.c.message_count),
        status=func.coalesce(_status_param, _threads.c.status),
        # The moment a person takes over, for how long the student has waited.
        handoff_at=case(
            (
                and_(_status_param == ThreadStatus.handoff.value, _threads.c.status != ThreadStatus.handoff.value),
                bindparam("b_handoff_at", type_=DateTime(timezone=True)),
            ),
            else_=_threads.c.handoff_at,
        ),
        summary=func.coalesce(bindparam("b_summary", type_=Text), _threads.c.summary),
        summarized_through=func.coalesce(bindparam("b_through", type_=Integer), _threads.c.summarized_through),
        updated_at=bindparam("b_now"),
    )
)
_RECENT_TURNS = (
    select(_messages.c.seq, _messages.c.role, _messages.c.content)
    .where(_messages.c.thread_id == bindparam("b_id"), _messages.c.seq > bindparam("b_after"))
    .order_by(_messages.c.seq.desc())
    .limit(bindparam("b_limit"))
)
_ADD_MESSAGE = insert(_messages)


class ThreadRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> "ThreadRepository":
        return cls(session)

    async def purge_messages(self, before: datetime, now: datetime, limit: int) -> int:
        """Delete up to `limit` messages (their attachments and ratings with them) of conversations whose
        last message, and last change, is older than `before` and that no turn is answering; how many went."""
        newer = exists().where(_messages.c.thread_id == _threads.c.id, _messages.c.created_at >= before)
        quiet = select(_threads.c.id).where(
            _threads.c.updated_at < before,
            or_(_threads.c.locked_until.is_(None), _threads.c.locked_until < now),
            ~newer,
        )
        batch = (
            select(_messages.c.id).where(_messages.c.thread_id.in_(quiet), _messages.c.created_at < before).limit(limit)
        )
        result = await self.session.execute(delete(_messages).where(_messages.c.id.in_(batch)))
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def purge_empty_threads(self, before: datetime, now: datetime, limit: int) -> int:
        """Delete up to `limit` threads without messages, unchanged since `before` and not being answered."""
        batch = (
            select(_threads.c.id)
            .where(
                _threads.c.updated_at < before,
                or_(_threads.c.locked_until.is_(None), _threads.c.locked_until < now),
                ~exists().where(_messages.c.thread_id == _threads.c.id),
            )
            .limit(limit)
        )
        result = await self.session.execute(delete(_threads).where(_threads.c.id.in_(batch)))
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def open_turn(self, phone: str, token: uuid.UUID, ttl: timedelta) -> OpenTurn | None:
        """Lease the phone's thread and reserve the next seq for a question, in one statement.

        None when the thread is missing or another turn holds its lease.
        """
        now = utcnow()
        params = {"b_phone": phone, "b_now": now, "b_until": now + ttl, "b_token": token}
        row = (await self.session.execute(_OPEN_TURN, params)).first()
        return OpenTurn(*row) if row else None

    async def close_turn(
        self,
        thread_id: uuid.UUID,
        token: uuid.UUID,
        *,
        message_count: int | None = None,
        status: ThreadStatus | None = None,
        summary: str | None = None,
        summarized_through: int | None = None,
    ) -> bool:
        """Record the turn's changes and give the lease back; False when the lease was no longer ours."""
        params: dict[str, Any] = {
            "b_id": thread_id,
            "b_token": token,
            "b_count": message_count,
            "b_status": status,
            "b_summary": summary,
            "b_through": summarized_through,
        }
        params["b_now"] = params["b_handoff_at"] = utcnow()
        result = await self.session.execute(_CLOSE_TURN, params)
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def renew_lease(self, thread_id: uuid.UUID, token: uuid.UUID, ttl: timedelta) -> None:
        await self.session.execute(
            update(_threads)
            .where(_threads.c.id == thread_id, _threads.c.lock_token == token)
            .values(locked_until=utcnow() + ttl)
        )

    async def is_leased(self, thread_id: uuid.UUID) -> bool:
        locked_until = await self.session.scalar(select(_threads.c.locked_until).where(_threads.c.id == thread_id))
        return locked_until is not None and as_utc(locked_until) > utcnow()

    async def reserve_seqs(self, counts: Mapping[str, int]) -> dict[str, tuple[uuid.UUID, int]]:
        """Take the next `count` seqs of each phone's thread, in one statement, where no turn holds the lease.

        Returns each such thread's id and the first seq taken; a leased or missing thread is left out.
        """
        now = utcnow()
        several = {phone: count for phone, count in counts.items() if count > 1}
        step: ColumnElement[int] | int = case(several, value=_threads.c.phone, else_=1) if several else 1
        rows = await self.session.execute(
            update(_threads)
            .where(_threads.c.phone.in_(list(counts)), _UNLEASED)
            .values(message_count=_threads.c.message_count + step, updated_at=now)
            .returning(_threads.c.id, _threads.c.phone, _threads.c.message_count),
            {"b_now": now},
        )
        return {phone: (thread_id, last - counts[phone] + 1) for thread_id, phone, last in rows}

    async def add_message(self, **values: Any) -> uuid.UUID:
        message_id = uuid.uuid4()
        await self.session.execute(_ADD_MESSAGE, {"id": message_id, **values})
        return message_id

    async def add_messages(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert messages whose seqs are reserved, in one statement; each row has the same columns."""
        if rows:
            await self.session.execute(_ADD_MESSAGE, rows)

    async def add_attachment(self, message_id: uuid.UUID, attachment: AttachmentCreate) -> None:
        values = asdict(attachment)
        self.session.add(Attachment(message_id=message_id, downloaded=attachment.content is not None, **values))
        await self.session.flush()

    async def has_message_from(self, source_id: str) -> bool:
        return await self.session.scalar(select(Message.id).where(Message.source_id == source_id).limit(1)) is not None

    async def attachment_content(self, thread_id: uuid.UUID, attachment_id: uuid.UUID) -> Attachment | None:
        """The attachment with its bytes, if it belongs to the thread."""
        return await self.session.scalar(
            select(Attachment)
            .join(Message, Message.id == Attachment.message_id)
            .where(Attachment.id == attachment_id, Message.thread_id == thread_id)
            .options(undefer(Attachment.content))
        )

    async def create(self, phones: Iterable[str]) -> None:
        """Start each phone's thread unless it exists, in one statement; two replicas may try at once."""
        now = utcnow()
        await self.session.execute(
            conflict_insert(self.session, _threads)
            .values(
                [
                    {
                        "id": uuid.uuid4(),
                        "phone": phone,
                        "status": ThreadStatus.active,
                        "message_count": 0,
                        "summary": "",
                        "summarized_through": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for phone in phones
                ]
            )
            .on_conflict_do_nothing(index_elements=["phone"])
        )

    async def get(self, thread_id: uuid.UUID) -> Thread | None:
        return await self.session.get(Thread, thread_id)

    async def belongs_to(self, thread_id: uuid.UUID, phone: str) -> bool:
        return await self.session.scalar(select(_threads.c.phone).where(_threads.c.id == thread_id)) == phone

    async def find_many(
        self, *, phone: str | None, status: ThreadStatus | None, limit: int, offset: int
    ) -> Sequence[Thread]:
        query = select(Thread).order_by(Thread.updated_at.desc(), Thread.id).limit(limit).offset(offset)
        if phone is not None:
            query = query.where(Thread.phone == phone)
        if status is not None:
            query = query.where(Thread.status == status)
        return (await self.session.scalars(query)).all()

    async def delete(self, thread: Thread) -> None:
        # Every way a conversation is deleted (forgotten, erased) comes through here: the dashboard's kept
        # figures of its days go too, and are read again without it.
        await ActivityRepository.from_session(self.session).forget_thread(thread.id)
        await self.session.execute(delete(Message).where(Message.thread_id == thread.id))
        await self.session.delete(thread)

    async def recent_turns(self, thread_id: uuid.UUID, after_seq: int, limit: int) -> list[StoredTurn]:
        """The newest `limit` messages after `after_seq`, oldest first, as plain rows."""
        rows = await self.session.execute(_RECENT_TURNS, {"b_id": thread_id, "b_after": after_seq, "b_limit": limit})
        # To the model, a person's reply in a handed-off conversation is the assistant's side of it.
        return [
            StoredTurn(seq, Role.assistant if role == Role.staff else role, content)
            for seq, role, content in reversed(rows.all())
        ]

    async def answer_to(self, source_id: str) -> Message | None:
        """The stored answer to the question that came from `source_id`, if it was answered.

        Questions written in a row share one answer: the first message after them that is not a question.
        """
        question = await self.session.scalar(select(Message).where(Message.source_id == source_id).limit(1))
        if question is None:
            return None
        query = (
            select(Message)
            .where(Message.thread_id == question.thread_id, Message.seq > question.seq, Message.role != Role.user)
            .order_by(Message.seq)
            .limit(1)
        )
        reply = await self.session.scalar(query)
        return reply if reply is not None and reply.role == Role.assistant else None

    async def stored_questions(self, thread_id: uuid.UUID, source_ids: list[str]) -> dict[str, tuple[int, uuid.UUID]]:
        """The seq and id of each of these channel messages already stored in the thread."""
        if not source_ids:
            return {}
        rows = await self.session.execute(
            select(_messages.c.source_id, _messages.c.seq, _messages.c.id).where(
                _messages.c.thread_id == thread_id, _messages.c.source_id.in_(source_ids)
            )
        )
        return {source_id: (seq, message_id) for source_id, seq, message_id in rows}

    async def mark_pending(self, message_id: uuid.UUID) -> None:
        await self.session.execute(
            update(Message)
            .where(Message.id == message_id, Message.delivery_status.is_(None))
            .values(delivery_status=DeliveryStatus.pending)
        )

    async def mark_sent(self, message_id: uuid.UUID, vendor_message_id: str, path: DeliveryPath) -> None:
        """A part of the message left; its vendor id is the one later receipts name.

        A receipt that already moved the message past `sent` (an earlier part delivered) is kept.
        """
        await self.session.execute(
            update(Message)
            .where(Message.id == message_id, delivery_moves_forward(Message.delivery_status, DeliveryStatus.failed))
            .values(delivery_status=DeliveryStatus.sent, vendor_message_id=vendor_message_id, delivery_path=path)
        )

    async def mark_failed(self, message_id: uuid.UUID, code: str | None, error: str, path: DeliveryPath | None) -> None:
        """A part the vendor refused: the whole message failed, and receipts for earlier parts no longer apply."""
        await self.session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(
                delivery_status=DeliveryStatus.failed,
                delivery_error_code=code,
                delivery_error=error,
                delivery_path=path,
                vendor_message_id=None,
            )
        )

    async def apply_receipt(
        self, vendor_message_id: str, status: DeliveryStatus, code: str | None, error: str | None
    ) -> bool:
        """Move the message the vendor id names forward to `status`; False when none moved (unknown, or late)."""
        result = await self.session.execute(
            update(Message)
            .where(
                Message.vendor_message_id == vendor_message_id,
                delivery_moves_forward(Message.delivery_status, status),
            )
            .values(delivery_status=status, delivery_error_code=code, delivery_error=error)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def requeue_throttled(
        self, vendor_message_id: str, code: str, error: str
    ) -> tuple[uuid.UUID, str, str] | None:
        """Put a message the vendor throttled back to `pending` for a resend, unless it got further since.

        Returns its id, phone and text, or None when no message was waiting on that id.
        """
        row = (
            await self.session.execute(
                update(_messages)
                .where(
                    _messages.c.vendor_message_id == vendor_message_id,
                    delivery_moves_forward(_messages.c.delivery_status, DeliveryStatus.failed),
                )
                .values(
                    delivery_status=DeliveryStatus.pending,
                    delivery_error_code=code,
                    delivery_error=error,
                    vendor_message_id=None,
                )
                .returning(_messages.c.id, _messages.c.thread_id, _messages.c.content)
            )
        ).first()
        if row is None:
            return None
        phone = await self.session.scalar(select(_threads.c.phone).where(_threads.c.id == row.thread_id))
        return row.id, str(phone), row.content

    async def page_messages(self, thread_id: uuid.UUID, after_seq: int, limit: int) -> Sequence[Message]:
        rows = await self.session.scalars(
            select(Message)
            .where(Message.thread_id == thread_id, Message.seq > after_seq)
            .order_by(Message.seq)
            .limit(limit)
        )
        return rows.all()

    async def set_status(self, thread: Thread, status: ThreadStatus, now: datetime) -> None:
        """A person takes over (counted from now), or the bot does again (and nobody has it any more)."""
        if status == ThreadStatus.handoff and thread.status != ThreadStatus.handoff:
            thread.handoff_at = now
        if status == ThreadStatus.active:
            thread.assigned_to = thread.assigned_at = None
        thread.status = status
        await self.session.flush()

    async def assign(self, thread_id: uuid.UUID, user_id: uuid.UUID, now: datetime) -> bool:
        """Give a handed-off conversation to `user_id` unless another person has it; False when one does."""
        result = await self.session.execute(
            update(_threads)
            .where(
                _threads.c.id == thread_id,
                _threads.c.status == ThreadStatus.handoff,
                or_(_threads.c.assigned_to.is_(None), _threads.c.assigned_to == user_id),
            )
            .values(assigned_to=user_id, assigned_at=now, updated_at=now)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def waiting(self, limit: int, offset: int) -> list[tuple[Thread, datetime | None]]:
        """Handed-off conversations and since when each waits for a person, the longest waiting first.

        A conversation waits from its handoff until a person writes, and again from the student's
        next message after that; one whose last word is a person's waits for nobody (None, last).
        """
        # Per handed-off thread, in two grouped passes over its messages (found by thread id):
        # when a person last wrote, then the student's first message after that.
        handed_off = Thread.status == ThreadStatus.handoff
        staff = aliased(Message)
        last_staff = (
            select(staff.thread_id, func.max(staff.created_at).label("at"))
            .join(Thread, Thread.id == staff.thread_id)
            .where(handed_off, staff.role == Role.staff)
            .group_by(staff.thread_id)
            .cte("last_staff")
        )
        student = aliased(Message)
        unanswered = (
            select(student.thread_id, func.min(student.created_at).label("at"))
            .join(last_staff, and_(last_staff.c.thread_id == student.thread_id, student.created_at > last_staff.c.at))
            .where(student.role == Role.user)
            .group_by(student.thread_id)
            .cte("unanswered")
        )
        since = case(
            (or_(last_staff.c.at.is_(None), last_staff.c.at < Thread.handoff_at), Thread.handoff_at),
            else_=unanswered.c.at,
        ).label("waiting_since")
        rows = await self.session.execute(
            select(Thread, since)
            .outerjoin(last_staff, last_staff.c.thread_id == Thread.id)
            .outerjoin(unanswered, unanswered.c.thread_id == Thread.id)
            .where(handed_off)
            .order_by(since.is_(None), since, Thread.id)
            .limit(limit)
            .offset(offset)
        )
        return [(thread, as_utc(moment) if moment else None) for thread, moment in rows]

    async def count_handed_off(self) -> int:
        return await self.session.scalar(select(func.count()).where(_threads.c.status == ThreadStatus.handoff)) or 0

    async def inbox_version(self) -> str:
        """Changes whenever a conversation enters or leaves the inbox, is taken, or gets a message."""
        count, latest = (
            await self.session.execute(
                select(func.count(), func.max(_threads.c.updated_at)).where(_threads.c.status == ThreadStatus.handoff)
            )
        ).one()
        return f"{count}:{as_utc(latest).isoformat() if latest else ''}"

    async def thread_version(self, thread_id: uuid.UUID) -> str:
        """Changes whenever the thread or any of its messages does (a new message, a delivery receipt)."""
        thread_changed = await self.session.scalar(select(_threads.c.updated_at).where(_threads.c.id == thread_id))
        count, latest = (
            await self.session.execute(
                select(func.count(), func.max(_messages.c.updated_at)).where(_messages.c.thread_id == thread_id)
            )
        ).one()
        moments = [as_utc(moment).isoformat() for moment in (thread_changed, latest) if moment]
        return f"{count}:{'/'.join(moments)}"

    async def search(self, search: ThreadSearch, limit: int, offset: int) -> Sequence[Thread]:
        """Conversations matching every filter given, the most recently active first."""
        if self.session.get_bind().dialect.name == "postgresql":
            # Planned for one core: given parallel workers, PostgreSQL walked every conversation newest
            # first instead of the few of one status, and waited for cores on a busy machine.
            await self.session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
        newest = (Thread.updated_at.desc(), Thread.id)
        filters: list[ColumnElement[bool]] = []
        if search.status is not None:
            filters.append(Thread.status == search.status)
        if search.phones_on_channel is not None:
            filters.append(Thread.phone.in_(search.phones_on_channel))
        if search.active_from is not None:
            filters.append(Thread.updated_at >= search.active_from)
        if search.active_until is not None:
            filters.append(Thread.updated_at < search.active_until)
        if search.with_answers is not None:
            filters.append(Thread.id.in_(select(_messages.c.thread_id).where(_messages.c.id.in_(search.with_answers))))
        frequent = bool(search.words) and offset + limit <= WALK_AT_MOST and await self._frequent(search.words)
        found: list[ColumnElement[bool]] = []
        phones = [
            *([select(literal(search.phone, String))] if search.phone is not None else []),
            *([search.phones] if search.phones is not None else []),
        ]
        if phones:
            # One set of phones, each found through its index: an OR of the phone and the students'
            # phones made PostgreSQL walk every conversation newest first.
            found.append(Thread.phone.in_(union_all(*phones) if len(phones) > 1 else phones[0]))
        if search.words and found:
            # The threads holding the words and those whose phone matches, each newest first and only
            # as far as this page, joined: an OR of the two would make PostgreSQL gather every thread
            # holding a common word (or of every student named "Ana") before sorting them.
            holding = (
                select(Thread.id)
                .where(Thread.id.in_(self._containing(search.words, frequent=frequent)), *filters)
                .order_by(*newest)
                .limit(offset + limit)
                .subquery()
            )
            phoned = select(Thread.id).where(*found, *filters).order_by(*newest).limit(offset + limit).subquery()
            found = [Thread.id.in_(union(select(holding.c.id), select(phoned.c.id)))]
        elif search.words:
            found = [Thread.id.in_(self._containing(search.words, frequent=frequent))]
        query = select(Thread).where(*found, *filters).order_by(*newest).limit(limit).offset(offset)
        return (await self.session.scalars(query)).all()

    async def _frequent(self, words: str) -> bool:
        """Whether the words are in at least FREQUENT messages (PostgreSQL; counted through the index, capped)."""
        if self.session.get_bind().dialect.name != "postgresql":
            return False
        found = self._containing(words).limit(FREQUENT).subquery()
        return (await self.session.scalar(select(func.count()).select_from(found)) or 0) >= FREQUENT

    def _containing(self, words: str, *, frequent: bool = False) -> Select[uuid.UUID]:
        """The threads with a message containing all these words, by each engine's full-text index.

        On PostgreSQL, words in few messages are looked up through the index once, for all
        threads; `frequent` words are left to the planner, which walks the newest threads and
        soon finds a page of them (for rare words that walk would read every message).
        """
        if self.session.get_bind().dialect.name == "postgresql":
            # The same expression as the GIN index of migration 0009, so the index answers it.
            vector = func.to_tsvector(literal_column("'spanish'"), _messages.c.content)
            # Written into the statement, not bound, so each search is planned for its own words.
            query = func.plainto_tsquery(literal_column("'spanish'"), bindparam("words", words, literal_execute=True))
            matching = select(_messages.c.thread_id).where(vector.bool_op("@@")(query))
            if frequent:
                return matching
            holding = matching.cte().prefix_with("MATERIALIZED")
            return select(holding.c.thread_id)
        # Each word quoted: FTS5 reads bare words as its query language (AND, NEAR, column:...).
        phrase = " ".join('"' + word.replace('"', '""') + '"' for word in words.split())
        rowids = text("SELECT rowid FROM messages_fts WHERE messages_fts MATCH :words").bindparams(words=phrase)
        return select(_messages.c.thread_id).where(literal_column("messages.rowid").in_(rowids))
