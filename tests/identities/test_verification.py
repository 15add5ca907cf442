"""Which record fact proves identity, as BEDEL_IDENTITY_VERIFICATION_FIELD names it."""

from pathlib import Path
from typing import Any

import pytest

from bedel.config import ConfigError, Settings
from bedel.identities.verification import VerificationPolicy
from bedel.students.fields import load_field_catalog
from bedel.students.models import Student


def policy(**overrides: Any) -> VerificationPolicy:
    settings = Settings(_env_file=None, knowledge_index_dir=Path("unused"), **overrides)
    return VerificationPolicy.from_settings(settings, load_field_catalog())


def student(**attributes: Any) -> Student:
    return Student(phone="+525512345678", name="Lucía Pérez", email="lucia@alumnos.edu.mx", attributes=attributes)


class TestVerificationPolicy:
    @pytest.mark.parametrize("column", ["fecha_nacimiento", "Fecha de Nacimiento", "DOB", "birthDate"])
    def test_the_birth_date_is_found_however_the_school_names_it(self, column: str) -> None:
        default = policy()

        assert (default.label, default.is_date) == ("Fecha de nacimiento", True)
        assert default.recorded(student(**{column: "2004-03-15"}, adeudo=4500)) == "2004-03-15"

    def test_a_column_the_catalog_does_not_know_may_be_named(self) -> None:
        by_curp = policy(identity_verification_field="CURP")

        assert (by_curp.label, by_curp.is_date) == ("CURP", False)
        assert by_curp.recorded(student(curp="PEPL040315MDFRRC09")) == "PEPL040315MDFRRC09"
        assert by_curp.recorded(student(fecha_nacimiento="2004-03-15")) is None

    def test_the_email_on_record_may_be_the_fact(self) -> None:
        assert policy(identity_verification_field="email").recorded(student()) == "lucia@alumnos.edu.mx"

    @pytest.mark.parametrize("field", ["student_id", "matricula", "telefono"])
    def test_the_student_id_or_the_phone_prove_nothing_more(self, field: str) -> None:
        with pytest.raises(ConfigError, match="BEDEL_IDENTITY_VERIFICATION_FIELD"):
            policy(identity_verification_field=field)

    def test_a_code_to_the_email_on_record_may_be_the_fact(self) -> None:
        by_code = policy(identity_verification_field="email_code")

        assert by_code.by_email_code
        assert by_code.recorded(student()) == "lucia@alumnos.edu.mx"
