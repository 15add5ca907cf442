"""Application factory: the lifespan builds, in order, everything a request needs."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import structlog
from fastapi import FastAPI

from bedel.api import router
from bedel.campaigns.models import CampaignChannel
from bedel.campaigns.outbox import create_outboxes
from bedel.campaigns.recording import RECORD_JOB, record_handler
from bedel.campaigns.runner import CampaignLimits, CampaignRunner
from bedel.channels.senders import create_email_sender, create_senders, create_sms_sender, email_client
from bedel.channels.tasks import ChannelTasks
from bedel.chat.prompt import AssistantOptions, load_instructions
from bedel.chat.service import ChatService
from bedel.config import Settings, load_settings
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
    )
    senders = create_senders(settings)
    transcriber = create_transcriber(settings)
    outboxes = create_outboxes(settings)
    policy = VerificationPolicy.from_settings(settings, catalog)
    verifier = IdentityVerifier(
        policy, catalog, email=email_client(settings) if policy.by_email_code and settings.email_enabled else None
    )
    sms = create_sms_sender(settings)
    tasks = ChannelTasks(
        sessionmaker,
        chat,
        senders,
        verifier,
        fallback=settings.reengage_fallback,
        sms=sms,
        email=create_email_sender(settings),
        transcriber=transcriber,
        media_max_bytes=settings.media_max_bytes,
        burst_window=timedelta(seconds=settings.whatsapp_burst_window_s),
        clock=clock,
    )
    jobs = JobRunner(
        sessionmaker,
        tasks.handlers() | {RECORD_JOB: record_handler(sessionmaker)},
        concurrency=settings.worker_concurrency,
        max_attempts=settings.job_max_attempts,
        retry_base_s=settings.job_retry_base_s,
        lease=lease,
        clock=clock,
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
        jobs=jobs,
        clock=clock,
        outboxes=outboxes,
        campaigns=CampaignRunner(
            sessionmaker,
            outboxes,
            CampaignLimits(
                rates={
                    CampaignChannel.whatsapp_template: settings.campaign_rate_whatsapp,
                    CampaignChannel.sms: settings.campaign_rate_sms,
                    CampaignChannel.email: settings.campaign_rate_email,
                },
                max_attempts=settings.campaign_max_attempts,
                retry_base_s=settings.campaign_retry_base_s,
                lease_s=settings.campaign_lease_s,
            ),
        ),
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
        version="0.1.0",
        lifespan=lifespan,
    )
    install_exception_handlers(app)
    app.add_middleware(RequestContextMiddleware)
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
