"""The PostgreSQL the tests use; `BEDEL_TEST_POSTGRES_URL` points them at another one."""

import os

POSTGRES_URL = os.environ.get("BEDEL_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
