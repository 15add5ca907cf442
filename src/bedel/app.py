"""Application factory: the lifespan builds, in order, everything a request needs."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from importlib.metadata import version

import structlog
from fastapi import FastAPI

from bedel.api import UPLOAD_BODY_BYTES, router
from bedel.budgets.service import TokenBudgets
from bedel.campaigns.jobs import RecordJob
from bedel.campaigns.outbox import create_outboxes
from bedel.campaigns.recording import record_handler
from bedel.campaigns.repository import CampaignRepository
from bedel.campaigns.runner import CampaignLimits, CampaignRunner
from bedel.channels.asking import Asker
from bedel.channels.inbound import InboundAnswers
from bedel.channels.jobs import AnswerJob, DeliverJob
from bedel.channels.media import MediaInbox
from bedel.channels.outbound import Deliverer, Fallback
from bedel.channels.privacy import privacy_notice
from bedel.channels.receipts import Receipts
from bedel.channels.senders import create_email_sender, create_senders, create_sms_sender, email_client
from bedel.chat.activity import KEEP_JOB
from bedel.chat.prompt import AssistantOptions, load_instructions
from bedel.chat.service import ChatService
from bedel.chat.tasks import KEEP_EVERY, keep_handler
from bedel.config import Settings, load_settings
from bedel.console.errors import pages_on_console
from bedel.console.headers import ConsoleHeadersMiddleware
from bedel.db import Clock, create_engine, create_sessionmaker, utcnow
from bedel.exception_handlers import install_exception_handlers
from bedel.identities.verification import IdentityVerifier, VerificationPolicy
from bedel.jobs.runner import JobRunner
from bedel.knowledge.retriever import KnowledgeRetriever
from bedel.llm.factory import create_chat_model, create_embedder, create_transcriber
from bedel.ops.endpoints import healthz
from bedel.ops.lifecycle import GRACE_S
from bedel.ops.metrics import forget_this_process
from bedel.ops.middleware import RequestContextMiddleware
from bedel.rate_limits import RequestLimiter
from bedel.retention.service import PURGE_EVERY, PURGE_JOB, Retention, RetentionPolicy
from bedel.state import AppState
from bedel.students.fields import load_field_catalog

log = structlog.get_logger()


def build_state(settings: Settings, clock: Clock = utcnow) -> AppState:
    """Everything done once: templates compiled, catalog read, clients created."""
    catalog = load_field_catalog(settings.fields_file)
    template = load_instructions(settings.instructions_file)
    engine = create_engine(settings.database_url)
    lease = timedelta(seconds=settings.lease_s)
    sessionmaker = create_sessionmaker(engine)
    model = create_chat_model(settings, catalog)
    embedder = create_embedder(settings)
    knowledge = KnowledgeRetriever(
        settings.database_url,
        sessionmaker,
        settings.knowledge_index_dir,
        embedder=embedder,
        refresh_s=settings.knowledge_refresh_s,
    )
    options = AssistantOptions(
        model=settings.llm_model,
        temperature=settings.temperature,
        max_output_tokens=settings.max_output_tokens,
        history_token_budget=settings.history_token_budget,
        language=settings.language,
        institution_name=settings.institution_name,
        contact=settings.contact,
        passages_limit=settings.knowledge_top_k,
        min_relevance=settings.knowledge_min_relevance,
    )
    chat = ChatService(
        sessionmaker=sessionmaker,
        model=model,
        catalog=catalog,
        template=template,
        options=options,
        knowledge=knowledge,
        lease=lease,
        budgets=TokenBudgets.from_settings(settings),
        clock=clock,
    )
    senders = create_senders(settings)
    transcriber = create_transcriber(settings)
    outboxes = create_outboxes(settings)
    policy = VerificationPolicy.from_settings(settings, catalog)
    verifier = IdentityVerifier(
        policy,
        catalog,
        chat.texts,
        email=email_client(settings) if policy.by_email_code and settings.email_enabled else None,
    )
    sms = create_sms_sender(settings)
    receipts = Receipts()
    # Campaign messages leave through the same vendors, so their receipts come in on the same webhooks.
    receipts.register(CampaignRepository.from_session)
    asker = Asker(
        sessionmaker, chat, verifier, burst_window=timedelta(seconds=settings.whatsapp_burst_window_s), clock=clock
    )
    media = MediaInbox(senders, transcriber, max_bytes=settings.media_max_bytes)
    inbound = InboundAnswers(sessionmaker, chat, asker, media, clock=clock, privacy_notice=privacy_notice(settings))
    fallback = Fallback(
        settings.reengage_fallback,
        sms,
        create_email_sender(settings),
        email_subject=chat.texts.email_subject.format(institution=options.institution_name),
    )
    outbound = Deliverer(sessionmaker, senders, fallback, clock=clock)
    retention = RetentionPolicy.from_settings(settings)
    jobs = JobRunner(
        sessionmaker,
        {
            AnswerJob.kind: inbound.answer,
            DeliverJob.kind: outbound.deliver,
            RecordJob.kind: record_handler(sessionmaker),
            PURGE_JOB: Retention(sessionmaker, retention, clock).run,
            KEEP_JOB: keep_handler(sessionmaker, clock),
        },
        concurrency=settings.worker_concurrency,
        max_attempts=settings.job_max_attempts,
        retry_base_s=settings.job_retry_base_s,
        lease=lease,
        clock=clock,
        periodic={KEEP_JOB: KEEP_EVERY} | ({PURGE_JOB: PURGE_EVERY} if retention.purges else {}),
    )
    return AppState(
        settings=settings,
        engine=engine,
        sessionmaker=sessionmaker,
        catalog=catalog,
        model=model,
        chat=chat,
        knowledge=knowledge,
        embedder=embedder,
        transcriber=transcriber,
        limiter=RequestLimiter(settings),
        senders=senders,
        sms=sms,
        receipts=receipts,
        jobs=jobs,
        clock=clock,
        outboxes=outboxes,
        campaigns=CampaignRunner(sessionmaker, outboxes, CampaignLimits.from_settings(settings)),
    )


def mark_stopping(app: FastAPI) -> None:
    """From now on readiness answers 503 (called on SIGTERM, maybe before the lifespan has run)."""
    state: AppState | None = getattr(app.state, "bedel", None)
    if state is not None:
        state.shutting_down = True


def create_app(settings: Settings | None = None, clock: Clock = utcnow) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = build_state(settings or load_settings(), clock)
        app.state.bedel = state
        await state.knowledge.start()
        if state.settings.jobs_in_process:
            state.jobs.start()
            state.campaigns.start()
        log.info(
            "started",
            provider=state.settings.llm_provider,
            auth=state.settings.auth_enabled,
            channels=sorted(state.senders),
            jobs_in_process=state.settings.jobs_in_process,
        )
        try:
            yield
        finally:
            state.shutting_down = True
            await asyncio.gather(state.jobs.stop(), state.campaigns.stop())
            await state.aclose()
            forget_this_process()
            log.info("stopped")

    app = FastAPI(
        title="Bedel",
        summary="Answers students' questions from their own record, over WhatsApp or HTTP.",
        version=version("bedel"),
        lifespan=lifespan,
    )
    install_exception_handlers(app, pages_on_console)
    app.add_middleware(RequestContextMiddleware, upload_limits=UPLOAD_BODY_BYTES)
    app.add_middleware(ConsoleHeadersMiddleware)
    app.include_router(router)
    return app


def create_worker_app(settings: Settings) -> FastAPI:
    """`bedel worker`: runs background jobs from its lifespan and answers only `/healthz`.

    The liveness probe's answer comes from the event loop that runs the jobs, so a
    wedged loop is restarted; no database check, so an outage is not a restart loop.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = build_state(settings)
        # Answers cite the knowledge base, so a worker loads the index like the API does.
        await state.knowledge.start()
        state.jobs.start()
        state.campaigns.start()
        log.info(
            "worker_started",
            concurrency=settings.worker_concurrency,
            channels=sorted(state.senders),
            campaign_channels=sorted(state.outboxes),
        )
        try:
            yield
        finally:
            await asyncio.gather(state.jobs.stop(grace_s=GRACE_S), state.campaigns.stop(grace_s=GRACE_S))
            await state.aclose()
            forget_this_process()
            log.info("worker_stopped")

    app = FastAPI(title="Bedel worker", lifespan=lifespan, openapi_url=None)
    app.add_api_route("/healthz", healthz, methods=["GET"])
    return app
