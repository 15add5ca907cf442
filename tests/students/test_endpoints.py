"""The students API through the app, the way staff tools call it."""

from pathlib import Path
from typing import Any

import httpx

from bedel.students import endpoints
from tests.students.workbooks import XLSX_TYPE, workbook

CSV = b"telefono;nombre;adeudo\n+52 55 1234 5678;Ana;4500\nno-es-telefono;Beto;0\n"


async def upload(
    client: httpx.AsyncClient, data: bytes, filename: str = "alumnos.csv", content_type: str = "text/csv"
) -> httpx.Response:
    return await client.post("/students/import", files={"file": (filename, data, content_type)})


class TestImport:
    async def test_upload_reports_created_and_bad_rows(self, client: httpx.AsyncClient) -> None:
        response = await upload(client, CSV)

        assert response.status_code == 200
        report = response.json()
        assert {key: report[key] for key in ("created", "updated", "errors")} == {
            "created": 1,
            "updated": 0,
            "errors": [
                {
                    "line": 3,
                    "item": None,
                    "code": "invalid_phone",
                    "value": "no-es-telefono",
                    "message": "invalid phone 'no-es-telefono': a phone may only hold digits, "
                    "spaces, dashes, dots, parentheses and a leading +",
                }
            ],
        }
        student = (await client.get("/students/5512345678")).json()
        assert (student["name"], student["attributes"]) == ("Ana", {"adeudo": "4500"})

    async def test_demo_file_answers_the_prototype_test_phone(
        self, client: httpx.AsyncClient, demo_students: Path
    ) -> None:
        assert (await upload(client, demo_students.read_bytes(), "students.csv")).json()["created"] == 8

        response = await client.get("/students/%2B52155667788")

        assert response.status_code == 200
        assert response.json()["phone"] == "+5255667788"

    async def test_format_falls_back_to_the_content_type(self, client: httpx.AsyncClient) -> None:
        response = await upload(client, b'{"phone": "5512345678"}\n', "export", "application/x-ndjson")

        assert response.json()["created"] == 1

    async def test_unknown_format_is_a_415(self, client: httpx.AsyncClient) -> None:
        response = await upload(client, b"PK\x03\x04", "alumnos.ods", "application/octet-stream")

        assert response.status_code == 415
        assert response.json()["error"]["code"] == "unsupported_media_type"
        assert ".xlsx (Excel)" in response.json()["error"]["message"]

    async def test_an_old_excel_file_is_a_415_that_says_how_to_save_it(self, client: httpx.AsyncClient) -> None:
        response = await upload(client, b"\xd0\xcf\x11\xe0", "alumnos.xls", "application/vnd.ms-excel")

        assert response.status_code == 415
        assert "save it as 'Excel Workbook (.xlsx)'" in response.json()["error"]["message"]

    async def test_file_over_20_mib_is_a_413_and_loads_nothing(self, client: httpx.AsyncClient) -> None:
        row = b"+52 55 1234 5678,Ana\n"
        oversized = b"telefono,nombre\n" + row * (endpoints.MAX_IMPORT_BYTES // len(row) + 1)

        response = await upload(client, oversized)

        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"
        assert (await client.get("/students/+525512345678")).status_code == 404

    async def test_unreadable_file_is_a_422_and_loads_nothing(self, client: httpx.AsyncClient) -> None:
        response = await upload(client, b"nombre,correo\nAna,a@x.mx\n")

        assert response.status_code == 422
        assert response.json()["error"]["code"] == "invalid_input"
        assert response.json()["error"]["field"] == "file"
        assert "no phone column" in response.json()["error"]["message"]

    async def test_missing_file_is_a_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/students/import", data={"other": "x"})

        assert response.status_code == 422


class TestExcelImport:
    async def test_an_excel_file_loads_and_reports_its_bad_row_and_columns(self, client: httpx.AsyncClient) -> None:
        data = workbook(
            [
                ["Matrícula", "Nombre", "Celular", "amount_due", "Turno"],
                ["A001", "Ana", "+52 55 1234 5678", 4500, "Matutino"],
                ["A002", "Beto", "55 12", 0, "Vespertino"],
            ]
        )

        response = await upload(client, data, "alumnos.xlsx", XLSX_TYPE)

        assert response.status_code == 200
        report = response.json()
        assert (report["created"], report["updated"]) == (1, 0)
        assert [(error["line"], error["message"][:17]) for error in report["errors"]] == [(3, "invalid phone '55")]
        assert [(c["column"], c["field"], c["concept"]) for c in report["columns"]] == [
            ("Matrícula", "external_id", "student_id"),
            ("Nombre", "name", "name"),
            ("Celular", "phone", None),
            ("amount_due", None, "balance"),
            ("Turno", None, None),
        ]
        assert report["warnings"] == [
            "column 'Turno' was not understood (its values look like text): it is kept under its own name; "
            "to give it a meaning, add it to a concept's columns in BEDEL_FIELDS_FILE"
        ]
        assert (await client.get("/students/5512345678")).json()["attributes"] == {
            "amount_due": 4500,
            "Turno": "Matutino",
        }

    async def test_an_excel_file_sent_without_its_name_is_known_by_its_type(self, client: httpx.AsyncClient) -> None:
        data = workbook([["telefono"], ["5512345678"]])

        response = await upload(client, data, "export", XLSX_TYPE)

        assert response.json()["created"] == 1


class TestFields:
    async def test_shows_how_the_loaded_lists_columns_are_understood(self, client: httpx.AsyncClient) -> None:
        await upload(
            client, b"Tel,NomAlumno,SaldoPendiente,Fec_Limite,Turno\n5512345678,Ana,4500,2027-02-10,Matutino\n"
        )
        await upload(client, b"telefono,nombre\n5587654321,Beto\n")

        response = await client.get("/students/fields")

        assert response.status_code == 200
        report = response.json()
        assert (report["students"], report["sampled"]) == (2, 2)
        assert report["record_fields"] == {"phone": 2, "name": 2, "email": 0, "external_id": 0}
        assert [(c["column"], c["concept"], c["kind"], c["values"], c["filled"]) for c in report["columns"]] == [
            ("Fec_Limite", "payment_due", "date", "date", 1),
            ("SaldoPendiente", "balance", "money", "number", 1),
            ("Turno", None, None, "text", 1),
        ]
        assert len(report["warnings"]) == 1 and "'Turno'" in report["warnings"][0]

    async def test_an_empty_list_has_no_columns(self, client: httpx.AsyncClient) -> None:
        report = (await client.get("/students/fields")).json()

        assert (report["students"], report["columns"], report["warnings"]) == (0, [], [])

    async def test_needs_a_staff_key(self, make_client: Any, make_settings: Any) -> None:
        async with make_client(make_settings(api_keys="client-key", staff_api_keys="staff-key")) as client:
            anonymous = await client.get("/students/fields")
            student_client = await client.get("/students/fields", headers={"Authorization": "Bearer client-key"})
            staff = await client.get("/students/fields", headers={"Authorization": "Bearer staff-key"})

        assert (anonymous.status_code, student_client.status_code, staff.status_code) == (401, 403, 200)


class TestRecord:
    async def test_put_creates_then_replaces(self, client: httpx.AsyncClient) -> None:
        created = await client.put("/students/55-1234-5678", json={"name": "Ana", "attributes": {"adeudo": 4500}})
        replaced = await client.put("/students/+52 1 55 1234 5678", json={"name": "Ana María"})

        assert created.status_code == 201
        assert replaced.status_code == 200
        assert replaced.json()["id"] == created.json()["id"]
        assert (replaced.json()["name"], replaced.json()["attributes"]) == ("Ana María", {})

    async def test_put_rejects_numbers_json_cannot_hold(self, client: httpx.AsyncClient) -> None:
        body = b'{"name": "Ana", "attributes": {"adeudo": NaN}}'
        response = await client.put("/students/5512345678", content=body, headers={"content-type": "application/json"})

        assert response.status_code == 422
        assert (await client.get("/students/5512345678")).status_code == 404

    async def test_put_rejects_unknown_fields(self, client: httpx.AsyncClient) -> None:
        response = await client.put("/students/5512345678", json={"nombre": "Ana"})

        assert response.status_code == 422
        assert response.json()["error"]["code"] == "unknown_field"

    async def test_invalid_phone_is_a_422_invalid_phone(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/students/hola")

        assert response.status_code == 422
        assert response.json()["error"]["code"] == "invalid_phone"
        assert response.json()["error"]["field"] == "phone"

    async def test_unknown_phone_is_a_404(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/students/5512345678")

        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"

    async def test_delete_is_a_204_then_a_404(self, client: httpx.AsyncClient) -> None:
        await client.put("/students/5512345678", json={"name": "Ana"})

        deleted = await client.delete("/students/%2B525512345678")
        again = await client.delete("/students/5512345678")

        assert deleted.status_code == 204
        assert again.status_code == 404
