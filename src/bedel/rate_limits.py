"""Per-phone and per-key request limits, shared by replicas when the storage is Redis."""

import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import ConfigurationError
from limits.storage import storage_from_string

from bedel.config import ConfigError, Settings
from bedel.errors import RateLimited


class RequestLimiter:
    def __init__(self, settings: Settings) -> None:
        try:
            self._per_phone: RateLimitItem = parse(settings.rate_limit_per_phone)
            self._per_key: RateLimitItem = parse(settings.rate_limit_per_key)
        except ValueError as exc:
            raise ConfigError(
                f"BEDEL_RATE_LIMIT_PER_PHONE/BEDEL_RATE_LIMIT_PER_KEY: {exc}; fix them to the form '20/minute'"
            ) from None
        try:
            storage = storage_from_string(f"async+{settings.rate_limit_storage_url}")
        except ConfigurationError:
            raise ConfigError(
                "BEDEL_RATE_LIMIT_STORAGE_URL: unknown storage; use memory:// or redis://host:6379"
            ) from None
        assert isinstance(storage, Storage)
        self._storage = storage
        # Two counters per key: O(1) a hit, where a moving window keeps every hit's timestamp.
        self._limiter = SlidingWindowCounterRateLimiter(storage)

    async def storage_reachable(self) -> bool:
        return await self._storage.check()

    async def check_phone(self, phone: str) -> None:
        await self._hit(self._per_phone, "phone", phone, "too many questions from this phone")

    async def check_key(self, key: str) -> None:
        await self._hit(self._per_key, "key", key, "too many requests with this API key")

    async def _hit(self, item: RateLimitItem, kind: str, identifier: str, message: str) -> None:
        if await self._limiter.hit(item, kind, identifier):
            return
        stats = await self._limiter.get_window_stats(item, kind, identifier)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(f"{message}; retry in {retry_after} s", retry_after=retry_after)
