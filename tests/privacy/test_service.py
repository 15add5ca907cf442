"""Erasure is all or nothing: a delete the database refuses half-way leaves every row in place."""

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.auth import Caller
from bedel.consent.service import set_subscription
from bedel.privacy import service
from bedel.students.schemas import StudentUpdate
from bedel.students.service import replace_student

PHONE = "+525512345678"
COMMAND = Caller.command_line()

# The database itself refuses to delete a student record, which erasure removes last, after the opt-out.
REFUSE = {
    "sqlite": [
        "CREATE TRIGGER refuse_delete BEFORE DELETE ON students BEGIN SELECT RAISE(ABORT, 'refused'); END",
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'refused'; END $$",
        "CREATE TRIGGER refuse_delete BEFORE DELETE ON students FOR EACH ROW EXECUTE FUNCTION refuse_delete()",
    ],
}
ALLOW = {
    "sqlite": ["DROP TRIGGER refuse_delete"],
    "postgresql": ["DROP TRIGGER refuse_delete ON students", "DROP FUNCTION refuse_delete()"],
}


async def run(session: AsyncSession, statements: list[str]) -> None:
    for statement in statements:
        await session.execute(text(statement))
    await session.commit()


class TestAllOrNothing:
    async def test_a_refused_delete_rolls_the_whole_erasure_back(self, session: AsyncSession) -> None:
        dialect = session.get_bind().dialect.name
        await replace_student(session, PHONE, StudentUpdate(name="Ana Ruiz", external_id="A1"))
        await set_subscription(session, PHONE, subscribed=False)
        await session.commit()
        before = await service.export_student(session, PHONE, COMMAND)
        await run(session, REFUSE[dialect])

        try:
            with pytest.raises(DBAPIError, match="refused"):
                await service.erase_student(session, PHONE, COMMAND)
            await session.rollback()
            after = await service.export_student(session, PHONE, COMMAND)
            erasures = await service.list_erasures(session, 10, 0)
        finally:
            await session.rollback()
            await run(session, ALLOW[dialect])

        assert [row["phone"] for row in before.holdings["opt_outs"]] == [PHONE]
        # Only the audit log grew: by the first export's entry.
        assert after.holdings | {"audit": []} == before.holdings | {"audit": []}
        assert [entry["action"] for entry in after.holdings["audit"]] == ["student.export"]
        assert erasures == []
