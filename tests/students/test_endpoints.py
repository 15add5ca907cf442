"""The students API through the app, the way staff tools call it."""

from pathlib import Path

import httpx

from bedel.students import endpoints

CSV = b"telefono;nombre;adeudo\n+52 55 1234 5678;Ana;4500\nno-es-telefono;Beto;0\n"


async def upload(
    client: httpx.AsyncClient, data: bytes, filename: str = "alumnos.csv", content_type: str = "text/csv"
) -> httpx.Response:
    return await client.post("/students/import", files={"file": (filename, data, content_type)})


class TestImport:
    async def test_upload_reports_created_and_bad_rows(self, client: httpx.AsyncClient) -> None:
        response = await upload(client, CSV)

        assert response.status_code == 200
        assert response.json() == {
            "created": 1,
            "updated": 0,
            "errors": [
                {
                    "line": 3,
                    "item": None,
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
        response = await upload(client, b"PK\x03\x04", "alumnos.xlsx", "application/octet-stream")

        assert response.status_code == 415
        assert response.json()["error"]["code"] == "unsupported_media_type"

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
