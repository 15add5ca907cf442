import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.errors import NotFound
from bedel.students.models import Student
from bedel.students.schemas import StudentOut, StudentUpdate
from bedel.students.service import (
    InvalidPhoneError,
    delete_student,
    get_student,
    import_students,
    replace_student,
)

ANA = StudentUpdate(name="Ana López", email="ana@example.mx", external_id="A001", attributes={"adeudo": 4500})


class TestGetStudent:
    @pytest.mark.parametrize("phone", ["+525512345678", "+52 1 55 1234 5678", "55-1234-5678", "5215512345678"])
    async def test_any_common_shape_finds_the_student(self, session: AsyncSession, phone: str) -> None:
        await replace_student(session, "+52 55 1234 5678", ANA)

        student = await get_student(session, phone)

        assert student.phone == "+525512345678"

    async def test_prototype_test_phone_finds_the_record_form(self, session: AsyncSession) -> None:
        await import_students(session, b"telefono,nombre\n+52 55667788,Diego\n", "alumnos.csv")

        assert (await get_student(session, "+52155667788")).name == "Diego"

    async def test_unknown_phone_is_not_found(self, session: AsyncSession) -> None:
        with pytest.raises(NotFound, match=r"\+525599990000"):
            await get_student(session, "55 9999 0000")

    @pytest.mark.parametrize("phone", ["hola", "1234", "+52 55 1234 5678 9012 3456"])
    async def test_what_cannot_be_a_phone_is_invalid_phone(self, session: AsyncSession, phone: str) -> None:
        with pytest.raises(InvalidPhoneError) as caught:
            await get_student(session, phone)

        assert (caught.value.code, caught.value.status, caught.value.field) == ("invalid_phone", 422, "phone")


class TestReplaceStudent:
    async def test_unknown_phone_creates_the_student(self, session: AsyncSession) -> None:
        student, created = await replace_student(session, "+52 1 55 1234 5678", ANA)

        assert created
        out = StudentOut.model_validate(student)
        assert (out.phone, out.name, out.attributes) == ("+525512345678", "Ana López", {"adeudo": 4500})

    async def test_known_phone_replaces_the_whole_record(self, session: AsyncSession) -> None:
        first, _ = await replace_student(session, "5512345678", ANA)

        second, created = await replace_student(
            session, "+52 55 1234 5678", StudentUpdate(name="Ana María", attributes={"beca": "50%"})
        )

        assert not created
        assert second.id == first.id
        out = StudentOut.model_validate(second)
        assert (out.name, out.email, out.external_id, out.attributes) == ("Ana María", None, None, {"beca": "50%"})
        assert len((await session.scalars(select(Student))).all()) == 1

    async def test_replacing_after_an_import_keeps_one_student(self, session: AsyncSession) -> None:
        await import_students(session, b"telefono,nombre,adeudo\n5512345678,Ana,10\n", "alumnos.csv")

        _, created = await replace_student(session, "5512345678", ANA)

        assert not created
        assert (await get_student(session, "5512345678")).attributes == {"adeudo": 4500}


class TestStudentUpdate:
    def test_unknown_fields_are_rejected(self) -> None:
        with pytest.raises(ValueError, match="extra"):
            StudentUpdate.model_validate({"name": "Ana", "phone": "5512345678"})

    def test_text_is_trimmed_and_bounded(self) -> None:
        assert StudentUpdate(name="  Ana  ").name == "Ana"
        with pytest.raises(ValueError, match="200"):
            StudentUpdate(name="x" * 201)

    def test_text_a_database_cannot_store_is_rejected(self) -> None:
        with pytest.raises(ValueError, match="NUL"):
            StudentUpdate(attributes={"nota": ["a\x00b"]})


class TestDeleteStudent:
    async def test_delete_removes_the_student(self, session: AsyncSession) -> None:
        await replace_student(session, "5512345678", ANA)

        await delete_student(session, "+52 1 55 1234 5678")

        with pytest.raises(NotFound):
            await get_student(session, "5512345678")

    async def test_deleting_an_unknown_phone_is_not_found(self, session: AsyncSession) -> None:
        with pytest.raises(NotFound):
            await delete_student(session, "5512345678")
