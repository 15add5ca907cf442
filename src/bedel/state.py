"""The typed state the lifespan builds once and every request reads."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bedel.campaigns.models import CampaignChannel
from bedel.campaigns.outbox import Outbox
from bedel.campaigns.runner import CampaignRunner
from bedel.channels.models import Channel
from bedel.channels.ports import MessageSender
from bedel.channels.receipts import Receipts
from bedel.chat.service import ChatService
from bedel.config import Settings
from bedel.db import Clock, session_scope
from bedel.jobs.runner import JobRunner
from bedel.knowledge.retriever import KnowledgeRetriever
from bedel.llm.ports import ChatModel, Embedder, Transcriber
from bedel.rate_limits import RequestLimiter
from bedel.students.fields import FieldCatalog


@dataclass
class AppState:
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


def get_state(request: Request) -> AppState:
    return cast(AppState, request.app.state.bedel)


async def _request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request owns the transaction: commit on success, roll back on error."""
    async for session in session_scope(get_state(request).sessionmaker):
        yield session


DBSession = Annotated[AsyncSession, Depends(_request_session, scope="function")]
