"""The price table: committed defaults, overridden by BEDEL_MODEL_PRICES."""

import pytest

from bedel.llm.prices import cost, model_prices


class TestPriceTable:
    def test_common_openai_models_have_a_committed_price(self) -> None:
        prices = model_prices({})

        assert prices["gpt-4o-mini"] == (0.15, 0.60)
        assert {"gpt-4o", "gpt-4.1-mini", "gpt-5-mini"} <= prices.keys()

    def test_the_setting_adds_models_and_replaces_prices(self) -> None:
        prices = model_prices({"gpt-4o-mini": (0.1, 0.2), "llama-3.1-8b": (0.0, 0.0)})

        assert prices["gpt-4o-mini"] == (0.1, 0.2)
        assert prices["llama-3.1-8b"] == (0.0, 0.0)
        assert prices["gpt-4o"] == (2.50, 10.00)

    def test_cost_is_per_million_tokens(self) -> None:
        assert cost(model_prices({}), "gpt-4o", 1_000_000, 500_000) == pytest.approx(2.50 + 5.00)

    def test_a_model_without_a_price_has_no_cost(self) -> None:
        assert cost(model_prices({}), "my-local-model", 1000, 1000) is None
