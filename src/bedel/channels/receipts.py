"""Delivery receipts: each outbound message's status moves forward only, whatever order the vendor reports in.

A receipt names a message of a thread, or a campaign recipient (its vendor id is on one or the other).

Business rule: sent < failed < delivered < read (decision 0012). Vendors repeat
and reorder receipts, so a receipt that is not ahead of what is stored changes
nothing; a failure carries the vendor's code and a Spanish explanation for staff.
A failure for sending too fast (130429, 131056) is not the message's fault: it
goes back to `pending` and is sent again after a pause.
"""

from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bedel.campaigns.repository import CampaignRepository
from bedel.channels.delivery_errors import THROTTLE_DELAY_S, explain
from bedel.channels.repository import ContactRepository
from bedel.channels.schemas import Delivery, Receipt
from bedel.channels.service import enqueue_delivery
from bedel.chat.models import DeliveryStatus
from bedel.chat.repository import ThreadRepository


async def apply_receipts(session: AsyncSession, receipts: Iterable[Receipt]) -> int:
    """Apply each receipt to the message its vendor id names; return how many changed a message."""
    threads = ThreadRepository.from_session(session)
    recipients = CampaignRepository.from_session(session)
    changed = 0
    for receipt in receipts:
        vendor_id = receipt.vendor_message_id
        if receipt.status != DeliveryStatus.failed:
            changed += await threads.apply_receipt(vendor_id, receipt.status, None, None)
            changed += await recipients.apply_receipt(vendor_id, receipt.status, None, None)
            continue
        code = receipt.error_code
        error = explain(code, receipt.error_detail)
        if code is not None and code in THROTTLE_DELAY_S:
            changed += await _send_again(session, vendor_id, code, error)
            delay = timedelta(seconds=THROTTLE_DELAY_S[code])
            changed += await recipients.send_again(vendor_id, code, error, delay)
        else:
            changed += await threads.apply_receipt(vendor_id, receipt.status, code, error)
            changed += await recipients.apply_receipt(vendor_id, receipt.status, code, error)
    return changed


async def _send_again(session: AsyncSession, vendor_message_id: str, code: str, error: str) -> bool:
    """Queue the throttled message again, after the pause its code asks for."""
    throttled = await ThreadRepository.from_session(session).requeue_throttled(vendor_message_id, code, error)
    if throttled is None:
        return False
    message_id, phone, text = throttled
    contact = await ContactRepository.from_session(session).get(phone)
    if contact is None:
        return False
    delivery = Delivery(contact.channel, contact.address, phone, text, message_id)
    await enqueue_delivery(session, delivery, delay=timedelta(seconds=THROTTLE_DELAY_S[code]))
    return True
