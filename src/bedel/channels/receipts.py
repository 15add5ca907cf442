"""Delivery receipts: each outbound message's status moves forward only, whatever order the vendor reports in.

A receipt names a message of a thread, or something another package sent through a
vendor (a campaign recipient): those packages register a listener at wiring time,
and every receipt is handed to each of them, so channels needs to know none of them.

Business rule: sent < failed < delivered < read (decision 0012). Vendors repeat
and reorder receipts, so a receipt that is not ahead of what is stored changes
nothing; a failure carries the vendor's code and a Spanish explanation for staff.
A failure for sending too fast (130429, 131056) is not the message's fault: it
goes back to `pending` and is sent again after a pause.
"""

from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from bedel.channels.delivery_errors import THROTTLE_DELAY_S, explain
from bedel.channels.repository import ContactRepository
from bedel.channels.schemas import Delivery, Receipt
from bedel.channels.service import enqueue_delivery
from bedel.chat import threads
from bedel.delivery import DeliveryStatus


class ReceiptListener(Protocol):
    """Whatever else a vendor message id may name; each method returns whether it changed something."""

    async def apply_receipt(
        self, vendor_message_id: str, status: DeliveryStatus, code: str | None, error: str | None
    ) -> bool: ...

    async def send_again(self, vendor_message_id: str, code: str, error: str, delay: timedelta) -> bool: ...


class Receipts:
    """Applies receipts to thread messages and to every registered listener, in the caller's transaction."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[AsyncSession], ReceiptListener]] = []

    def register(self, listener: Callable[[AsyncSession], ReceiptListener]) -> None:
        """Hand every receipt from now on also to `listener(session)` (e.g. `CampaignRepository.from_session`)."""
        self._listeners.append(listener)

    async def apply(self, session: AsyncSession, receipts: Iterable[Receipt]) -> int:
        """Apply each receipt to what its vendor id names; return how many messages it changed."""
        owners = [_ThreadMessages(session), *(listener(session) for listener in self._listeners)]
        changed = 0
        for receipt in receipts:
            for owner in owners:
                changed += await _apply(owner, receipt)
        return changed


async def _apply(owner: ReceiptListener, receipt: Receipt) -> bool:
    vendor_id, code = receipt.vendor_message_id, receipt.error_code
    if receipt.status != DeliveryStatus.failed:
        return await owner.apply_receipt(vendor_id, receipt.status, None, None)
    error = explain(code, receipt.error_detail)
    if code is not None and code in THROTTLE_DELAY_S:
        return await owner.send_again(vendor_id, code, error, timedelta(seconds=THROTTLE_DELAY_S[code]))
    return await owner.apply_receipt(vendor_id, receipt.status, code, error)


class _ThreadMessages:
    """The messages of threads: a throttled one is queued again over the channel the student last used."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def apply_receipt(
        self, vendor_message_id: str, status: DeliveryStatus, code: str | None, error: str | None
    ) -> bool:
        return await threads.apply_receipt(self._session, vendor_message_id, status, code, error)

    async def send_again(self, vendor_message_id: str, code: str, error: str, delay: timedelta) -> bool:
        throttled = await threads.requeue_throttled(self._session, vendor_message_id, code, error)
        if throttled is None:
            return False
        message_id, phone, text = throttled
        contact = await ContactRepository.from_session(self._session).get(phone)
        if contact is None:
            return False
        delivery = Delivery(contact.channel, contact.address, phone, text, message_id)
        await enqueue_delivery(self._session, delivery, delay=delay)
        return True
