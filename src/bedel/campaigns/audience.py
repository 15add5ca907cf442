"""Who a campaign reaches: students matching a filter over their fields, or a list of phones and emails.

A filter is a small expression over any record field, by column name as the
institution names it: `meses_vencidos >= 1 and carrera == "Derecho"`,
`beca != ""`, `semestre in [1, 2]`. Numbers compare as numbers even when the
record holds them as text; text compares without regard to case or accents; a
student without the field never matches.
"""

import ast
import functools
import json
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bedel.errors import InvalidInput
from bedel.students.fields import FieldCatalog, normalize_column
from bedel.terms import fold

Fields = dict[str, Any]

_MAX_FILTER_LENGTH = 2000
_NUMBER = re.compile(r"-?\$?\d[\d,]*(\.\d+)?|-?\.\d+")
_ORDER: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


def student_fields(
    *,
    phone: str | None,
    name: str | None,
    email: str | None,
    external_id: str | None,
    attributes: Mapping[str, Any],
) -> Fields:
    """A record as filters and message templates see it: every column by its normalised name."""
    fields: Fields = {_normalized(column): value for column, value in attributes.items()}
    fields.update(phone=phone, name=name, email=email, external_id=external_id)
    return fields


@functools.lru_cache(maxsize=4096)
def _normalized(column: str) -> str:
    return normalize_column(column)


def field_key(catalog: FieldCatalog, name: str) -> str:
    """The key a name written by staff refers to: "Matrícula" and "matricula" both mean external_id."""
    return catalog.identity_role(name) or _normalized(name)


class StudentFilter:
    def __init__(self, expression: str, catalog: FieldCatalog) -> None:
        if not expression.strip() or len(expression) > _MAX_FILTER_LENGTH:
            raise InvalidInput(f"write a filter of 1 to {_MAX_FILTER_LENGTH} characters", field="audience.filter")
        try:
            tree = ast.parse(expression.strip(), mode="eval")
        except SyntaxError as exc:
            raise InvalidInput(f"the filter is not valid: {exc.msg}", field="audience.filter") from None
        self.fields: set[str] = set()
        self._test = self._compile(tree.body, catalog)

    def matches(self, fields: Fields) -> bool:
        return self._test(fields)

    def _compile(self, node: ast.expr, catalog: FieldCatalog) -> Callable[[Fields], bool]:
        if isinstance(node, ast.BoolOp):
            parts = [self._compile(value, catalog) for value in node.values]
            combine = all if isinstance(node.op, ast.And) else any
            return lambda fields: combine(part(fields) for part in parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self._compile(node.operand, catalog)
            return lambda fields: not inner(fields)
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            return self._comparison(node.left, node.ops[0], node.comparators[0], catalog)
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            constant = node.value
            return lambda _: constant
        raise InvalidInput(
            'use comparisons such as `field >= 1` or `field == "text"`, joined by and / or / not',
            field="audience.filter",
        )

    def _comparison(
        self, left: ast.expr, op: ast.cmpop, right: ast.expr, catalog: FieldCatalog
    ) -> Callable[[Fields], bool]:
        if not isinstance(left, ast.Name):
            raise InvalidInput("put the field name on the left of each comparison", field="audience.filter")
        key = field_key(catalog, left.id)
        self.fields.add(key)
        if isinstance(op, ast.In | ast.NotIn):
            if not isinstance(right, ast.List | ast.Tuple):
                raise InvalidInput("`in` takes a list such as [1, 2]", field="audience.filter")
            options = [_literal(item) for item in right.elts]
            wanted = isinstance(op, ast.In)

            def member(fields: Fields) -> bool:
                value = fields.get(key)
                return _present(value) and any(_compare(ast.Eq, value, option) for option in options) == wanted

            return member
        if type(op) not in _ORDER:
            raise InvalidInput("compare with ==, !=, <, <=, >, >=, in or not in", field="audience.filter")
        expected, kind = _literal(right), type(op)

        def compare(fields: Fields) -> bool:
            value = fields.get(key)
            return _present(value) and _compare(kind, value, expected)

        return compare


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, str | int | float | bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        operand = node.operand
        if isinstance(operand, ast.Constant) and isinstance(operand.value, int | float):
            return -operand.value
    raise InvalidInput("compare fields with numbers or quoted text only", field="audience.filter")


def _present(value: Any) -> bool:
    return value is not None


def _compare(kind: type[ast.cmpop], value: Any, expected: Any) -> bool:
    left, right = _number(value), _number(expected)
    if left is not None and right is not None:
        return _ORDER[kind](left, right)
    return _ORDER[kind](fold(str(value)).strip(), fold(str(expected)).strip())


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value.strip().replace("$", "").replace(",", ""))
    return None


class Operator(StrEnum):
    """The comparisons the console's filter builder offers, spelled as the filter writes them."""

    eq = "=="
    ne = "!="
    lt = "<"
    le = "<="
    gt = ">"
    ge = ">="
    one_of = "in"
    none_of = "not in"


@dataclass(frozen=True)
class Condition:
    """One row of the filter builder: a field, a comparison and the value as typed (a list: commas)."""

    field: str
    operator: Operator
    value: str


_PLAIN_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def write_filter(conditions: Sequence[Condition]) -> str:
    """The filter that keeps the students meeting every condition, in the language above."""
    if not conditions:
        raise InvalidInput("add at least one condition", field="audience.filter")
    parts = []
    for condition in conditions:
        if not condition.field.isidentifier():
            raise InvalidInput(f"{condition.field!r} cannot be used in a filter", field="audience.filter")
        if condition.operator in (Operator.one_of, Operator.none_of):
            items = [_written(item) for item in condition.value.split(",") if item.strip()]
            value = "[" + ", ".join(items) + "]"
        else:
            value = _written(condition.value)
        parts.append(f"{condition.field} {condition.operator.value} {value}")
    return " and ".join(parts)


def _written(value: str) -> str:
    # A JSON string is also a Python string literal, so quotes and backslashes in the value stay text.
    value = value.strip()
    return value if _PLAIN_NUMBER.fullmatch(value) else json.dumps(value, ensure_ascii=False)


def check_known(names: Iterable[str], known: set[str], field: str) -> None:
    """Refuse a field no student has: a typo would otherwise reach nobody, or everybody."""
    unknown = sorted(set(names) - known)
    if unknown:
        raise InvalidInput(
            f"no student record has the field {unknown[0]!r}; known fields: {', '.join(sorted(known))}", field=field
        )
