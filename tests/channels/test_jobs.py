"""The channel job kinds: each survives the JSON the jobs table stores, and reads what older releases wrote."""

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from bedel.channels.jobs import AnswerJob, DeliverJob
from bedel.channels.models import Channel
from bedel.channels.ports import Button
from bedel.channels.schemas import Delivery, InboundMedia, MediaKind
from bedel.identities.models import IdentityKind
from bedel.identities.schemas import Identity

RECEIVED_AT = datetime(2025, 3, 1, 9, 30, 15, 250000, tzinfo=UTC)


def stored(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as a JSON column gives it back."""
    return json.loads(json.dumps(payload))  # type: ignore[no-any-return]


class TestAnswerJob:
    @pytest.mark.parametrize(
        "job",
        [
            AnswerJob(Channel.whatsapp, "wamid.1", "5215511112222", "+525511112222", "hola", RECEIVED_AT),
            AnswerJob(
                Channel.twilio,
                "SM1",
                "whatsapp:+5215511112222",
                "+525511112222",
                None,
                RECEIVED_AT,
                InboundMedia(MediaKind.audio, "audio/ogg", "https://media/1", caption="oye", filename="nota.ogg"),
            ),
            AnswerJob(Channel.whatsapp, "wamid.2", "5215511112222", "bsuid:MX.1", "Sí", RECEIVED_AT, button="a:b"),
            AnswerJob(
                Channel.whatsapp,
                "wamid.3",
                "5215511112222",
                "+525511112222",
                "hola",
                RECEIVED_AT,
                sent_at=datetime(2025, 3, 1, 9, 30, 14, tzinfo=UTC),
                identities=(Identity(IdentityKind.wa_id, "5215511112222"), Identity(IdentityKind.bsuid, "MX.1")),
            ),
        ],
    )
    def test_a_job_reads_back_as_it_was_written(self, job: AnswerJob) -> None:
        assert AnswerJob.from_payload(stored(job.to_payload())) == job

    def test_its_key_orders_the_phones_answers_and_its_source_names_the_message(self) -> None:
        job = AnswerJob(Channel.whatsapp, "wamid.1", "5215511112222", "+525511112222", "hola", RECEIVED_AT)
        assert (job.kind, job.key, job.source_id) == ("channels.answer", "answer:+525511112222", "whatsapp:wamid.1")

    def test_a_job_ledgered_before_bursts_is_long_quiet(self) -> None:
        payload = {
            "channel": "whatsapp",
            "external_id": "wamid.old",
            "address": "5215511112222",
            "phone": "+525511112222",
            "text": "hola",
            "media": None,
        }
        job = AnswerJob.from_payload(payload)
        assert job.received_at < RECEIVED_AT and job.button is None

    def test_a_job_ledgered_when_the_webhook_recorded_the_sender_carries_no_sender_details(self) -> None:
        payload = AnswerJob(Channel.whatsapp, "wamid.old", "5215511112222", "+525511112222", "hola", RECEIVED_AT)
        stored_payload = {k: v for k, v in stored(payload.to_payload()).items() if k not in ("sent_at", "identities")}
        job = AnswerJob.from_payload(stored_payload)
        assert (job.sent_at, job.identities) == (None, None)


class TestDeliverJob:
    @pytest.mark.parametrize(
        "part",
        [
            Delivery(Channel.whatsapp, "5215511112222", "+525511112222", "Hola", uuid.uuid4()),
            Delivery(
                Channel.whatsapp,
                "5215511112222",
                "+525511112222",
                "Tu constancia está lista.",
                uuid.uuid4(),
                (Button("feedback:yes:1", "Sí"), Button("feedback:no:1", "No")),
                "¿Te sirvió esta respuesta?",
            ),
            Delivery(Channel.twilio, "whatsapp:+5215511112222", "+525511112222", "Aviso sin mensaje en el hilo"),
        ],
    )
    def test_a_part_reads_back_as_it_was_written(self, part: Delivery) -> None:
        assert DeliverJob.from_payload(stored(DeliverJob(part).to_payload())) == DeliverJob(part)

    def test_its_key_keeps_one_phones_parts_in_order(self) -> None:
        job = DeliverJob(Delivery(Channel.whatsapp, "5215511112222", "+525511112222", "Hola"))
        assert (job.kind, job.key) == ("channels.deliver", "deliver:+525511112222")

    def test_a_part_queued_before_reply_buttons_has_none(self) -> None:
        payload = {
            "channel": "whatsapp",
            "address": "5215511112222",
            "phone": "+525511112222",
            "text": "Hola",
            "message_id": None,
        }
        assert DeliverJob.from_payload(payload).part == Delivery(
            Channel.whatsapp, "5215511112222", "+525511112222", "Hola"
        )
