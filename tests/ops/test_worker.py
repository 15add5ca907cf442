"""A real `bedel worker` beside an API that runs no jobs: it answers a WhatsApp message, counts its jobs
and LLM calls on its own metrics port, answers its liveness probe, and stops on SIGTERM."""

import asyncio
import signal
from pathlib import Path

import httpx
import pytest

from bedel import migrate
from tests.channels.vendors import signed, text_message
from tests.ops.processes import all_jobs, all_jobs_done, samples, serve_env, start_serve, start_worker, whatsapp_env
from tests.ops.upstreams import FakeGraph, FakeLLM
from tests.polling import eventually

pytestmark = pytest.mark.slow

WA_ID = "34612345678"


class TestWorker:
    async def test_runs_the_jobs_and_serves_their_metrics_and_a_liveness_answer(
        self, tmp_path: Path, fake_llm: FakeLLM, fake_graph: FakeGraph
    ) -> None:
        fake_llm.delay_s = 0
        database_url = f"sqlite+aiosqlite:///{tmp_path / 'bedel.db'}"
        await asyncio.to_thread(migrate.upgrade, database_url)
        env = serve_env(database_url, fake_llm.url, BEDEL_JOBS_IN_PROCESS="false", **whatsapp_env(fake_graph))
        shared = tmp_path / "prometheus"
        shared.mkdir()
        api, worker = await asyncio.gather(
            start_serve(env, tmp_path), start_worker(env | {"PROMETHEUS_MULTIPROC_DIR": str(shared)}, tmp_path)
        )
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                body, headers = signed(text_message(WA_ID, "hola", "wamid.worker-1"))
                accepted = await client.post(f"{api.url}/webhooks/whatsapp", content=body, headers=headers)
                await eventually(lambda: all_jobs_done(database_url, 1))
                alive = await client.get(f"{worker.url}/healthz")
                not_on_health_port = await client.get(f"{worker.url}/metrics")
                on_worker = (await client.get(f"http://127.0.0.1:{worker.metrics_port}/metrics")).text
                on_api = (await client.get(f"http://127.0.0.1:{api.metrics_port}/metrics")).text
            worker.process.send_signal(signal.SIGTERM)
            exit_code = await asyncio.to_thread(worker.process.wait, 40)
        finally:
            api.stop()
            stderr = worker.stop()

        assert accepted.json() == {"accepted": 1}
        assert fake_graph.sent == [(WA_ID, "ok: hola", "bedel")]
        assert alive.json() == {"status": "ok"}
        assert not_on_health_port.status_code == 404
        jobs = samples(on_worker, "bedel_jobs_total")
        assert jobs[(("kind", "channels.answer"), ("outcome", "done"))] == 1
        assert jobs[(("kind", "channels.deliver"), ("outcome", "done"))] == 1
        assert samples(on_worker, "bedel_llm_calls_total") == {(("model", "gpt-4o-mini"), ("outcome", "ok")): 1}
        assert samples(on_worker, "bedel_llm_tokens_total")
        assert "bedel_jobs_queued" in on_worker
        assert any(shared.glob("*.db"))  # multiprocess mode: the values live in the shared folder
        # The API only ledgered the message: no job ran there.
        assert samples(on_api, "bedel_jobs_total") == {}
        assert samples(on_api, "bedel_webhook_deliveries_total") == {
            (("channel", "whatsapp"), ("outcome", "accepted")): 1
        }
        # uvicorn re-raises the signal once the jobs have stopped, as `bedel serve` does.
        assert exit_code == -signal.SIGTERM
        assert b'"event": "worker_stopped"' in stderr

    async def test_sigterm_lets_the_running_answer_finish_and_leaves_the_rest_queued(
        self, tmp_path: Path, fake_llm: FakeLLM, fake_graph: FakeGraph
    ) -> None:
        fake_llm.delay_s = 1.5
        database_url = f"sqlite+aiosqlite:///{tmp_path / 'bedel.db'}"
        await asyncio.to_thread(migrate.upgrade, database_url)
        env = serve_env(database_url, fake_llm.url, BEDEL_JOBS_IN_PROCESS="false", **whatsapp_env(fake_graph))
        api, worker = started = list(await asyncio.gather(start_serve(env, tmp_path), start_worker(env, tmp_path)))
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                body, headers = signed(text_message(WA_ID, "hola", "wamid.worker-2"))
                await client.post(f"{api.url}/webhooks/whatsapp", content=body, headers=headers)
                await eventually(lambda: fake_llm.waiting["sk-test"])
                worker.process.send_signal(signal.SIGTERM)
                exit_code = await asyncio.to_thread(worker.process.wait, 40)
                # The channel's jobs: the periodic ones (activity.keep, retention.purge) run beside them.
                jobs_left = sorted(
                    (kind, status)
                    for kind, _, status, _ in await all_jobs(database_url)
                    if kind.startswith("channels.")
                )
                # Another worker delivers what the stopped one left queued.
                started.append(await start_worker(env, tmp_path))
                await eventually(lambda: fake_graph.sent)
        finally:
            for process in started:
                process.stop()

        assert exit_code == -signal.SIGTERM
        assert jobs_left == [("channels.answer", "done"), ("channels.deliver", "queued")]
        assert fake_graph.sent == [(WA_ID, "ok: hola", "bedel")]
