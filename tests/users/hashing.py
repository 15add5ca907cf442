"""Cheap password hashing for tests that sign in: a fixture the users and console conftests install."""

from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher, profiles

from bedel.users import passwords


@pytest.fixture(autouse=True)
def fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """argon2's cheapest parameters: the real ones cost most of a second per sign-in on a busy
    machine. tests/users/test_passwords.py checks the real ones."""
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher.from_parameters(profiles.CHEAPEST))
    passwords.absent_account_hash.cache_clear()
    yield
    passwords.absent_account_hash.cache_clear()
