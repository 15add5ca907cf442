"""Meta's WhatsApp Cloud API webhook, end to end: signed deliveries in, Graph API sends out (respx)."""

import asyncio
import json
import random
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
import respx
from prometheus_client import REGISTRY
from sqlalchemy import select, update

from bedel.config import Settings
from bedel.db import create_engine, create_sessionmaker, utcnow
from bedel.jobs.models import Job, JobStatus
from tests.channels.vendors import (
    ACCESS_TOKEN,
    CHANNEL_SETTINGS,
    GRAPH_MESSAGES_URL,
    VERIFY_TOKEN,
    graph_error,
    graph_sent,
    media_message,
    sent_text,
    signed,
    status_update,
    text_message,
)
from tests.llm_fakes import LLM_BASE_URL, completion, sent_messages
from tests.polling import eventually

WA_ID = "5215512345678"  # Mexico, as WhatsApp sends it: +52 1 55 1234 5678
PHONE = "+525512345678"  # the canonical key, as school records hold it
STUDENTS = "matricula,nombre,telefono,adeudo\nA001,Lucía Pérez,+52 55 1234 5678,4500\n"


async def post(client: httpx.AsyncClient, payload: dict[str, Any]) -> httpx.Response:
    body, headers = signed(payload)
    return await client.post("/webhooks/whatsapp", content=body, headers=headers)


def sent_bodies(route: respx.Route) -> list[str]:
    return [sent_text(call.request) for call in route.calls]


async def jobs(database_url: str, kind: str | None = None) -> list[Job]:
    """The channels' jobs (of one kind): not the periodic ones every runner enqueues."""
    engine = create_engine(database_url)
    async with create_sessionmaker(engine)() as session:
        query = select(Job).where(Job.kind == kind if kind else Job.kind.startswith("channels.")).order_by(Job.id)
        rows = (await session.scalars(query)).all()
    await engine.dispose()
    return list(rows)


async def all_jobs_finished(database_url: str) -> bool:
    return all(job.status in (JobStatus.done, JobStatus.failed) for job in await jobs(database_url))


async def thread_messages(client: httpx.AsyncClient, phone: str = PHONE) -> list[dict[str, Any]]:
    threads = (await client.get("/threads", params={"phone": phone})).json()["items"]
    if not threads:
        return []
    return list((await client.get(f"/threads/{threads[0]['id']}/messages")).json()["items"])


@pytest.fixture
async def wa_client(make_client: Callable[[Settings], Any], channel_settings: Settings) -> Any:
    async with make_client(channel_settings) as client:
        await client.post("/students/import", files={"file": ("s.csv", STUDENTS, "text/csv")})
        yield client


@pytest.fixture
def graph() -> Any:
    with respx.mock(assert_all_called=False) as router:
        yield router.post(GRAPH_MESSAGES_URL).mock(return_value=graph_sent(WA_ID))


class TestSubscriptionHandshake:
    async def test_echoes_the_challenge_when_the_verify_token_is_ours(self, wa_client: httpx.AsyncClient) -> None:
        params = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}

        response = await wa_client.get("/webhooks/whatsapp", params=params)

        assert response.status_code == 200
        assert response.text == "1158201444"

    async def test_another_verify_token_is_refused(self, wa_client: httpx.AsyncClient) -> None:
        params = {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1158201444"}

        response = await wa_client.get("/webhooks/whatsapp", params=params)

        assert response.status_code == 403
        assert "1158201444" not in response.text

    async def test_a_channel_without_secrets_is_off(self, client: httpx.AsyncClient) -> None:
        body, headers = signed(text_message(WA_ID, "hola", "wamid.off"))

        posted = await client.post("/webhooks/whatsapp", content=body, headers=headers)
        handshake = await client.get("/webhooks/whatsapp", params={"hub.mode": "subscribe"})

        assert posted.status_code == handshake.status_code == 404
        assert posted.json()["error"]["code"] == "channel_disabled"
        assert "BEDEL_WHATSAPP_APP_SECRET" in posted.json()["error"]["message"]


class TestSignature:
    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"x-hub-signature-256": "sha256=" + "0" * 64},
            {
                "x-hub-signature-256": signed(text_message(WA_ID, "hola", "wamid.x"), secret="another-secret")[1][
                    "x-hub-signature-256"
                ]
            },
        ],
        ids=["missing", "wrong", "another-secret"],
    )
    async def test_a_bad_signature_is_401_and_stores_nothing(
        self, wa_client: httpx.AsyncClient, clean_database: str, headers: dict[str, str]
    ) -> None:
        body = json.dumps(text_message(WA_ID, "hola", "wamid.x")).encode()

        response = await wa_client.post(
            "/webhooks/whatsapp", content=body, headers={"content-type": "application/json", **headers}
        )

        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        assert await jobs(clean_database) == []
        assert await thread_messages(wa_client) == []

    async def test_a_body_changed_after_signing_is_refused(self, wa_client: httpx.AsyncClient) -> None:
        body, headers = signed(text_message(WA_ID, "hola", "wamid.x"))

        response = await wa_client.post("/webhooks/whatsapp", content=body.replace(b"hola", b"hole"), headers=headers)

        assert response.status_code == 401

    @pytest.mark.parametrize(
        "payload",
        [
            {"object": "whatsapp_business_account"},
            {
                "object": "whatsapp_business_account",
                "entry": [{"id": "1", "changes": [{"field": "messages", "value": {}}]}],
            },
        ],
        ids=["no-entries", "messages-without-metadata"],
    )
    async def test_a_signed_body_that_is_not_a_notification_is_422(
        self, wa_client: httpx.AsyncClient, clean_database: str, payload: dict[str, Any]
    ) -> None:
        body, headers = signed(payload)

        response = await wa_client.post("/webhooks/whatsapp", content=body, headers=headers)

        assert response.status_code == 422
        assert response.json()["error"]["code"] == "invalid_input"
        assert await jobs(clean_database) == []


class TestTextMessages:
    async def test_the_answer_is_sent_through_the_graph_api(
        self, wa_client: httpx.AsyncClient, graph: respx.Route
    ) -> None:
        response = await post(wa_client, text_message(WA_ID, "¿cuánto debo?", "wamid.1"))

        assert response.status_code == 200
        assert response.json() == {"accepted": 1}
        await eventually(lambda: graph.call_count == 1)
        request = graph.calls.last.request
        assert request.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
        sent = json.loads(request.content)
        assert sent["messaging_product"] == "whatsapp"
        assert sent["to"] == "525512345678"  # the Mexican number without WhatsApp's "1"
        assert "4,500" in sent_text(request) or "4500" in sent_text(request)
        messages = await thread_messages(wa_client)
        assert [(m["role"], m["content"]) for m in messages] == [
            ("user", "¿cuánto debo?"),
            ("assistant", sent_text(request)),
        ]
        await eventually(lambda: _delivery(wa_client, "sent"))

    async def test_the_conversation_is_the_same_as_over_the_http_api(
        self, wa_client: httpx.AsyncClient, graph: respx.Route
    ) -> None:
        first = await wa_client.post("/chat", json={"phone": "+52 55 1234 5678", "question": "hola"})

        await post(wa_client, text_message(WA_ID, "¿cuánto debo?", "wamid.1"))
        await eventually(lambda: graph.call_count == 1)

        threads = (await wa_client.get("/threads")).json()["items"]
        assert [t["id"] for t in threads] == [first.json()["thread_id"]]
        assert [m["content"] for m in await thread_messages(wa_client)][::2] == ["hola", "¿cuánto debo?"]

    async def test_a_video_gets_a_reply_saying_only_text_is_read(
        self, wa_client: httpx.AsyncClient, graph: respx.Route
    ) -> None:
        video = {"mime_type": "video/mp4", "sha256": "OmZQ2d3u5Tyi1Jbnu0c4lNpE0Zp8y1s9zW0iQEIbuhQ=", "id": "2390584624"}
        await post(wa_client, media_message(WA_ID, "wamid.video", "video", video))

        await eventually(lambda: graph.call_count == 1)
        assert "texto" in sent_bodies(graph)[0]
        assert await thread_messages(wa_client) == []

    async def test_a_status_update_is_acknowledged_and_queues_nothing(
        self, wa_client: httpx.AsyncClient, graph: respx.Route, clean_database: str
    ) -> None:
        response = await post(wa_client, status_update(WA_ID, "wamid.sent-earlier"))

        assert response.status_code == 200
        assert response.json() == {"accepted": 0}
        assert await jobs(clean_database) == []

    async def test_messages_to_another_number_of_the_app_are_ignored(
        self, wa_client: httpx.AsyncClient, clean_database: str
    ) -> None:
        response = await post(wa_client, text_message(WA_ID, "hola", "wamid.2", phone_number_id="999"))

        assert response.json() == {"accepted": 0}
        assert await jobs(clean_database) == []


async def _delivery(client: httpx.AsyncClient, status: str) -> bool:
    messages = await thread_messages(client)
    return bool(messages) and messages[-1]["delivery_status"] == status


class TestExactlyOnce:
    async def test_a_redelivered_message_is_answered_once(
        self, wa_client: httpx.AsyncClient, graph: respx.Route, clean_database: str
    ) -> None:
        payload = text_message(WA_ID, "hola", "wamid.same")

        responses = [await post(wa_client, payload) for _ in range(3)]
        await eventually(lambda: graph.call_count == 1)
        await eventually(lambda: all_jobs_finished(clean_database))

        assert [r.json()["accepted"] for r in responses] == [1, 0, 0]
        assert graph.call_count == 1
        assert len(await thread_messages(wa_client)) == 2

    async def test_concurrent_redeliveries_are_answered_once(
        self, wa_client: httpx.AsyncClient, graph: respx.Route, clean_database: str
    ) -> None:
        payload = text_message(WA_ID, "hola", "wamid.concurrent")

        responses = await asyncio.gather(*(post(wa_client, payload) for _ in range(12)))
        await eventually(lambda: all_jobs_finished(clean_database))

        assert {r.status_code for r in responses} == {200}
        assert sum(r.json()["accepted"] for r in responses) == 1
        assert graph.call_count == 1
        assert len(await jobs(clean_database, "channels.answer")) == 1


def echo_llm(delays: bool = True) -> Callable[[httpx.Request], Any]:
    async def answer(request: httpx.Request) -> httpx.Response:
        question = sent_messages(request)[-1]["content"]
        if delays:
            await asyncio.sleep(random.uniform(0, 0.05))
        return completion(f"eco: {question}")

    return answer


def llm_settings() -> dict[str, Any]:
    return {
        "llm_provider": "openai_compatible",
        "llm_base_url": LLM_BASE_URL,
        "llm_api_key": "sk-test",
        "llm_max_retries": 0,
    }


class TestOrder:
    async def test_one_phones_messages_are_answered_in_order_by_several_workers(
        self, make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings], clean_database: str
    ) -> None:
        settings = make_settings(**CHANNEL_SETTINGS, **llm_settings())
        questions = [f"pregunta {n}" for n in range(6)]
        # Recent enough for the 24-hour window: a reply to an old message would not be sent at all.
        start = int(time.time()) - 60
        with respx.mock(assert_all_called=False) as router:
            router.post(f"{LLM_BASE_URL}/chat/completions").mock(side_effect=echo_llm())
            graph = router.post(GRAPH_MESSAGES_URL).mock(return_value=graph_sent(WA_ID))
            async with make_client(settings) as client, make_client(settings) as _second_worker:
                for n, question in enumerate(questions):
                    await post(client, text_message(WA_ID, question, f"wamid.order{n}", timestamp=start + n))
                await eventually(lambda: graph.call_count == len(questions))
                messages = await thread_messages(client)

        assert sent_bodies(graph) == [f"eco: {q}" for q in questions]
        assert [m["content"] for m in messages] == [text for q in questions for text in (q, f"eco: {q}")]

    async def test_a_retried_reply_still_leaves_before_the_later_ones(
        self, make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings]
    ) -> None:
        settings = make_settings(**{**CHANNEL_SETTINGS, **llm_settings(), "job_retry_base_s": 0.5})
        questions = [f"pregunta {n}" for n in range(4)]
        with respx.mock(assert_all_called=False) as router:
            router.post(f"{LLM_BASE_URL}/chat/completions").mock(side_effect=echo_llm(delays=False))
            graph = router.post(GRAPH_MESSAGES_URL).mock(
                side_effect=[graph_error(500, 2, "Service temporarily unavailable")] + [graph_sent(WA_ID)] * 4
            )
            async with make_client(settings) as client:
                for n, question in enumerate(questions):
                    await post(client, text_message(WA_ID, question, f"wamid.retry-order{n}"))
                await eventually(lambda: graph.call_count == len(questions) + 1)

        # The first reply's send failed once; the later replies waited for its retry.
        assert sent_bodies(graph) == [f"eco: {questions[0]}"] + [f"eco: {q}" for q in questions]

    async def test_different_phones_are_answered_in_parallel(
        self, make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings]
    ) -> None:
        in_flight, both = 0, asyncio.Event()

        async def answer(request: httpx.Request) -> httpx.Response:
            nonlocal in_flight
            in_flight += 1
            if in_flight == 2:
                both.set()
            # Each answer waits for the other phone's call to be in flight too.
            await asyncio.wait_for(both.wait(), timeout=10)
            return completion("listo")

        with respx.mock(assert_all_called=False) as router:
            router.post(f"{LLM_BASE_URL}/chat/completions").mock(side_effect=answer)
            graph = router.post(GRAPH_MESSAGES_URL).mock(return_value=graph_sent(WA_ID))
            async with make_client(make_settings(**CHANNEL_SETTINGS, **llm_settings())) as client:
                await post(client, text_message(WA_ID, "hola", "wamid.a"))
                await post(client, text_message("5215587654321", "hola", "wamid.b"))
                await eventually(lambda: graph.call_count == 2)

        assert both.is_set()


class TestLLMUnavailable:
    async def test_the_student_is_asked_to_write_again_and_the_question_is_kept(
        self, make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings]
    ) -> None:
        with respx.mock(assert_all_called=False) as router:
            router.post(f"{LLM_BASE_URL}/chat/completions").mock(side_effect=httpx.ConnectError("refused"))
            graph = router.post(GRAPH_MESSAGES_URL).mock(return_value=graph_sent(WA_ID))
            async with make_client(make_settings(**CHANNEL_SETTINGS, **llm_settings())) as client:
                await post(client, text_message(WA_ID, "¿cuánto debo?", "wamid.llm-down"))
                await eventually(lambda: graph.call_count == 1)
                messages = await thread_messages(client)

        assert "de nuevo" in sent_bodies(graph)[0]
        assert [m["content"] for m in messages] == ["¿cuánto debo?"]


class TestCrashRecovery:
    async def test_a_message_accepted_before_a_crash_is_answered_after_restart(
        self, make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings], graph: respx.Route
    ) -> None:
        # A process that takes the webhook and dies before any job runs.
        async with make_client(make_settings(**{**CHANNEL_SETTINGS, "jobs_in_process": False})) as client:
            assert (await post(client, text_message(WA_ID, "hola", "wamid.crash"))).status_code == 200
        assert graph.call_count == 0

        async with make_client(make_settings(**CHANNEL_SETTINGS)) as restarted:
            await eventually(lambda: graph.call_count == 1)
            assert len(await thread_messages(restarted)) == 2

    async def test_an_answer_stored_before_a_crash_is_delivered_once_not_asked_again(
        self, make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings], graph: respx.Route
    ) -> None:
        # The process took the webhook, answered, and died before queuing the reply.
        dying = make_client(make_settings(**{**CHANNEL_SETTINGS, "jobs_in_process": False}))
        async with dying as client:
            await post(client, text_message(WA_ID, "hola", "wamid.half"))
            answer = await dying.app.state.bedel.chat.ask(PHONE, "hola", source_id="whatsapp:wamid.half")

        async with make_client(make_settings(**CHANNEL_SETTINGS)) as restarted:
            await eventually(lambda: graph.call_count == 1)
            messages = await thread_messages(restarted)

        assert [m["content"] for m in messages] == ["hola", answer.answer]
        assert sent_bodies(graph) == [answer.answer]

    async def test_a_job_left_running_by_a_dead_worker_is_taken_over(
        self,
        make_client: Callable[[Settings], Any],
        make_settings: Callable[..., Settings],
        graph: respx.Route,
        clean_database: str,
    ) -> None:
        async with make_client(make_settings(**{**CHANNEL_SETTINGS, "jobs_in_process": False})) as client:
            await post(client, text_message(WA_ID, "hola", "wamid.lapsed"))
        engine = create_engine(clean_database)
        async with engine.begin() as connection:
            await connection.execute(
                update(Job).values(status=JobStatus.running, attempts=1, leased_until=utcnow() - timedelta(seconds=1))
            )
        await engine.dispose()

        async with make_client(make_settings(**CHANNEL_SETTINGS)):
            await eventually(lambda: graph.call_count == 1)

        assert [(j.status, j.attempts) for j in await jobs(clean_database, "channels.answer")] == [("done", 2)]


class TestSendFailures:
    @pytest.mark.slow  # waits out the 10 s pause Meta's throughput error (130429) asks for
    async def test_temporary_failures_are_retried_until_the_message_is_sent(self, wa_client: httpx.AsyncClient) -> None:
        with respx.mock(assert_all_called=False) as router:
            graph = router.post(GRAPH_MESSAGES_URL).mock(
                side_effect=[
                    httpx.Response(500, json={"error": {"message": "Service unavailable", "code": 2}}),
                    graph_error(400, 130429, "(#130429) Rate limit hit"),
                    httpx.ConnectError("reset"),
                    graph_sent(WA_ID),
                ]
            )
            await post(wa_client, text_message(WA_ID, "hola", "wamid.retry"))
            await eventually(lambda: _delivery(wa_client, "sent"))

        assert graph.call_count == 4

    async def test_a_permanent_failure_is_recorded_on_the_message(
        self, wa_client: httpx.AsyncClient, clean_database: str
    ) -> None:
        with respx.mock(assert_all_called=False) as router:
            graph = router.post(GRAPH_MESSAGES_URL).mock(
                return_value=graph_error(400, 131026, "(#131026) Message undeliverable")
            )
            await post(wa_client, text_message(WA_ID, "hola", "wamid.fail"))
            await eventually(lambda: _delivery(wa_client, "failed"))

        assert graph.call_count == 1
        answer = (await thread_messages(wa_client))[-1]
        assert answer["delivery_error_code"] == "131026"
        assert "no pudo entregar" in answer["delivery_error"]
        assert [j.status for j in await jobs(clean_database, "channels.deliver")] == ["failed"]

    async def test_retries_stop_after_the_last_attempt(
        self, make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings]
    ) -> None:
        with respx.mock(assert_all_called=False) as router:
            graph = router.post(GRAPH_MESSAGES_URL).mock(return_value=httpx.Response(503, text="upstream down"))
            async with make_client(make_settings(**CHANNEL_SETTINGS, job_max_attempts=3)) as client:
                await post(client, text_message(WA_ID, "hola", "wamid.down"))
                await eventually(lambda: _delivery(client, "failed"))

        assert graph.call_count == 3


class TestMetrics:
    async def test_deliveries_duplicates_rejections_and_jobs_are_counted(
        self, wa_client: httpx.AsyncClient, graph: respx.Route
    ) -> None:
        def sample(name: str, **labels: str) -> float:
            return REGISTRY.get_sample_value(name, labels) or 0.0

        delivery = "bedel_webhook_deliveries_total"
        before = {
            outcome: sample(delivery, channel="whatsapp", outcome=outcome)
            for outcome in ("accepted", "duplicate", "rejected")
        }
        done_before = sample("bedel_jobs_total", kind="channels.deliver", outcome="done")

        await post(wa_client, text_message(WA_ID, "hola", "wamid.metrics"))
        await post(wa_client, text_message(WA_ID, "hola", "wamid.metrics"))
        body = json.dumps(text_message(WA_ID, "hola", "wamid.forged")).encode()
        await wa_client.post(
            "/webhooks/whatsapp",
            content=body,
            headers={"content-type": "application/json", "x-hub-signature-256": "sha256=" + "0" * 64},
        )
        await eventually(lambda: sample("bedel_jobs_total", kind="channels.deliver", outcome="done") > done_before)

        for outcome in ("accepted", "duplicate", "rejected"):
            assert sample(delivery, channel="whatsapp", outcome=outcome) == before[outcome] + 1
        assert REGISTRY.get_sample_value("bedel_jobs_queued") is not None
