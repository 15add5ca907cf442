"""The receipt registry: receipts reach what other packages registered, without channels knowing them."""

from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bedel.channels.delivery_errors import explain
from bedel.channels.receipts import Receipts
from bedel.channels.schemas import Receipt
from bedel.delivery import DeliveryStatus


class Listener:
    """Another package's sent messages (as campaign recipients are), keeping what it was told."""

    def __init__(self, heard: list[tuple[Any, ...]]) -> None:
        self.heard = heard

    async def apply_receipt(
        self, vendor_message_id: str, status: DeliveryStatus, code: str | None, error: str | None
    ) -> bool:
        self.heard.append(("apply", vendor_message_id, status, code, error))
        return True

    async def send_again(self, vendor_message_id: str, code: str, error: str, delay: timedelta) -> bool:
        self.heard.append(("send_again", vendor_message_id, code, error, delay))
        return True


class TestReceiptListeners:
    async def test_a_registered_listener_hears_each_receipt_explained(self, session: AsyncSession) -> None:
        heard: list[tuple[Any, ...]] = []
        receipts = Receipts()
        receipts.register(lambda _: Listener(heard))

        changed = await receipts.apply(
            session,
            [
                Receipt("wamid.read", DeliveryStatus.read),
                Receipt("wamid.lost", DeliveryStatus.failed, "131026", "undeliverable"),
                Receipt("wamid.fast", DeliveryStatus.failed, "131056", "pair rate limit"),
            ],
        )

        assert heard == [
            ("apply", "wamid.read", DeliveryStatus.read, None, None),
            ("apply", "wamid.lost", DeliveryStatus.failed, "131026", explain("131026", "undeliverable")),
            ("send_again", "wamid.fast", "131056", explain("131056", "pair rate limit"), timedelta(seconds=30)),
        ]
        # No thread message carries these ids: every change counted is the listener's.
        assert changed == 3

    async def test_every_registered_listener_hears_the_same_receipt(self, session: AsyncSession) -> None:
        first: list[tuple[Any, ...]] = []
        second: list[tuple[Any, ...]] = []
        receipts = Receipts()
        receipts.register(lambda _: Listener(first))
        receipts.register(lambda _: Listener(second))

        assert await receipts.apply(session, [Receipt("wamid.one", DeliveryStatus.delivered)]) == 2
        assert first == second == [("apply", "wamid.one", DeliveryStatus.delivered, None, None)]

    async def test_without_listeners_a_receipt_for_no_thread_message_changes_nothing(
        self, session: AsyncSession
    ) -> None:
        assert await Receipts().apply(session, [Receipt("wamid.unknown", DeliveryStatus.read)]) == 0
