"""`Embedder` over any server that speaks OpenAI's embeddings protocol (`POST /embeddings`)."""

from typing import Any, cast

import httpx
from openai import AsyncOpenAI, OpenAIError

from bedel.config import Settings
from bedel.errors import UpstreamUnavailable
from bedel.llm.openai_compatible import DEFAULT_RETRY_AFTER_S, NO_API_KEY
from bedel.tls import tls_context


class OpenAIEmbeddings:
    def __init__(self, settings: Settings, model: str) -> None:
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else NO_API_KEY
        # Our own httpx client, as for chat: it keeps the calls on the transport respx mocks.
        self._http = httpx.AsyncClient(timeout=settings.llm_timeout_s, verify=tls_context())
        self._client = AsyncOpenAI(
            base_url=settings.embedding_base_url or settings.llm_base_url,
            api_key=key,
            timeout=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
            http_client=cast(Any, self._http),
        )
        self._model = model

    async def embed(self, texts: list[str]) -> list[list[float]]:
        try:
            response = await self._client.embeddings.create(model=self._model, input=texts)
        except OpenAIError as exc:
            raise UpstreamUnavailable(
                f"The embeddings server failed ({type(exc).__name__}); check BEDEL_EMBEDDING_BASE_URL "
                "and BEDEL_EMBEDDING_MODEL.",
                retry_after=DEFAULT_RETRY_AFTER_S,
            ) from None
        # The protocol returns one vector per input, each tagged with its input's index.
        return [item.embedding for item in sorted(response.data, key=lambda item: item.index)]

    async def aclose(self) -> None:
        await self._client.close()
        await self._http.aclose()
