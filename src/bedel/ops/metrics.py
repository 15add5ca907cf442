"""Prometheus metrics: every name Bedel exports, and the internal port that serves them.

Metrics are served by `bedel serve` on their own port (`BEDEL_METRICS_PORT`), never on
the API's, so an Ingress that publishes the API never publishes them and the scraper needs
no key. With `PROMETHEUS_MULTIPROC_DIR` set (several processes sharing one port, e.g. a
process manager with workers), prometheus-client keeps the values in files there and the
port serves the sum of every process.
"""

import collections
import os
from enum import StrEnum
from typing import Literal

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess, start_http_server
from purgatory.domain.messages.base import Event
from purgatory.domain.messages.events import ContextChanged

# prometheus-client itself reads this variable when it is imported, so Bedel reads the same one.
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
MULTIPROCESS = MULTIPROCESS_DIR in os.environ
# Requests answered before routing (unknown paths, an oversized body) share one label.
UNROUTED = "unrouted"
# An LLM answer can take the whole timeout; the upper buckets keep those apart.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ChatStage(StrEnum):
    """Where the time of one /chat answer goes."""

    retrieval = "retrieval"  # finding passages in the knowledge base
    llm = "llm"  # folding old turns into the summary, building the prompt, the model's calls
    database = "database"  # the question's and the answer's transactions, waiting for the turn included


class LLMOutcome(StrEnum):
    ok = "ok"
    unavailable = "unavailable"  # unreachable, timed out, 408/409/429/5xx after the SDK's retries
    rejected = "rejected"  # another 4xx: the key, model or URL is wrong
    breaker_open = "breaker_open"  # failed fast, no request sent


BREAKER_STATES: dict[str, float] = {"closed": 0, "half-opened": 1, "opened": 2}

HTTP_REQUESTS = Counter(
    "bedel_http_requests_total", "HTTP requests answered, by route template and status", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "bedel_http_request_duration_seconds",
    "Time from a request's arrival to its last byte, by route template",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
)
CHAT_STAGE_LATENCY = Histogram(
    "bedel_chat_stage_duration_seconds",
    "Time one /chat answer spends in each stage",
    ["stage"],
    buckets=_LATENCY_BUCKETS,
)
LLM_CALLS = Counter(
    "bedel_llm_calls_total", "Calls to the language model, by requested model and outcome", ["model", "outcome"]
)
LLM_TOKENS = Counter(
    "bedel_llm_tokens_total", "Tokens the language model reported (or Bedel estimated), by model", ["model", "kind"]
)
LLM_COST = Counter(
    "bedel_llm_cost_usd_total", "What the tokens cost in US dollars, by model (models with a price only)", ["model"]
)
TOKEN_BUDGET_USED = Gauge(
    "bedel_token_budget_used_ratio",
    "Share of the institution's monthly token budget spent, as of this process's latest answer",
    multiprocess_mode="livemax",
)
TOKEN_BUDGET_SPENT = Counter(
    "bedel_token_budget_spent_total",
    "Questions answered with the budget message instead of the model, by budget (student_daily, institution_monthly)",
    ["budget"],
)
LLM_BREAKER = Gauge(
    "bedel_llm_breaker_state",
    "The LLM circuit breaker of this process: 0 closed, 1 half-open, 2 open",
    multiprocess_mode="livemax",
)

WEBHOOK_DELIVERIES = Counter(
    "bedel_webhook_deliveries_total",
    "Vendor messages received by webhook, by channel and outcome (accepted, duplicate, rejected signature)",
    ["channel", "outcome"],
)
JOBS = Counter(
    "bedel_jobs_total",
    "Background jobs settled, by kind and outcome (done, retried, postponed, failed)",
    ["kind", "outcome"],
)
CAMPAIGN_SENDS = Counter(
    "bedel_campaign_sends_total",
    "Campaign recipients settled, by channel and outcome (sent, failed, retried, skipped)",
    ["channel", "outcome"],
)
GUARD_WITHHELD = Counter(
    "bedel_guard_withheld_total",
    "Identifiers of another student withheld from an answer by the output guard, by kind",
    ["kind"],
)
JOBS_QUEUED = Gauge(
    "bedel_jobs_queued", "Jobs waiting in the queue (ready or scheduled for a retry)", multiprocess_mode="livemax"
)

for _stage in ChatStage:
    CHAT_STAGE_LATENCY.labels(_stage)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_LATENCY.labels(method, route).observe(seconds)


def chat_stage(stage: ChatStage) -> Histogram:
    """`with chat_stage(ChatStage.llm).time():` times one stage of an answer."""
    return CHAT_STAGE_LATENCY.labels(stage)


def count_webhook(channel: str, *, accepted: int = 0, duplicates: int = 0, rejected: int = 0) -> None:
    for outcome, count in (("accepted", accepted), ("duplicate", duplicates), ("rejected", rejected)):
        if count:
            WEBHOOK_DELIVERIES.labels(channel, outcome).inc(count)


def count_job(kind: str, outcome: str) -> None:
    JOBS.labels(kind, outcome).inc()


def count_campaign_sends(channel: str, outcomes: collections.Counter[str]) -> None:
    for outcome, count in outcomes.items():
        CAMPAIGN_SENDS.labels(channel, outcome).inc(count)


def count_withheld(kinds: collections.Counter[str]) -> None:
    for kind, count in kinds.items():
        GUARD_WITHHELD.labels(kind).inc(count)


def count_llm_call(model: str, outcome: LLMOutcome) -> None:
    LLM_CALLS.labels(model, outcome).inc()


def count_llm_tokens(model: str, input_tokens: int, output_tokens: int, cost_usd: float | None) -> None:
    LLM_TOKENS.labels(model, "input").inc(input_tokens)
    LLM_TOKENS.labels(model, "output").inc(output_tokens)
    if cost_usd is not None:
        LLM_COST.labels(model).inc(cost_usd)


def record_budget_use(used: int, budget: int) -> None:
    """The institution's monthly budget spent so far (nothing to record when it is unlimited)."""
    if budget:
        TOKEN_BUDGET_USED.set(used / budget)


def count_budget_spent(budget: str) -> None:
    TOKEN_BUDGET_SPENT.labels(budget).inc()


def record_breaker_state(
    _: str, event_name: Literal["circuit_breaker_created", "state_changed", "failed", "recovered"], event: Event
) -> None:
    """A purgatory listener: the gauge follows every change of the breaker's state."""
    if event_name == "state_changed" and isinstance(event, ContextChanged):
        LLM_BREAKER.set(BREAKER_STATES[event.state])


def start_metrics_server(host: str, port: int) -> None:
    """Serve /metrics on `host:port` from a thread of this process; OSError if the port is taken.

    Read at the call: `bedel serve --workers N` sets the folder after this module was imported.
    """
    registry = REGISTRY
    if MULTIPROCESS_DIR in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(port, addr=host, registry=registry)


def forget_this_process() -> None:
    """In multiprocess mode, drop this process's live gauges when it stops."""
    if MULTIPROCESS:
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
