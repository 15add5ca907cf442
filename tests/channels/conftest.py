from collections.abc import Callable

import pytest

from bedel.config import Settings
from tests.channels.vendors import CHANNEL_SETTINGS


@pytest.fixture
def channel_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(**CHANNEL_SETTINGS)
