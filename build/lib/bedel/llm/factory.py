from bedel.config import LLMProvider, Settings
from bedel.llm.offline import OfflineModel
from bedel.llm.openai_compatible import OpenAICompatibleModel
from bedel.llm.ports import ChatModel
from bedel.students.fields import FieldCatalog


def create_chat_model(settings: Settings, catalog: FieldCatalog) -> ChatModel:
    match settings.llm_provider:
        case LLMProvider.offline:
            return OfflineModel(catalog, settings.institution_name, settings.contact)
        case LLMProvider.openai_compatible:
            return OpenAICompatibleModel(settings)
