"""Passwords: argon2id with the library's recommended parameters, never stored in clear."""

import pytest
from argon2 import PasswordHasher

from bedel.users import passwords
from bedel.users.passwords import WeakPassword

# Stronger than the cheapest parameters the tests hash with (tests/users/conftest.py).
STRONGER = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1, hash_len=16, salt_len=8)


class TestRealParameters:
    def test_hashes_are_argon2id_with_rfc_9106_low_memory_parameters(self) -> None:
        real = PasswordHasher()
        assert real.time_cost == 3
        assert real.memory_cost == 65536
        hashed = real.hash("una-contraseña-larga")
        assert hashed.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


class TestHashing:
    def test_the_hash_verifies_only_its_password(self) -> None:
        hashed = passwords.hash_password("una-contraseña-larga")
        assert "una-contraseña-larga" not in hashed
        assert passwords.verify_password(hashed, "una-contraseña-larga")
        assert not passwords.verify_password(hashed, "una-contraseña-larga ")

    def test_the_same_password_hashes_differently_each_time(self) -> None:
        assert passwords.hash_password("una-contraseña-larga") != passwords.hash_password("una-contraseña-larga")

    def test_a_damaged_hash_verifies_nothing(self) -> None:
        assert not passwords.verify_password("not-a-hash", "una-contraseña-larga")

    def test_a_hash_with_weaker_parameters_needs_rehashing(self, monkeypatch: pytest.MonkeyPatch) -> None:
        older = passwords.hash_password("x" * 12)
        monkeypatch.setattr(passwords, "_hasher", STRONGER)
        assert passwords.needs_rehash(older)
        assert not passwords.needs_rehash(passwords.hash_password("x" * 12))


class TestRules:
    def test_ten_characters_at_least(self) -> None:
        with pytest.raises(WeakPassword):
            passwords.check_password("123456789")
        passwords.check_password("1234567890")

    def test_at_most_1024(self) -> None:
        with pytest.raises(WeakPassword):
            passwords.check_password("x" * 1025)
