"""Property tests of the webhook schemas: whatever a sender puts anywhere in a documented payload,
reading it either gives messages and receipts or raises pydantic's `ValidationError` (a 4xx), never
another exception (a 5xx the vendor would retry forever)."""

import contextlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bedel.channels.twilio.schemas import IncomingMessage, StatusCallback
from bedel.channels.whatsapp.schemas import WebhookPayload
from bedel.phones import InvalidPhone
from tests.channels.test_hostile_payloads import paths
from tests.channels.vendors import (
    PHONE_NUMBER_ID,
    image_message,
    status_update,
    text_message,
    twilio_form,
    twilio_status,
)

WA_ID = "5215512345678"
DOCUMENTED = [
    text_message(WA_ID, "hola", "wamid.1"),
    image_message(WA_ID, "wamid.2"),
    status_update(WA_ID, "wamid.3", "failed", errors=[{"code": 131026, "title": "Message undeliverable"}]),
]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=8,
)


def replaced(document: Any, path: tuple[str | int, ...], value: Any) -> Any:
    if not path:
        return value
    copy = dict(document) if isinstance(document, dict) else list(document)
    copy[path[0]] = replaced(document[path[0]], path[1:], value)  # type: ignore[index]
    return copy


@st.composite
def mutated_payloads(draw: st.DrawFn) -> Any:
    document = draw(st.sampled_from(DOCUMENTED))
    path = draw(st.sampled_from([(), *paths(document)]))
    return replaced(document, path, draw(JSON))


@settings(max_examples=300, deadline=None)
@given(mutated_payloads())
def test_a_whatsapp_payload_with_anything_anywhere_is_read_or_refused(payload: Any) -> None:
    with contextlib.suppress(ValidationError):
        webhook = WebhookPayload.model_validate(payload)
        webhook.inbound(PHONE_NUMBER_ID)
        webhook.receipts(PHONE_NUMBER_ID)


FORMS = [twilio_form(WA_ID, "hola", "SM1", num_media=1), twilio_status("SM2", "undelivered", "63016")]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FORMS), st.dictionaries(st.sampled_from(sorted({k for f in FORMS for k in f})), st.text()))
def test_a_twilio_form_with_any_text_in_any_field_is_read_or_refused(
    form: dict[str, str], changes: dict[str, str]
) -> None:
    fields = form | changes
    # As the endpoint refuses them: a form not shaped as documented, or a sender that is no phone.
    with contextlib.suppress(ValidationError, InvalidPhone):
        IncomingMessage.model_validate(fields).inbound()
    with contextlib.suppress(ValidationError):
        StatusCallback.model_validate(fields).receipt()
