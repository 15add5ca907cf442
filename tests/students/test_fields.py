import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bedel.config import ConfigError
from bedel.students.fields import (
    FieldCatalog,
    humanize_column,
    load_field_catalog,
    normalize_column,
)

CUSTOM_CATALOG = """
[identity]
phone = ["celular"]
name = ["alumno"]
email = ["correo"]
external_id = ["legajo"]

[concepts.fee]
label = "Cuota mensual"
kind = "money"
columns = ["cuota_mes"]
keywords = ["cuota", "mensualidad"]
"""


@pytest.fixture(scope="module")
def catalog() -> FieldCatalog:
    return load_field_catalog()


def keys(catalog: FieldCatalog, question: str) -> list[str]:
    return [concept.key for concept in catalog.concepts_in_question(question)]


class TestNormalizeColumn:
    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("Saldo Pendiente", "saldo_pendiente"),
            ("  Matrícula ", "matricula"),
            ("WhatsApp", "whatsapp"),
            ("E-mail", "e_mail"),
            ("Año escolar (actual)", "ano_escolar_actual"),
        ],
    )
    def test_folds_case_accents_and_separators(self, name: str, expected: str) -> None:
        assert normalize_column(name) == expected

    @given(st.text(max_size=40))
    def test_is_idempotent_and_plain(self, name: str) -> None:
        normalized = normalize_column(name)
        assert re.fullmatch(r"([a-z0-9]+(_[a-z0-9]+)*)?", normalized)
        assert normalize_column(normalized) == normalized


class TestConceptForColumn:
    @pytest.mark.parametrize("column", ["adeudo", "Saldo Pendiente", "balance_due", "amountDue", "MONTO-PENDIENTE"])
    def test_resolves_any_schools_balance_column(self, catalog: FieldCatalog, column: str) -> None:
        concept = catalog.concept_for_column(column)
        assert concept is not None and concept.key == "balance"

    def test_resolves_other_concepts(self, catalog: FieldCatalog) -> None:
        resolved = {c: catalog.concept_for_column(c) for c in ["GPA", "Asesor", "Porcentaje Beca"]}
        assert {c: k.key if k else None for c, k in resolved.items()} == {
            "GPA": "gpa",
            "Asesor": "advisor",
            "Porcentaje Beca": "scholarship",
        }

    def test_resolves_the_birth_date_that_proves_identity(self, catalog: FieldCatalog) -> None:
        for column in ["fecha_nacimiento", "Fecha de Nacimiento", "DOB"]:
            concept = catalog.concept_for_column(column)
            assert concept is not None and concept.key == "birth_date" and concept.kind == "date"

    def test_unknown_column_has_no_concept(self, catalog: FieldCatalog) -> None:
        assert catalog.concept_for_column("lugar_nacimiento") is None


class TestAnySchoolsColumnNames:
    @pytest.mark.parametrize(
        ("column", "concept"),
        [
            # English, snake_case
            ("amount_due", "balance"),
            ("due_date", "payment_due"),
            ("gpa", "gpa"),
            ("months_overdue", "overdue_months"),
            ("major", "program"),
            ("current_term", "semester"),
            ("Promedio actual", "gpa"),
            # camelCase and PascalCase, with or without accents
            ("SaldoPendiente", "balance"),
            ("fechaLímitePago", "payment_due"),
            ("PromedioGeneral", "gpa"),
            # abbreviations
            ("Fec_Limite", "payment_due"),
            ("prom_gral", "gpa"),
            ("num_mat_reprob", "failed_subjects"),
            ("Carr", "program"),
            ("Sem", "semester"),
            ("beca_pct", "scholarship"),
            # units and currencies
            ("saldo_pendiente_mxn", "balance"),
            ("Colegiatura (USD)", "tuition"),
            # words in another order, and names longer than the catalog's
            ("pago_fecha_limite", "payment_due"),
            ("monto_total_adeudado", "balance"),
            ("total_amount_due_usd", "balance"),
        ],
    )
    def test_resolves_the_concept(self, catalog: FieldCatalog, column: str, concept: str) -> None:
        found = catalog.concept_for_column(column)
        assert found is not None and found.key == concept

    @pytest.mark.parametrize(
        ("column", "role"),
        [
            ("NomAlumno", "name"),
            ("Matr", "external_id"),
            ("Tel", "phone"),
            ("CorreoE", "email"),
            ("mobile", "phone"),
            ("Celular del alumno", "phone"),
            ("Correo del estudiante", "email"),
            ("Student phone", "phone"),
            ("Alumno", "name"),
        ],
    )
    def test_resolves_abbreviated_identity_columns(self, catalog: FieldCatalog, column: str, role: str) -> None:
        assert catalog.identity_role(column) == role

    @pytest.mark.parametrize(
        "column",
        [
            "nombre_tutor",
            "telefono_tutor",
            "Teléfono del tutor",
            "promedio_semestre",
            "anio_ingreso",
            "lugar_nacimiento",
            "turno",
        ],
    )
    def test_a_name_that_points_two_ways_or_at_nothing_has_no_concept(self, catalog: FieldCatalog, column: str) -> None:
        assert catalog.concept_for_column(column) is None

    def test_the_student_name_is_not_found_inside_another_column(self, catalog: FieldCatalog) -> None:
        assert catalog.identity_role("nombre_tutor") is None
        assert catalog.identity_role("telefono_tutor") is None

    def test_column_words_show_how_a_name_is_read(self, catalog: FieldCatalog) -> None:
        assert catalog.column_words("Fec_Límite_MXN") == ("fecha", "limite")
        assert catalog.column_words("NomAlumno") == ("nombre",)
        assert catalog.column_words("Alumno") == ("alumno",)

    def test_a_custom_catalog_brings_its_own_abbreviations(self, tmp_path: Path) -> None:
        path = tmp_path / "fields.toml"
        path.write_text(CUSTOM_CATALOG + '[columns]\nunits = ["ars"]\n[columns.abbreviations]\ncta = "cuota"\n')
        catalog = load_field_catalog(path)
        concept = catalog.concept_for_column("Cta_Mes_ARS")
        assert concept is not None and concept.key == "fee"


class TestConceptsInQuestion:
    @pytest.mark.parametrize(
        "question",
        ["¿Cuánto debo?", "¿cuánto DEBERÉ en marzo?", "tengo adeudos?", "¿Cuánto tengo que pagar?"],
    )
    def test_finds_balance_by_stem_ignoring_case_and_accents(self, catalog: FieldCatalog, question: str) -> None:
        assert keys(catalog, question) == ["balance"]

    def test_finds_several_in_the_order_asked(self, catalog: FieldCatalog) -> None:
        question = "¿Cuál es mi promedio y quién es mi tutor?"
        assert keys(catalog, question) == ["gpa", "advisor"]

    def test_longest_phrase_wins(self, catalog: FieldCatalog) -> None:
        assert keys(catalog, "¿Cuál es mi calificación promedio?") == ["gpa"]
        assert keys(catalog, "¿Ya salieron mis calificaciones?") == ["grades"]

    def test_must_do_is_not_a_debt(self, catalog: FieldCatalog) -> None:
        assert keys(catalog, "¿Qué debo hacer para inscribirme?") == []

    def test_general_question_asks_no_field(self, catalog: FieldCatalog) -> None:
        assert keys(catalog, "¿Dónde queda la biblioteca?") == []

    @pytest.mark.parametrize("question", ["cuanto debo y para cuando", "How much do I owe and when?"])
    def test_an_amount_and_when_asks_its_due_date_too(self, catalog: FieldCatalog, question: str) -> None:
        assert keys(catalog, question) == ["balance", "payment_due"]

    def test_only_when_asks_no_due_date(self, catalog: FieldCatalog) -> None:
        assert keys(catalog, "¿Cuándo se paga la colegiatura?") == ["tuition"]

    def test_pending_payment_is_the_balance(self, catalog: FieldCatalog) -> None:
        assert keys(catalog, "tengo algo pendiente de pago?") == ["balance"]


class TestColumnsInQuestion:
    def test_finds_a_column_the_question_names(self, catalog: FieldCatalog) -> None:
        columns = ["fecha_nacimiento", "Lugar de Nacimiento", "turno"]
        found = catalog.columns_in_question("¿Cuál es mi fecha de nacimiento?", columns)
        assert found == ["fecha_nacimiento"]


class TestLabels:
    def test_catalogued_column_gets_concept_label(self, catalog: FieldCatalog) -> None:
        assert catalog.label_for("saldo_pendiente") == "Saldo pendiente"

    def test_other_column_gets_humanised_name(self, catalog: FieldCatalog) -> None:
        assert catalog.label_for("lugar_nacimiento") == "Lugar nacimiento"
        assert humanize_column("turnoEscolar") == "Turno escolar"


class TestIdentityColumns:
    @pytest.mark.parametrize(
        ("column", "role"),
        [
            ("Teléfono", "phone"),
            ("WhatsApp", "phone"),
            ("IDAlumno", "external_id"),
            ("Nombre Completo", "name"),
            ("E-mail", "email"),
            ("Matrícula", "external_id"),
            ("adeudo", None),
        ],
    )
    def test_names_the_importers_identity_role(self, catalog: FieldCatalog, column: str, role: str | None) -> None:
        assert catalog.identity_role(column) == role

    def test_identity_fields_have_record_concepts(self, catalog: FieldCatalog) -> None:
        email = catalog.identity_concept("email")
        assert email is not None and email.key == "email"


class TestCustomCatalogFile:
    def test_replaces_the_default(self, tmp_path: Path) -> None:
        path = tmp_path / "fields.toml"
        path.write_text(CUSTOM_CATALOG, encoding="utf-8")
        catalog = load_field_catalog(path)
        assert keys(catalog, "¿Cuánto es mi cuota?") == ["fee"]
        assert catalog.concept("balance") is None
        assert catalog.identity_role("Legajo") == "external_id"

    def test_is_read_once_per_path(self, tmp_path: Path) -> None:
        path = tmp_path / "fields.toml"
        path.write_text(CUSTOM_CATALOG, encoding="utf-8")
        first = load_field_catalog(path)
        path.write_text("not toml at all [", encoding="utf-8")
        assert load_field_catalog(path) is first


class TestMalformedCatalog:
    @pytest.mark.parametrize(
        ("text", "problem"),
        [
            ("[identity\n", "Expected"),
            (CUSTOM_CATALOG.replace('"money"', '"currency"'), "concepts.fee.kind"),
            (CUSTOM_CATALOG.replace("label =", "lable ="), "lable"),
            (
                CUSTOM_CATALOG + '[concepts.x]\nlabel="X"\nkind="text"\ncolumns=["Cuota Mes"]\n',
                "'fee'",
            ),
            (CUSTOM_CATALOG.replace('external_id = ["legajo"]', ""), "identity.external_id"),
            (CUSTOM_CATALOG.replace('kind = "money"', 'kind = "money"\ndue = "fecha"'), "concepts.fee.due"),
        ],
    )
    def test_raises_config_error_naming_the_setting(self, tmp_path: Path, text: str, problem: str) -> None:
        path = tmp_path / "fields.toml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError, match="BEDEL_FIELDS_FILE") as raised:
            load_field_catalog(path)
        assert problem in str(raised.value)

    def test_missing_file_raises_config_error(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match=r"BEDEL_FIELDS_FILE: cannot read .*absent\.toml"):
            load_field_catalog(tmp_path / "absent.toml")
