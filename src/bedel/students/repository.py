import uuid
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict, cast

from sqlalchemy import Select, Table, bindparam, delete, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.db import conflict_insert, utcnow
from bedel.students.lookup import student_keys
from bedel.students.models import Student, StudentLookupKey
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
_keys = cast(Table, StudentLookupKey.__table__)
# The output guard runs it for every answer that holds something like an identifier.
_OWNERS_OF_KEYS = (
    select(_keys.c.key_hash, _keys.c.kind, _students.c.phone)
    .join(_students, _students.c.id == _keys.c.student_id)
    .where(_keys.c.key_hash.in_(bindparam("b_keys", expanding=True)))
)


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

    @staticmethod
    def phones_matching(text: str) -> Select[str]:
        """The phones of students whose name contains `text` or whose external id is `text`, ignoring case."""
        escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return select(Student.phone).where(
            or_(
                func.lower(Student.name).like(f"%{escaped}%", escape="\\"),
                func.lower(Student.external_id) == text.lower(),
            )
        )

    async def names_of(self, phones: Sequence[str]) -> dict[str, str | None]:
        rows = await self.session.execute(select(Student.phone, Student.name).where(Student.phone.in_(phones)))
        return {key: value for key, value in rows}

    async def get_record(self, phone: str) -> StudentRecord | None:
        """The record for a prompt, read as a plain row: no ORM object on the chat hot path."""
        row = (await self.session.execute(_RECORD_BY_PHONE, {"b_phone": phone})).first()
        return StudentRecord(*row) if row else None

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
        returning = statement.returning(
            Student.id, Student.phone, (Student.created_at == Student.updated_at).label("created")
        )
        now = utcnow()
        created = 0
        for start in range(0, len(rows), CHUNK_SIZE):
            chunk = [{**row, "created_at": now, "updated_at": now} for row in rows[start : start + CHUNK_SIZE]]
            stored = (await self.session.execute(returning, chunk)).all()
            created += sum(row.created for row in stored)
            # A replaced student keeps its id: the ids come back with their phones, unique in a chunk.
            ids = {row.phone: row.id for row in stored}
            await self.replace_keys([(ids[row["phone"]], row) for row in chunk])
        return created

    async def replace_keys(self, students: Sequence[tuple[uuid.UUID, Mapping[str, Any]]]) -> None:
        """Make these students' lookup keys those of the values given (see `students/lookup.py`)."""
        ids = [student_id for student_id, _ in students]
        await self.session.execute(delete(_keys).where(_keys.c.student_id.in_(ids)))
        rows = [
            {"key_hash": key, "student_id": student_id, "kind": kind.value}
            for student_id, values in students
            for key, kind in student_keys(
                phone=values["phone"],
                name=values["name"],
                email=values["email"],
                external_id=values["external_id"],
                attributes=values["attributes"],
            )
        ]
        if rows:
            await self.session.execute(insert(_keys), rows)

    async def owners_of_keys(self, keys: Sequence[str]) -> list[tuple[str, str, str]]:
        """Every stored lookup key among `keys`: the key, its kind and its student's phone."""
        rows = await self.session.execute(_OWNERS_OF_KEYS, {"b_keys": list(keys)})
        return [(key, kind, phone) for key, kind, phone in rows]

    async def count_fields(self) -> dict[str, int]:
        """How many students there are, and how many have each of the record's own fields."""
        row = (
            await self.session.execute(
                select(
                    func.count(),
                    func.count(Student.phone),
                    func.count(Student.name),
                    func.count(Student.email),
                    func.count(Student.external_id),
                )
            )
        ).one()
        return dict(zip(("students", "phone", "name", "email", "external_id"), row, strict=True))

    async def recent_attributes(self, limit: int) -> Sequence[dict[str, Any]]:
        """The attributes of the students loaded last: a sample of the list's columns."""
        query = select(Student.attributes).order_by(Student.updated_at.desc(), Student.id.desc()).limit(limit)
        return (await self.session.scalars(query)).all()

    async def search(self, text: str, limit: int) -> Sequence[Student]:
        """Students whose name, matrícula or email holds the text, or whose phone holds its digits."""
        folded = text.lower()
        conditions = [
            func.lower(column).contains(folded, autoescape=True)
            for column in (Student.name, Student.external_id, Student.email)
        ]
        digits = "".join(ch for ch in text if ch.isascii() and ch.isdigit())
        if len(digits) >= 4:
            conditions.append(Student.phone.contains(digits, autoescape=True))
        query = select(Student).where(or_(*conditions)).order_by(Student.name, Student.phone).limit(limit)
        return (await self.session.scalars(query)).all()

    async def list_recent(self, limit: int) -> Sequence[Student]:
        query = select(Student).order_by(Student.updated_at.desc(), Student.name).limit(limit)
        return (await self.session.scalars(query)).all()

    def add(self, student: Student) -> None:
        self.session.add(student)

    async def delete(self, student: Student) -> None:
        await self.session.delete(student)
        await self.session.flush()
