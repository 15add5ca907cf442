from collections.abc import Sequence
from typing import Any, TypedDict

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.db import utcnow
from bedel.students.models import Student

# Rows per statement: few round trips for 100k students, well under every bind-parameter limit.
CHUNK_SIZE = 500


class StudentValues(TypedDict):
    phone: str
    name: str | None
    email: str | None
    external_id: str | None
    attributes: dict[str, Any]


class StudentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> "StudentRepository":
        return cls(session)

    async def get_by_phone(self, phone: str) -> Student | None:
        return await self.session.scalar(select(Student).where(Student.phone == phone))

    async def existing_phones(self, phones: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(phones), CHUNK_SIZE):
            chunk = phones[start : start + CHUNK_SIZE]
            found.update(await self.session.scalars(select(Student.phone).where(Student.phone.in_(chunk))))
        return found

    async def upsert_many(self, rows: Sequence[StudentValues]) -> None:
        """Insert each row, or replace the student holding its phone (keeping id and created_at).

        One INSERT ... ON CONFLICT per chunk, so two imports at once cannot both
        create a phone. It bypasses the identity map: students already loaded in
        this session keep their old values until reloaded.
        """
        await self.session.flush()
        insert = postgresql_insert if self.session.get_bind().dialect.name == "postgresql" else sqlite_insert
        statement = insert(Student)
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
        now = utcnow()
        for start in range(0, len(rows), CHUNK_SIZE):
            chunk = [{**row, "created_at": now, "updated_at": now} for row in rows[start : start + CHUNK_SIZE]]
            await self.session.execute(statement, chunk)

    def add(self, student: Student) -> None:
        self.session.add(student)

    async def delete(self, student: Student) -> None:
        await self.session.delete(student)
        await self.session.flush()
