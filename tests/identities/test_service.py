"""Every vendor identifier of a sender maps to one conversation key, on SQLite and PostgreSQL."""

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.identities.models import ChannelIdentity, IdentityKind
from bedel.identities.schemas import Identity
from bedel.identities.service import anonymous_key, identify, is_anonymous

BSUID = "MX.1502576394655843"
PHONE = "+525512345678"


async def mapped(session: AsyncSession) -> dict[tuple[str, str], str]:
    rows = (await session.scalars(select(ChannelIdentity))).all()
    return {(row.kind, row.value): row.phone for row in rows}


class TestAnonymousKey:
    def test_is_stable_fits_a_phone_column_and_is_never_a_phone(self) -> None:
        key = anonymous_key(BSUID)

        assert key == anonymous_key(BSUID) != anonymous_key("MX.1502576394655844")
        assert len(key) <= 16 and not key.startswith("+") and is_anonymous(key)
        assert not is_anonymous(PHONE)


class TestIdentify:
    async def test_a_phone_links_every_identifier_it_came_with(self, session: AsyncSession) -> None:
        sent_with = [Identity(IdentityKind.bsuid, BSUID), Identity(IdentityKind.wa_id, "5215512345678")]

        assert await identify(session, PHONE, sent_with) == PHONE
        assert await mapped(session) == {
            (IdentityKind.bsuid, BSUID): PHONE,
            (IdentityKind.wa_id, "5215512345678"): PHONE,
        }

    async def test_a_linked_business_scoped_id_alone_finds_the_phone(self, session: AsyncSession) -> None:
        await identify(session, PHONE, [Identity(IdentityKind.bsuid, BSUID)])

        key = await identify(session, anonymous_key(BSUID), [Identity(IdentityKind.bsuid, BSUID)])

        assert key == PHONE

    async def test_an_unknown_business_scoped_id_gets_its_anonymous_key(self, session: AsyncSession) -> None:
        alone = [Identity(IdentityKind.bsuid, BSUID)]

        first = await identify(session, anonymous_key(BSUID), alone)
        again = await identify(session, anonymous_key(BSUID), alone)

        assert first == again == anonymous_key(BSUID)
        assert await mapped(session) == {(IdentityKind.bsuid, BSUID): anonymous_key(BSUID)}

    async def test_a_phone_arriving_later_takes_over_an_anonymous_id(self, session: AsyncSession) -> None:
        await identify(session, anonymous_key(BSUID), [Identity(IdentityKind.bsuid, BSUID)])

        await identify(session, PHONE, [Identity(IdentityKind.bsuid, BSUID)])

        assert await mapped(session) == {(IdentityKind.bsuid, BSUID): PHONE}

    @pytest.mark.parametrize("kind", list(IdentityKind))
    async def test_each_kind_is_kept_apart(self, session: AsyncSession, kind: IdentityKind) -> None:
        await identify(session, PHONE, [Identity(kind, "whatsapp:+5215512345678")])
        await identify(session, "+525587654321", [Identity(kind, "whatsapp:+5215587654321")])

        assert await mapped(session) == {
            (kind, "whatsapp:+5215512345678"): PHONE,
            (kind, "whatsapp:+5215587654321"): "+525587654321",
        }
