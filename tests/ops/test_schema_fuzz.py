"""A schema-driven fuzz run (schemathesis) against a real `bedel serve` set up as in production:
API keys, both channels' secrets and an OpenAI-compatible upstream. Every operation of the API's
schema is tested (the console's pages are not in the schema; tests/console/test_access.py walks
them), with the staff key so requests get past authentication; no answer may be a 5xx.

Nothing is excluded. Three operations cannot get past their first check with generated data, and
that is the behaviour under test for them: the WhatsApp and Twilio webhooks need the vendor's
signature over the body (tests/channels/test_hostile_payloads.py sends signed hostile payloads),
and the WhatsApp subscription check needs the verify token."""

import asyncio
import sys
from pathlib import Path

import httpx
import pytest

from tests.ops.processes import serve_env, start_serve, whatsapp_env
from tests.ops.upstreams import FakeGraph, FakeLLM

STAFF_KEY = "staff-key-fuzz-0123456789abcdef"
# Per operation and phase: enough for the bounds and odd types to show, within about a minute.
EXAMPLES = 5
SEED = 14

pytestmark = pytest.mark.slow


async def test_no_generated_request_gets_a_server_error(
    clean_database: str, fake_llm: FakeLLM, fake_graph: FakeGraph, tmp_path: Path
) -> None:
    env = serve_env(
        clean_database,
        fake_llm.url,
        BEDEL_ENV="production",
        BEDEL_WORKERS="1",
        BEDEL_API_KEYS="client-key-fuzz-0123456789abcdef",
        BEDEL_STAFF_API_KEYS=STAFF_KEY,
        BEDEL_TWILIO_AUTH_TOKEN="twilio-auth-token-0123456789",
        BEDEL_TWILIO_ACCOUNT_SID="AC" + "0" * 32,
        **whatsapp_env(fake_graph),
    )
    served = await start_serve(env, tmp_path)
    assert served.process.stderr is not None
    # Read as it comes: a thousand requests' log lines would fill the pipe and stall the server.
    server_log = asyncio.create_task(asyncio.to_thread(served.process.stderr.read))
    try:
        async with httpx.AsyncClient() as client:
            spec = (await client.get(f"{served.url}/openapi.json")).json()
        operations = sum(len(methods) for methods in spec["paths"].values())
        # Not subprocess.run: the fake upstreams answer on this event loop.
        fuzz = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "schemathesis.cli", "run", f"{served.url}/openapi.json"),
            *("--checks", "not_a_server_error"),
            *("--max-examples", str(EXAMPLES), "--seed", str(SEED), "--workers", "1", "--no-shrink"),
            *("--header", f"Authorization: Bearer {STAFF_KEY}"),
            *("--request-timeout", "10"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path,
        )
        output, _ = await asyncio.wait_for(fuzz.communicate(), timeout=300)
    finally:
        served.process.kill()
        log = await server_log
        served.process.wait()
    report = output.decode()
    assert fuzz.returncode == 0, report[-6000:] + log.decode()[-3000:]
    # Every operation the served API has was fuzzed, none left out.
    assert f"Tested: {operations}" in report
