"""Consent to campaigns: the words that change it, and what is kept per phone."""

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.consent.service import opted_out_phones, set_subscription, subscription_request


class TestSubscriptionWords:
    @pytest.mark.parametrize("text", ["BAJA", "  Baja. ", "stop", "Cancelar suscripción", "¡alto!"])
    def test_an_opt_out_word_as_the_whole_message_stops_campaigns(self, text: str) -> None:
        assert subscription_request(text) is False

    @pytest.mark.parametrize("text", ["ALTA", "start", "Unstop"])
    def test_an_opt_in_word_as_the_whole_message_has_them_again(self, text: str) -> None:
        assert subscription_request(text) is True

    @pytest.mark.parametrize("text", [None, "quiero darme de baja", "stop please", ""])
    def test_anything_else_is_not_about_consent(self, text: str | None) -> None:
        assert subscription_request(text) is None


class TestSubscriptions:
    async def test_opting_out_twice_and_back_in_leaves_the_phone_subscribed(self, session: AsyncSession) -> None:
        await set_subscription(session, "+525511112222", False)
        await set_subscription(session, "+525511112222", False)
        await set_subscription(session, "+525533334444", False)
        assert await opted_out_phones(session) == {"+525511112222", "+525533334444"}

        await set_subscription(session, "+525511112222", True)
        assert await opted_out_phones(session, ["+525511112222", "+525533334444"]) == {"+525533334444"}
