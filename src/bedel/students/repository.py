from collections.abc import Sequence
from typing import Any, TypedDict, cast

from sqlalchemy import Table, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.db import conflict_insert, utcnow
from bedel.students.models import Student
from bedel.students.schemas import StudentRecord

# Rows per statement: few round trips for 100k students, well under every bind-parameter limit.
CHUNK_SIZE = 500


class StudentValues(TypedDict):
    phone: str
    name: str | None
    email: str | None
    external_id: str | None
    attributes: dict[str, Any]


_students = cast(Table, Student.__table__)
# Built once: the chat hot path runs it for every question.
_RECORD_BY_PHONE = select(
    _students.c.phone, _students.c.name, _students.c.external_id, _students.c.email, _students.c.attributes
).where(_students.c.phone == bindparam("b_phone"))


class StudentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> "StudentRepository":
        return cls(session)

    async def get_by_phone(self, phone: str) -> Student | None:
        return await self.session.scalar(select(Student).where(Student.phone == phone))

    async def find_by_external_id(self, external_id: str) -> Sequence[Student]:
        """The students with this external id (matrícula), ignoring case: schools may repeat one."""
        query = select(Student).where(func.lower(Student.external_id) == external_id.lower())
        return (await self.session.scalars(query)).all()

    async def get_record(self, phone: str) -> StudentRecord | None:
        """The record for a prompt, read as a plain row: no ORM object on the chat hot path."""
        row = (await self.session.execute(_RECORD_BY_PHONE, {"b_phone": phone})).first()
        return StudentRecord(*row) if row else None

    async def search(self, text: str, limit: int) -> Sequence[Student]:
        """Students whose name or matrícula holds `text`, or whose phone holds its digits, ignoring case."""
        words = text.lower()
        matches = [
            func.lower(Student.name).contains(words, autoescape=True),
            func.lower(Student.external_id) == words,
        ]
        digits = "".join(c for c in text if c.isdigit())
        if len(digits) >= 4:
            matches.append(Student.phone.contains(digits, autoescape=True))
        query = select(Student).where(or_(*matches)).order_by(Student.name, Student.phone).limit(limit)
        return (await self.session.scalars(query)).all()

    async def upsert_many(self, rows: Sequence[StudentValues]) -> int:
        """Insert each row, or replace the student holding its phone; return how many were new.

        One INSERT ... ON CONFLICT per chunk, so two imports at once cannot both
        create a phone, and no SELECT whose cached plan may predate the table's
        growth. It bypasses the identity map: students already loaded in this
        session keep their old values until reloaded.
        """
        await self.session.flush()
        statement = conflict_insert(self.session, Student)
        statement = statement.on_conflict_do_update(
            index_elements=[Student.phone],
            set_={
                "name": statement.excluded.name,
                "email": statement.excluded.email,
                "external_id": statement.excluded.external_id,
                "attributes": statement.excluded.attributes,
                "updated_at": statement.excluded.updated_at,
            },
        )
        # A replaced student keeps its created_at: only a new one has both timestamps equal.
        returning = statement.returning((Student.created_at == Student.updated_at).label("created"))
        now = utcnow()
        created = 0
        for start in range(0, len(rows), CHUNK_SIZE):
            chunk = [{**row, "created_at": now, "updated_at": now} for row in rows[start : start + CHUNK_SIZE]]
            created += sum(await self.session.scalars(returning, chunk))
        return created

    def add(self, student: Student) -> None:
        self.session.add(student)

    async def delete(self, student: Student) -> None:
        await self.session.delete(student)
        await self.session.flush()
