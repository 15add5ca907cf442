"""`Transcriber` over any server that speaks OpenAI's `/audio/transcriptions` (OpenAI, faster-whisper, ...)."""

from typing import Any, cast

import httpx
from openai import AsyncOpenAI, OpenAIError

from bedel.config import Settings
from bedel.errors import UpstreamUnavailable
from bedel.llm.openai_compatible import DEFAULT_RETRY_AFTER_S, NO_API_KEY
from bedel.tls import tls_context

# The endpoint guesses the format from the file name, so each type gets its usual extension.
_EXTENSIONS = {
    "audio/ogg": "ogg",
    "audio/opus": "ogg",
    "audio/mpeg": "mp3",
    "audio/mp4": "m4a",
    "audio/aac": "aac",
    "audio/amr": "amr",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/webm": "webm",
}


class OpenAITranscriber:
    def __init__(self, settings: Settings, model: str) -> None:
        secret = settings.transcription_api_key or settings.llm_api_key
        # Our own httpx client, as for chat: it keeps the calls on the transport respx mocks.
        self._http = httpx.AsyncClient(timeout=settings.llm_timeout_s, verify=tls_context())
        self._client = AsyncOpenAI(
            base_url=settings.transcription_base_url or settings.llm_base_url,
            api_key=secret.get_secret_value() if secret else NO_API_KEY,
            timeout=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
            http_client=cast(Any, self._http),
        )
        self._model = model
        self._language = settings.language

    async def transcribe(self, audio: bytes, mime_type: str) -> str:
        extension = _EXTENSIONS.get(mime_type.split(";")[0].strip().lower(), "ogg")
        try:
            transcription = await self._client.audio.transcriptions.create(
                model=self._model, file=(f"voice.{extension}", audio, mime_type), language=self._language
            )
        except OpenAIError as exc:
            raise UpstreamUnavailable(
                f"The transcription server failed ({type(exc).__name__}); check BEDEL_TRANSCRIPTION_BASE_URL "
                "and BEDEL_TRANSCRIPTION_MODEL.",
                retry_after=DEFAULT_RETRY_AFTER_S,
            ) from None
        return transcription.text.strip()

    async def aclose(self) -> None:
        await self._client.close()
        await self._http.aclose()
