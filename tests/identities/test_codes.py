"""One-time codes: six random digits, stored as a hash bound to one identity, read from what the student writes."""

import uuid

import pytest

from bedel.identities.codes import code_in, hash_code, matches, new_code


class TestCodes:
    def test_a_code_is_six_digits(self) -> None:
        codes = {new_code() for _ in range(50)}

        assert all(len(code) == 6 and code.isdigit() for code in codes)
        assert len(codes) > 1

    def test_the_hash_matches_its_code_on_its_identity_only(self) -> None:
        identity, other = uuid.uuid4(), uuid.uuid4()
        stored = hash_code(identity, "048213")

        assert "048213" not in stored
        assert matches(identity, "048213", stored)
        assert not matches(identity, "048214", stored)
        assert not matches(other, "048213", stored)

    @pytest.mark.parametrize(
        ("text", "code"),
        [
            ("048213", "048213"),
            ("mi código es 048213.", "048213"),
            ("12345", None),
            ("1234567", None),
            ("048213 o 111111", None),
            ("A001", None),
        ],
    )
    def test_the_code_is_read_from_a_message(self, text: str, code: str | None) -> None:
        assert code_in(text) == code
