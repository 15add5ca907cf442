"""What the chat engine needs from a language model, whatever serves it."""

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bedel.students.schemas import StudentRecord


@dataclass(frozen=True)
class Turn:
    role: str  # "user" | "assistant"
    content: str


@dataclass(frozen=True)
class Passage:
    """A piece of an institution's document retrieved for a question."""

    chunk_id: int
    document_id: str
    title: str
    heading: str
    text: str
    score: float
    # Share of the question's weight (IDF) found in this passage, 0 to 1.
    relevance: float


@dataclass(frozen=True)
class Prompt:
    """Everything one answer is built from.

    `messages` is the rendered Chat Completions conversation (system
    instructions, summary, recent turns, question); the structured fields let
    the offline engine answer without parsing text.
    """

    messages: list[dict[str, str]]
    question: str
    student: StudentRecord | None
    history: list[Turn]
    passages: list[Passage]
    model: str
    temperature: float
    max_output_tokens: int
    language: str
    # What the documents were searched with: the question, or its Spanish search words when the
    # student wrote in another language.
    search_text: str | None = None


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class Completion:
    text: str
    usage: Usage
    model: str


class Toolbox(Protocol):
    """Tools bound to one caller: whatever the model asks, they act on that caller only."""

    @property
    def definitions(self) -> list[dict[str, Any]]: ...

    async def call(self, name: str, arguments: str) -> str: ...


class ChatModel(Protocol):
    async def complete(self, prompt: Prompt, tools: Toolbox) -> Completion: ...

    def stream(self, prompt: Prompt, tools: Toolbox) -> AsyncIterator[str | Completion]:
        """Yield text deltas, then exactly one `Completion` with the whole answer."""
        ...

    async def summarize(self, summary: str, turns: list[Turn], language: str) -> str:
        """Fold `turns` into the running `summary` of a conversation."""
        ...

    async def search_terms(self, question: str) -> tuple[str, Usage]:
        """Spanish words to search the documents with, for a question written in English, and what they cost."""
        ...

    async def aclose(self) -> None: ...


class Embedder(Protocol):
    """Dense vectors for texts through an embeddings endpoint."""

    async def embed(self, texts: list[str]) -> list[list[float]]: ...

    async def aclose(self) -> None: ...


class Transcriber(Protocol):
    """Speech to text through an OpenAI-compatible `/audio/transcriptions` endpoint."""

    async def transcribe(self, audio: bytes, mime_type: str) -> str:
        """The text spoken in `audio`; raises `UpstreamUnavailable` when the server fails."""
        ...

    async def aclose(self) -> None: ...


class Retriever(Protocol):
    async def retrieve(self, question: str, context: Sequence[str], limit: int) -> list[Passage]:
        """Passages for `question`, with earlier questions of the conversation as `context`."""
        ...
