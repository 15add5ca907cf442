"""How a list's columns are understood: by name through the catalog, and by their values."""

from typing import Any

import pytest

from bedel.students.columns import column_warnings, read_columns, value_kind
from bedel.students.fields import FieldCatalog, load_field_catalog


@pytest.fixture(scope="module")
def catalog() -> FieldCatalog:
    return load_field_catalog()


class TestValueKind:
    @pytest.mark.parametrize(
        ("values", "kind"),
        [
            (["ana@example.edu", "beto@alumnos.example.mx"], "email"),
            (["+52 55 1234 5678", "477 123 4001"], "phone"),
            ([4771234001], "phone"),
            (["2027-02-10", "15/01/2027"], "date"),
            (["$4,500.00", "1200 MXN"], "money"),
            (["$4,500.00", 0], "money"),
            ([9.1, 8, "7.5"], "number"),
            (["Derecho", "Ingeniería"], "text"),
            (["Derecho", 3], "text"),
            ([None, ""], None),
        ],
    )
    def test_names_what_every_value_looks_like(self, values: list[Any], kind: str | None) -> None:
        assert value_kind(values) == kind


class TestReadColumns:
    def test_reads_fields_concepts_and_the_rest(self, catalog: FieldCatalog) -> None:
        filled = {"Tel": 2, "SaldoPendiente": 2, "Turno": 1, "Contacto": 2}
        samples: dict[str, list[Any]] = {
            "Tel": ["4771234001"],
            "SaldoPendiente": [0, 6825.0],
            "Turno": ["Matutino"],
            "Contacto": ["a@x.mx"],
        }

        readings = read_columns(catalog, filled, samples)

        assert [(r.column, r.field, r.concept, r.kind, r.values, r.filled) for r in readings] == [
            ("Tel", "phone", None, None, "phone", 2),
            ("SaldoPendiente", None, "balance", "money", "number", 2),
            ("Turno", None, None, None, "text", 1),
            ("Contacto", None, None, None, "email", 2),
        ]
        warnings = column_warnings(readings)
        assert [warning.split(":")[0] for warning in warnings] == [
            "column 'Turno' was not understood (its values look like text)",
            "column 'Contacto' was not understood (its values look like emails)",
        ]
        assert all("BEDEL_FIELDS_FILE" in warning for warning in warnings)

    def test_warns_when_a_name_is_read_against_its_values(self, catalog: FieldCatalog) -> None:
        [reading] = read_columns(catalog, {"adeudo": 1}, {"adeudo": ["2027-02-10"]})

        assert reading.concept == "balance" and reading.doubtful
        assert column_warnings([reading]) == [
            "column 'adeudo' is read as 'Saldo pendiente' (its values look like dates); "
            "if that is wrong, move it to another concept in BEDEL_FIELDS_FILE"
        ]
