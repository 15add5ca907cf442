"""Delivery receipts: each outbound message's status moves forward only, whatever order the vendor reports in.

Business rule: sent < failed < delivered < read (decision 0011). Vendors repeat
and reorder receipts, so a receipt that is not ahead of what is stored changes
nothing; a failure carries the vendor's code and a Spanish explanation for staff.
"""

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from bedel.channels.delivery_errors import explain
from bedel.channels.schemas import Receipt
from bedel.chat.models import DeliveryStatus
from bedel.chat.repository import ThreadRepository


async def apply_receipts(session: AsyncSession, receipts: Iterable[Receipt]) -> int:
    """Apply each receipt to the message its vendor id names; return how many moved a message forward."""
    threads = ThreadRepository.from_session(session)
    moved = 0
    for receipt in receipts:
        failed = receipt.status == DeliveryStatus.failed
        code = receipt.error_code if failed else None
        error = explain(code, receipt.error_detail) if failed else None
        moved += await threads.apply_receipt(receipt.vendor_message_id, receipt.status, code, error)
    return moved
