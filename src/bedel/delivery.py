"""Delivery statuses of anything sent over a channel (thread messages, campaign recipients) and their order."""

from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, case


class DeliveryStatus(StrEnum):
    """How a message sent over a channel fared; None for messages that stayed in the HTTP API.

    Statuses only move forward, in this order (see docs/decisions/0012): pending,
    sent, failed, delivered, read. A `failed` receipt does not undo a `delivered`
    one that arrived first (the student's phone has the message), while a
    `delivered` or `read` receipt after a `failed` one wins: it proves arrival.
    """

    pending = "pending"
    sent = "sent"
    failed = "failed"
    delivered = "delivered"
    read = "read"


DELIVERY_ORDER = {status: rank for rank, status in enumerate(DeliveryStatus)}


def delivery_moves_forward(column: Any, status: DeliveryStatus) -> ColumnElement[bool]:
    """SQL: `status` is ahead of the one in `column` (no status at all comes before `pending`).

    For any table with a delivery status column (messages, campaign recipients).
    """
    rank = case({value: order for value, order in DELIVERY_ORDER.items()}, value=column, else_=-1)
    return rank < DELIVERY_ORDER[status]
