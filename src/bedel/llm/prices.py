"""What tokens cost: the committed price table (prices.toml), overridden by BEDEL_MODEL_PRICES.

One rule for every place that shows money: the console's dashboard and the cost metric.
"""

import tomllib
from collections.abc import Mapping
from functools import cache
from importlib import resources

Price = tuple[float, float]  # US dollars per million input tokens, per million output tokens
PER_TOKENS = 1_000_000


@cache
def _committed() -> dict[str, Price]:
    table = tomllib.loads(resources.files("bedel.llm").joinpath("prices.toml").read_text("utf-8"))
    return {model: (float(price[0]), float(price[1])) for model, price in table.items()}


def model_prices(overrides: Mapping[str, Price]) -> dict[str, Price]:
    """The committed table with the setting's models added or replaced."""
    return _committed() | dict(overrides)


def cost(prices: Mapping[str, Price], model: str, input_tokens: int, output_tokens: int) -> float | None:
    """US dollars for these tokens of `model`; None for a model without a price."""
    price = prices.get(model)
    if price is None:
        return None
    return (input_tokens * price[0] + output_tokens * price[1]) / PER_TOKENS
