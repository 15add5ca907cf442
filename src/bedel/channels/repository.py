import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.channels.models import Channel, ChannelContact
from bedel.db import conflict_insert, utcnow


class ContactRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> "ContactRepository":
        return cls(session)

    async def record_inbound(self, phone: str, channel: Channel, address: str, sent_at: datetime) -> None:
        """Remember where the phone last wrote from; an older message arriving late changes nothing."""
        now = utcnow()
        statement = conflict_insert(self.session, ChannelContact).values(
            id=uuid.uuid4(),
            phone=phone,
            channel=channel,
            address=address,
            last_inbound_at=sent_at,
            created_at=now,
            updated_at=now,
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["phone"],
                set_={
                    "channel": statement.excluded.channel,
                    "address": statement.excluded.address,
                    "last_inbound_at": statement.excluded.last_inbound_at,
                    "updated_at": now,
                },
                where=ChannelContact.last_inbound_at < statement.excluded.last_inbound_at,
            )
        )

    async def take_privacy_notice(self, phone: str, now: datetime) -> bool:
        """Record that the phone gets the privacy notice now; False when it already got it (or never wrote)."""
        result = await self.session.execute(
            update(ChannelContact)
            .where(ChannelContact.phone == phone, ChannelContact.privacy_notice_at.is_(None))
            .values(privacy_notice_at=now)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def get(self, phone: str) -> ChannelContact | None:
        return await self.session.scalar(select(ChannelContact).where(ChannelContact.phone == phone))

    @staticmethod
    def phones_on(channel: Channel) -> Select[str]:
        return select(ChannelContact.phone).where(ChannelContact.channel == channel)

    async def channels_of(self, phones: Sequence[str]) -> dict[str, Channel]:
        rows = await self.session.execute(
            select(ChannelContact.phone, ChannelContact.channel).where(ChannelContact.phone.in_(phones))
        )
        return {phone: Channel(channel) for phone, channel in rows}
