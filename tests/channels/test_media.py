"""Voice notes and files over WhatsApp and Twilio: downloaded from the vendor (respx), transcribed, kept for staff."""

import base64
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from bedel.config import Settings
from bedel.texts.catalog import texts_for
from tests.channels.test_whatsapp import PHONE, WA_ID, post, sent_bodies, thread_messages
from tests.channels.vendors import (
    ACCESS_TOKEN,
    ACCOUNT_SID,
    AUTH_TOKEN,
    CHANNEL_SETTINGS,
    GRAPH_BASE,
    GRAPH_MESSAGES_URL,
    LOOKASIDE_URL,
    TWILIO_MESSAGES_URL,
    document_message,
    graph_media,
    graph_sent,
    image_message,
    transcription,
    twilio_form,
    twilio_media_url,
    twilio_sent,
    twilio_signed,
    voice_message,
)
from tests.knowledge.documents import CALENDAR
from tests.llm_fakes import LLM_BASE_URL
from tests.polling import eventually

ES = texts_for("es")
FILE_REPLY = ES.file_kept
REFUSED_REPLY = ES.file_refused
VOICE_REPLY = ES.voice_note
VOICE_ID = "1013859600285441"
OGG = b"OggS\x00\x02" + bytes(range(256)) * 8  # the first bytes of an Ogg Opus file, then noise
PDF = b"%PDF-1.7\n" + b"0" * 3000
TRANSCRIPTION_URL = f"{LLM_BASE_URL}/audio/transcriptions"
TRANSCRIBING = {"transcription_model": "whisper-1", "transcription_base_url": LLM_BASE_URL}


class Vendors:
    """Meta's media endpoint and file host, the Graph send endpoint, and a Whisper-compatible server."""

    def __init__(self, router: respx.MockRouter) -> None:
        self.router = router
        self.graph = router.post(GRAPH_MESSAGES_URL).mock(return_value=graph_sent(WA_ID))
        self.file = router.get(LOOKASIDE_URL).mock(
            return_value=httpx.Response(200, content=OGG, headers={"content-type": "audio/ogg"})
        )
        self.transcriptions = router.post(TRANSCRIPTION_URL).mock(
            return_value=transcription("¿Cuándo empiezan las clases?")
        )

    def media(self, media_id: str, mime_type: str, size: int) -> respx.Route:
        return self.router.get(f"{GRAPH_BASE}/{media_id}").mock(return_value=graph_media(media_id, mime_type, size))


@pytest.fixture
def vendors() -> Any:
    with respx.mock(assert_all_called=False) as router:
        yield Vendors(router)


@pytest.fixture
def start(make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Callable[..., Any]:
    def start(**settings: Any) -> Any:
        return make_client(make_settings(**CHANNEL_SETTINGS, **settings))

    return start


async def only_message(client: httpx.AsyncClient, count: int = 1) -> list[dict[str, Any]]:
    await eventually(lambda: _has(client, count))
    return await thread_messages(client)


async def _has(client: httpx.AsyncClient, count: int) -> bool:
    return len(await thread_messages(client)) >= count


async def download(client: httpx.AsyncClient, attachment_id: str) -> httpx.Response:
    thread = (await client.get("/threads", params={"phone": PHONE})).json()["items"][0]
    return await client.get(f"/threads/{thread['id']}/attachments/{attachment_id}")


class TestVoiceNotes:
    async def test_a_voice_note_is_transcribed_and_answered_like_text(
        self, start: Callable[..., Any], vendors: Vendors
    ) -> None:
        metadata = vendors.media(VOICE_ID, "audio/ogg", len(OGG))
        async with start(**TRANSCRIBING) as client:
            files = [("files", ("calendario.md", CALENDAR.encode(), "text/markdown"))]
            await client.post("/knowledge/documents", files=files)
            await post(client, voice_message(WA_ID, "wamid.voice"))
            await eventually(lambda: vendors.graph.call_count == 1)
            question, answer = await thread_messages(client)
            downloaded = await download(client, question["attachments"][0]["id"])

        assert "11 de enero de 2027" in sent_bodies(vendors.graph)[0]
        assert metadata.calls.last.request.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
        assert vendors.file.calls.last.request.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
        upload = vendors.transcriptions.calls.last.request
        assert upload.headers["content-type"].startswith("multipart/form-data")
        assert b'name="model"\r\n\r\nwhisper-1' in upload.content
        assert b'name="language"\r\n\r\nes' in upload.content
        assert OGG in upload.content
        assert question["role"] == "user"
        assert question["content"] == "¿Cuándo empiezan las clases?"
        assert question["attachments"] == [
            {
                "id": question["attachments"][0]["id"],
                "kind": "audio",
                "mime_type": "audio/ogg; codecs=opus",
                "size_bytes": len(OGG),
                "filename": None,
                "caption": None,
                "transcript": "¿Cuándo empiezan las clases?",
                "note": None,
                "downloaded": True,
            }
        ]
        assert answer["content"] == sent_bodies(vendors.graph)[0]
        assert downloaded.status_code == 200
        assert downloaded.content == OGG
        assert downloaded.headers["content-type"].startswith("audio/ogg")

    async def test_without_a_transcription_model_the_student_is_asked_to_write(
        self, start: Callable[..., Any], vendors: Vendors
    ) -> None:
        vendors.media(VOICE_ID, "audio/ogg", len(OGG))
        async with start() as client:
            await post(client, voice_message(WA_ID, "wamid.voice-offline"))
            await eventually(lambda: vendors.graph.call_count == 1)
            messages = await only_message(client)

        assert sent_bodies(vendors.graph) == [VOICE_REPLY]
        assert vendors.transcriptions.call_count == 0
        assert [m["content"] for m in messages] == ["[nota de voz]"]
        attachment = messages[0]["attachments"][0]
        assert attachment["downloaded"] is True
        assert "BEDEL_TRANSCRIPTION_MODEL" in attachment["note"]

    async def test_a_failing_transcription_server_gets_the_same_polite_reply(
        self, start: Callable[..., Any], vendors: Vendors
    ) -> None:
        vendors.media(VOICE_ID, "audio/ogg", len(OGG))
        vendors.transcriptions.mock(
            return_value=httpx.Response(
                500, json={"error": {"message": "The server had an error", "type": "server_error", "code": None}}
            )
        )
        async with start(**TRANSCRIBING, llm_max_retries=0) as client:
            await post(client, voice_message(WA_ID, "wamid.voice-fails"))
            await eventually(lambda: vendors.graph.call_count == 1)
            messages = await only_message(client)

        assert sent_bodies(vendors.graph) == [VOICE_REPLY]
        assert [m["content"] for m in messages] == ["[nota de voz]"]
        assert "not transcribed" in messages[0]["attachments"][0]["note"]


class TestFiles:
    async def test_a_document_is_kept_for_staff_with_a_polite_reply(
        self, start: Callable[..., Any], vendors: Vendors
    ) -> None:
        vendors.media("1013859600285442", "application/pdf", len(PDF))
        vendors.file.mock(return_value=httpx.Response(200, content=PDF, headers={"content-type": "application/pdf"}))
        async with start() as client:
            await post(client, document_message(WA_ID, "wamid.doc"))
            await eventually(lambda: vendors.graph.call_count == 1)
            [message] = await only_message(client)
            downloaded = await download(client, message["attachments"][0]["id"])

        assert sent_bodies(vendors.graph) == [FILE_REPLY]
        assert message["content"] == "[documento] comprobante.pdf Mi comprobante de pago"
        attachment = message["attachments"][0]
        assert (attachment["kind"], attachment["filename"], attachment["caption"]) == (
            "document",
            "comprobante.pdf",
            "Mi comprobante de pago",
        )
        assert (attachment["size_bytes"], attachment["downloaded"]) == (len(PDF), True)
        assert downloaded.content == PDF
        assert downloaded.headers["content-type"] == "application/pdf"
        assert downloaded.headers["content-disposition"] == "attachment; filename*=UTF-8''comprobante.pdf"

    async def test_an_image_is_kept_for_staff(self, start: Callable[..., Any], vendors: Vendors) -> None:
        vendors.media("1003383421387256", "image/jpeg", 4)
        vendors.file.mock(return_value=httpx.Response(200, content=b"\xff\xd8\xff\xe0"))
        async with start() as client:
            await post(client, image_message(WA_ID, "wamid.img"))
            await eventually(lambda: vendors.graph.call_count == 1)
            [message] = await only_message(client)

        assert sent_bodies(vendors.graph) == [FILE_REPLY]
        assert message["content"] == "[imagen]"
        assert message["attachments"][0]["kind"] == "image"

    async def test_a_file_over_the_size_limit_is_not_downloaded(
        self, start: Callable[..., Any], vendors: Vendors
    ) -> None:
        metadata = vendors.media("1013859600285442", "application/pdf", 5_000_000)
        async with start(media_max_bytes=1_000_000) as client:
            await post(client, document_message(WA_ID, "wamid.big"))
            await eventually(lambda: vendors.graph.call_count == 1)
            [message] = await only_message(client)
            refused = await download(client, message["attachments"][0]["id"])

        assert metadata.call_count == 1
        assert vendors.file.call_count == 0
        assert sent_bodies(vendors.graph) == [REFUSED_REPLY]
        attachment = message["attachments"][0]
        assert attachment["downloaded"] is False
        assert "5000000 bytes" in attachment["note"]
        assert refused.status_code == 404

    async def test_a_type_bedel_does_not_keep_is_not_requested_at_all(
        self, start: Callable[..., Any], vendors: Vendors
    ) -> None:
        metadata = vendors.media("1013859600285442", "application/x-msdownload", 100)
        async with start() as client:
            await post(client, document_message(WA_ID, "wamid.exe", mime_type="application/x-msdownload"))
            await eventually(lambda: vendors.graph.call_count == 1)
            [message] = await only_message(client)

        assert metadata.call_count == vendors.file.call_count == 0
        assert sent_bodies(vendors.graph) == [REFUSED_REPLY]
        assert "application/x-msdownload" in message["attachments"][0]["note"]

    async def test_a_file_sent_during_a_handoff_is_kept_and_not_answered(
        self, start: Callable[..., Any], vendors: Vendors
    ) -> None:
        vendors.media("1013859600285442", "application/pdf", len(PDF))
        vendors.file.mock(return_value=httpx.Response(200, content=PDF))
        async with start() as client:
            thread = (await client.post("/chat", json={"phone": PHONE, "question": "hola"})).json()["thread_id"]
            await client.patch(f"/threads/{thread}", json={"status": "handoff"})
            await post(client, document_message(WA_ID, "wamid.doc-handoff"))
            messages = await only_message(client, 3)

        assert vendors.graph.call_count == 0
        assert messages[-1]["attachments"][0]["downloaded"] is True


class TestTwilioVoiceNotes:
    async def test_a_voice_note_is_fetched_with_the_account_credentials_and_answered(
        self, start: Callable[..., Any], vendors: Vendors
    ) -> None:
        sid = "MM" + "7" * 32
        cdn = f"https://s3-external-1.amazonaws.com/media.twiliocdn.com/{ACCOUNT_SID}/0f3e5bd1b6a5c3e0"
        media = vendors.router.get(twilio_media_url(sid)).mock(
            return_value=httpx.Response(307, headers={"location": cdn})
        )
        stored = vendors.router.get(cdn).mock(
            return_value=httpx.Response(200, content=OGG, headers={"content-type": "audio/ogg"})
        )
        rest = vendors.router.post(TWILIO_MESSAGES_URL).mock(return_value=twilio_sent(f"whatsapp:+{WA_ID}", "ok"))
        async with start(**TRANSCRIBING) as client:
            files = [("files", ("calendario.md", CALENDAR.encode(), "text/markdown"))]
            await client.post("/knowledge/documents", files=files)
            body, headers = twilio_signed(twilio_form(WA_ID, "", sid, num_media=1, media_type="audio/ogg"))
            await client.post("/webhooks/twilio", content=body, headers=headers)
            await eventually(lambda: rest.call_count == 1)

        reply = {k: v[0] for k, v in parse_qs(rest.calls.last.request.content.decode()).items()}["Body"]
        assert "11 de enero de 2027" in reply
        credentials = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        assert media.calls.last.request.headers["authorization"] == f"Basic {credentials}"
        # The credentials stay with Twilio: the file store is another host.
        assert "authorization" not in stored.calls.last.request.headers
        assert OGG in vendors.transcriptions.calls.last.request.content
