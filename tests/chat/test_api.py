"""POST /chat through the front door: the contract, validation, and what gets stored."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bedel.config import Settings

PROTOTYPE = {"phone": "+52155667788", "question": "Hola, necesito ayuda."}
ANSWER_KEYS = {
    "answer",
    "thread_id",
    "message_id",
    "student",
    "sources",
    "handoff",
    "usage",
    "model",
    "latency_ms",
}


async def stored_threads(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get("/threads")
    assert response.status_code == 200
    return response.json()["items"]  # type: ignore[no-any-return]


class TestPrototypeContract:
    async def test_prototype_request_gets_the_documented_shape(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/chat", json=PROTOTYPE)

        assert response.status_code == 200
        body = response.json()
        assert set(body) == ANSWER_KEYS
        assert body["answer"].strip()
        assert body["student"] == {"known": False, "name": None}
        assert body["sources"] == []
        assert body["handoff"] is False
        assert set(body["usage"]) == {"input_tokens", "output_tokens", "total_tokens"}
        assert body["usage"]["total_tokens"] == body["usage"]["input_tokens"] + body["usage"]["output_tokens"] > 0
        assert body["model"] == "offline"
        assert isinstance(body["latency_ms"], int)

    async def test_openapi_docs_are_served(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/docs")).status_code == 200
        schema = (await client.get("/openapi.json")).json()
        assert "/chat" in schema["paths"]


class TestRejectedInput:
    @pytest.mark.parametrize(
        ("body", "code", "field"),
        [
            ({"phone": "+52155667788", "question": ""}, "invalid_question", "question"),
            ({"phone": "+52155667788", "question": "   \n\t "}, "invalid_question", "question"),
            ({"phone": "+52155667788", "question": "x" * 4001}, "invalid_question", "question"),
            ({"phone": 52155667788, "question": "hola"}, "invalid_phone", "phone"),
            ({"phone": "+52155667788", "question": ["hola"]}, "invalid_question", "question"),
            ({"phone": "+52155667788", "question": "hola", "extra": 1}, "unknown_field", "extra"),
            ({"question": "hola"}, "missing_field", "phone"),
            ({"phone": "llámame", "question": "hola"}, "invalid_phone", "phone"),
            ({"phone": "+52 123", "question": "hola"}, "invalid_phone", "phone"),
            ({"phone": "+1234567890123456", "question": "hola"}, "invalid_phone", "phone"),
        ],
    )
    async def test_bad_body_is_a_422_and_stores_nothing(
        self, client: httpx.AsyncClient, body: dict[str, Any], code: str, field: str
    ) -> None:
        response = await client.post("/chat", json=body)

        assert response.status_code == 422
        assert response.json()["error"]["code"] == code
        assert response.json()["error"]["field"] == field
        assert response.json()["error"]["message"]
        assert await stored_threads(client) == []

    async def test_question_of_exactly_4000_characters_is_accepted(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/chat", json={"phone": "+52155667788", "question": "a" * 4000})
        assert response.status_code == 200

    async def test_malformed_json_is_a_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/chat",
            content=b'{"phone": "+52155667788", "question": ',
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "invalid_json"
        assert await stored_threads(client) == []

    async def test_non_json_content_type_is_a_415(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/chat",
            content=b"phone=+52155667788&question=hola",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 415
        assert response.json()["error"]["code"] == "unsupported_media_type"
        assert await stored_threads(client) == []

    async def test_body_over_64_kib_is_a_413(self, client: httpx.AsyncClient) -> None:
        body = {"phone": "+52155667788", "question": "hola", "padding": "x" * 70_000}
        response = await client.post("/chat", json=body)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"
        assert await stored_threads(client) == []

    async def test_chunked_body_over_64_kib_is_a_413(self, client: httpx.AsyncClient) -> None:
        async def chunks() -> Any:
            yield b'{"phone": "+52155667788", "question": "'
            for _ in range(80):
                yield b"x" * 1024
            yield b'"}'

        response = await client.post("/chat", content=chunks(), headers={"content-type": "application/json"})
        assert response.status_code == 413
        assert await stored_threads(client) == []


class TestPhoneIdentity:
    @pytest.mark.parametrize("shape", ["+52 1 55 6677 88", "5255667788", "+52-55-66-77-88", "0052155667788"])
    async def test_every_shape_of_one_phone_reaches_one_thread(self, client: httpx.AsyncClient, shape: str) -> None:
        first = (await client.post("/chat", json=PROTOTYPE)).json()
        again = (await client.post("/chat", json={"phone": shape, "question": "otra pregunta"})).json()

        assert again["thread_id"] == first["thread_id"]
        threads = await stored_threads(client)
        assert [thread["phone"] for thread in threads] == ["+5255667788"]


class TestOddInput:
    async def test_nul_in_the_question_is_a_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/chat", json={"phone": "+52155667788", "question": "hola\x00"})
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "question"
        assert await stored_threads(client) == []

    async def test_empty_body_says_a_body_is_required(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/chat", headers={"content-type": "application/json"})
        assert response.status_code == 422
        assert response.json()["error"] == {"code": "missing_body", "message": "a JSON body is required", "field": None}

    async def test_digits_of_other_scripts_are_not_a_phone(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/chat", json={"phone": "+52²²²²²²²²", "question": "hola"})
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "invalid_phone"

    async def test_override_template_that_fails_to_render_is_a_422_before_storing(
        self, client: httpx.AsyncClient
    ) -> None:
        body = {**PROTOTYPE, "assistant": {"instructions": "Hola {{ student.nada.mas }}"}}
        response = await client.post("/chat", json=body)
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "assistant.instructions"
        assert await stored_threads(client) == []


class TestAnswerLanguage:
    async def test_with_the_english_setting_the_student_is_told_in_english_that_a_person_takes_over(
        self, make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings]
    ) -> None:
        settings = make_settings(language="en", contact="the registrar's office")
        async with make_client(settings) as client:
            asked = await client.post(
                "/chat", json={"phone": PROTOTYPE["phone"], "question": "quiero hablar con una persona"}
            )
            later = await client.post("/chat", json={"phone": PROTOTYPE["phone"], "question": "¿hola?"})

        notice = "the registrar's office will take over this conversation"
        assert asked.json()["handoff"] is True and notice in asked.json()["answer"]
        assert later.json()["handoff"] is True and notice in later.json()["answer"]

    async def test_a_staff_override_to_english_changes_the_texts_of_that_answer_only(
        self, client: httpx.AsyncClient
    ) -> None:
        english = {"phone": "+525511111111", "question": "hola", "assistant": {"language": "en"}}
        spanish = {"phone": "+525522222222", "question": "hola"}

        in_english = (await client.post("/chat", json=english)).json()["answer"]
        in_spanish = (await client.post("/chat", json=spanish)).json()["answer"]

        assert in_english.startswith("Hi! I'm the virtual assistant of")
        assert in_spanish.startswith("¡Hola! Soy el asistente virtual de")
