import phonenumbers
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bedel.phones import InvalidPhone, is_dialable, mask_phone, normalize_phone


class TestNormalizePhone:
    @pytest.mark.parametrize(
        ("raw", "key"),
        [
            ("+52155667788", "+5255667788"),
            ("+52 1 55 1234 5678", "+525512345678"),
            ("5215512345678", "+525512345678"),
            ("+52 (55) 1234-5678", "+525512345678"),
            ("55 1234 5678", "+525512345678"),
            ("0034 612 34 56 78", "+34612345678"),
            ("+1 415 555 2671", "+14155552671"),
        ],
    )
    def test_common_shapes_give_the_canonical_key(self, raw: str, key: str) -> None:
        assert normalize_phone(raw) == key

    @pytest.mark.parametrize("raw", ["abc12345678", "+52 55 12a4 5678", "1234567", "+1234567890123456", "", "+"])
    def test_what_cannot_be_a_phone_is_rejected(self, raw: str) -> None:
        with pytest.raises(InvalidPhone):
            normalize_phone(raw)

    @given(st.from_regex(r"\+[2-9][0-9]{7,14}", fullmatch=True))
    @example("+521100000000")
    def test_normalising_is_idempotent(self, raw: str) -> None:
        key = normalize_phone(raw)
        assert normalize_phone(key) == key
        assert key.startswith("+") and key[1:].isdigit() and 8 <= len(key) - 1 <= 15

    @given(st.from_regex(r"[2-9][0-9]{9}", fullmatch=True))
    def test_mexican_mobile_prefix_is_the_same_person(self, national: str) -> None:
        assert normalize_phone(f"+521{national}") == normalize_phone(f"+52{national}")


class TestMaskPhone:
    def test_mask_keeps_only_prefix_and_last_digits(self) -> None:
        masked = mask_phone("+525512345678")
        assert masked == "+52******5678"
        assert "1234" not in masked


@given(st.text(alphabet="0123456789", min_size=8, max_size=15))
def test_is_dialable_agrees_with_parsing_the_number(digits: str) -> None:
    try:
        expected = phonenumbers.is_valid_number(phonenumbers.parse("+" + digits))
    except phonenumbers.NumberParseException:
        expected = False
    assert is_dialable("+" + digits) == expected


@pytest.mark.parametrize(
    ("phone", "dialable"),
    [("+525511112222", True), ("+52155667788", False), ("+390612345678", True), ("+14155552671", True)],
)
def test_is_dialable_knows_real_numbers(phone: str, dialable: bool) -> None:
    assert is_dialable(phone) is dialable
