"""The campaign filter language: whatever staff type is a filter or a named refusal, and a filter
decides any record, whatever its fields hold, without failing."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bedel.campaigns.audience import StudentFilter
from bedel.errors import InvalidInput
from bedel.students.fields import load_field_catalog

CATALOG = load_field_catalog()
FIELDS = ["adeudo", "carrera", "semestre", "meses_vencidos", "beca", "matricula", "name"]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(["$4,500.00", "-3", "Derecho", "DERECHO", "1,2", "", " "]),
)
LITERALS = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(alphabet="abcáéñ $,.-0123456789", max_size=10).map(lambda text: '"' + text + '"'),
)


@st.composite
def expressions(draw: st.DrawFn, depth: int = 3) -> str:
    if depth == 0 or draw(st.booleans()):
        field = draw(st.sampled_from(FIELDS))
        op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in", "not in"]))
        if "in" in op:
            return f"{field} {op} [{', '.join(draw(st.lists(LITERALS, min_size=1, max_size=3)))}]"
        return f"{field} {op} {draw(LITERALS)}"
    joiner = draw(st.sampled_from([" and ", " or "]))
    left, right = draw(expressions(depth - 1)), draw(expressions(depth - 1))
    return ("not " if draw(st.booleans()) else "") + f"({left}{joiner}{right})"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_a_filter_or_a_refusal_naming_the_field(text: str) -> None:
    try:
        StudentFilter(text, CATALOG)
    except InvalidInput as refused:
        assert refused.field == "audience.filter" and str(refused)


@settings(max_examples=300, deadline=None)
@given(expressions(), st.dictionaries(st.sampled_from(FIELDS), VALUES))
def test_a_filter_decides_any_record(expression: str, record: dict[str, object]) -> None:
    assert StudentFilter(expression, CATALOG).matches(record) in (True, False)


@pytest.mark.parametrize(
    "hostile",
    [
        "__import__('os').system('true')",
        "adeudo.__class__ == 1",
        "(lambda: 1)() == 1",
        "adeudo == adeudo",
        "(" * 300 + "adeudo > 1" + ")" * 300,
        "adeudo > 1" + " or adeudo > 1" * 150,
    ],
)
def test_code_and_nesting_are_refused_not_run(hostile: str) -> None:
    with pytest.raises(InvalidInput):
        StudentFilter(hostile, CATALOG)


def test_the_longest_chain_of_negations_still_decides() -> None:
    chain = "not " * 495 + "adeudo > 1"  # just under the length limit
    assert StudentFilter(chain, CATALOG).matches({"adeudo": 5}) is False
