from bedel.config import LLMProvider, Settings
from bedel.llm.embeddings import OpenAIEmbeddings
from bedel.llm.offline import OfflineModel
from bedel.llm.openai_compatible import OpenAICompatibleModel
from bedel.llm.ports import ChatModel, Embedder, Transcriber
from bedel.llm.transcription import OpenAITranscriber
from bedel.students.fields import FieldCatalog


def create_chat_model(settings: Settings, catalog: FieldCatalog) -> ChatModel:
    match settings.llm_provider:
        case LLMProvider.offline:
            return OfflineModel(catalog, settings.institution_name, settings.contact)
        case LLMProvider.openai_compatible:
            return OpenAICompatibleModel(settings)


def create_embedder(settings: Settings) -> Embedder | None:
    """Dense embeddings only when a model is configured; BM25 alone otherwise."""
    if settings.embedding_model is None:
        return None
    return OpenAIEmbeddings(settings, settings.embedding_model)


def create_transcriber(settings: Settings) -> Transcriber | None:
    """Voice notes are transcribed only when a model is configured; otherwise students are asked for text."""
    if settings.transcription_model is None:
        return None
    return OpenAITranscriber(settings, settings.transcription_model)
