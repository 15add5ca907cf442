"""The typed state the lifespan builds once and every request reads: wiring, imported by app.py and the CLI only.

Each package's endpoints read it through their own protocol (`bedel.dependencies`), listed here as a base.
"""

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bedel.campaigns.endpoints import CampaignsState
from bedel.campaigns.models import CampaignChannel
from bedel.campaigns.outbox import Outbox
from bedel.campaigns.runner import CampaignRunner
from bedel.channels.endpoints import ChannelsState
from bedel.channels.models import Channel
from bedel.channels.ports import MessageSender
from bedel.channels.receipts import Receipts
from bedel.chat.activity import PastDays
from bedel.chat.endpoints import ChatState
from bedel.chat.service import ChatService
from bedel.config import Settings
from bedel.console.dashboard import DashboardState
from bedel.db import Clock
from bedel.jobs.runner import JobRunner
from bedel.keys.service import KeysMade
from bedel.knowledge.endpoints import KnowledgeState
from bedel.knowledge.retriever import KnowledgeRetriever
from bedel.llm.ports import ChatModel, Embedder, Transcriber
from bedel.rate_limits import RequestLimiter
from bedel.students.endpoints import StudentsState
from bedel.students.fields import FieldCatalog


@dataclass
class AppState(ChatState, ChannelsState, KnowledgeState, StudentsState, CampaignsState, DashboardState):
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    catalog: FieldCatalog
    model: ChatModel
    chat: ChatService
    knowledge: KnowledgeRetriever
    embedder: Embedder | None
    transcriber: Transcriber | None
    limiter: RequestLimiter
    senders: dict[Channel, MessageSender]
    sms: MessageSender | None
    receipts: Receipts
    jobs: JobRunner
    clock: Clock
    outboxes: dict[CampaignChannel, Outbox]
    campaigns: CampaignRunner
    shutting_down: bool = False
    # The dashboard's figures of past days (chat/activity.py).
    activity: PastDays = field(default_factory=PastDays)
    # Whether callers need a key made with `bedel keys create` (bedel.auth).
    keys_made: KeysMade = field(default_factory=KeysMade)

    async def aclose(self) -> None:
        for sender in [*self.senders.values(), *filter(None, [self.sms])]:
            await sender.aclose()
        for outbox in self.outboxes.values():
            await outbox.aclose()
        await self.knowledge.aclose()
        if self.embedder is not None:
            await self.embedder.aclose()
        if self.transcriber is not None:
            await self.transcriber.aclose()
        await self.model.aclose()
        await self.engine.dispose()
