"""The SOQL a sync needs: ``SELECT fields | COUNT() FROM Object [WHERE ...] [ORDER BY ...] [LIMIT n]
[OFFSET n]``.

``WHERE`` takes comparisons (``= != <> < <= > >=``, ``LIKE`` with ``%``/``_``, ``[NOT] IN (...)``)
joined with ``AND``/``OR``/``NOT`` and parentheses; values are quoted strings, numbers,
``true``/``false``/``null``, dates ``YYYY-MM-DD`` and datetimes ``YYYY-MM-DDThh:mm:ssZ``. Fields
may follow one lookup (``Account.Name``). String comparisons ignore case, as SOQL's do. Errors are
:class:`SoqlError` carrying ``MALFORMED_QUERY``, ``INVALID_FIELD`` or ``INVALID_TYPE``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from crm_assets.sandbox.salesforce_objects import find_object
from crm_assets.sandbox.salesforce_schema import Field, SObject
from crm_assets.sandbox.salesforce_values import RowError, coerce

TOKEN = re.compile(
    r"""\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<dt>\d{4}-\d{2}-\d{2}T[\d:.]+(?:Z|[+-]\d{2}:?\d{2})?)
    |(?P<date>\d{4}-\d{2}-\d{2})|(?P<num>-?\d+(?:\.\d+)?)|(?P<op><=|>=|!=|<>|=|<|>)|(?P<punct>[(),])
    |(?P<word>[A-Za-z_][A-Za-z0-9_.]*))""",
    re.VERBOSE,
)
ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "'": "'", '"': '"', "\\": "\\"}


class SoqlError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class Query:
    obj: SObject
    fields: list[str]  # canonical paths, "Name" or "Account.Name"; empty for COUNT()
    where: Any
    order: list[tuple[str, bool]]  # (path, descending)
    limit: int | None
    offset: int


def _tokens(text: str) -> list[tuple[str, Any]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token at: {text[pos : pos + 30]}")
        kind = match.lastgroup
        value: Any = match.group(kind)
        if kind == "str":
            value = re.sub(r"\\(.)", lambda m: ESCAPES.get(m.group(1), m.group(1)), value[1:-1])
        out.append((kind, value))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, text: str):
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self, word: str | None = None) -> bool:
        if self.pos >= len(self.tokens):
            return False
        kind, value = self.tokens[self.pos]
        return word is None or (kind in ("word", "punct", "op") and str(value).upper() == word)

    def take(self, word: str | None = None) -> tuple[str, Any]:
        if not self.peek(word):
            got = self.tokens[self.pos][1] if self.pos < len(self.tokens) else "end of query"
            raise SoqlError("MALFORMED_QUERY", f"expecting {word or 'a token'}, found '{got}'")
        self.pos += 1
        return self.tokens[self.pos - 1]

    def query(self) -> Query:
        self.take("SELECT")
        fields: list[str] = []
        if self.peek("COUNT"):
            self.take("COUNT"), self.take("("), self.take(")")
        else:
            fields.append(self.take()[1])
            while self.peek(","):
                self.take(",")
                fields.append(self.take()[1])
        self.take("FROM")
        obj = find_object(self.take()[1] if self.peek() else "")
        if obj is None:
            raise SoqlError(
                "INVALID_TYPE", f"sObject type '{self.tokens[self.pos - 1][1]}' is not supported."
            )
        where = None
        if self.peek("WHERE"):
            self.take("WHERE")
            where = self.disjunction(obj)
        order: list[tuple[str, bool]] = []
        if self.peek("ORDER"):
            self.take("ORDER"), self.take("BY")
            while True:
                path = resolve(obj, self.take()[1])
                descending = bool(self.peek("DESC") and self.take("DESC"))
                if self.peek("ASC"):
                    self.take("ASC")
                if self.peek("NULLS"):
                    self.take("NULLS"), self.take()
                order.append((path, descending))
                if not self.peek(","):
                    break
                self.take(",")
        limit = int(self.take("LIMIT") and self.take()[1]) if self.peek("LIMIT") else None
        offset = int(self.take("OFFSET") and self.take()[1]) if self.peek("OFFSET") else 0
        if self.pos != len(self.tokens):
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{self.tokens[self.pos][1]}'")
        return Query(obj, [resolve(obj, f) for f in fields], where, order, limit, offset)

    def disjunction(self, obj: SObject) -> Any:
        terms = [self.conjunction(obj)]
        while self.peek("OR"):
            self.take("OR")
            terms.append(self.conjunction(obj))
        return ("or", terms) if len(terms) > 1 else terms[0]

    def conjunction(self, obj: SObject) -> Any:
        terms = [self.negation(obj)]
        while self.peek("AND"):
            self.take("AND")
            terms.append(self.negation(obj))
        return ("and", terms) if len(terms) > 1 else terms[0]

    def negation(self, obj: SObject) -> Any:
        if self.peek("NOT"):
            self.take("NOT")
            return ("not", self.negation(obj))
        if self.peek("("):
            self.take("(")
            inner = self.disjunction(obj)
            self.take(")")
            return inner
        path = resolve(obj, self.take()[1])
        if self.peek("NOT") or self.peek("IN"):
            negate = bool(self.peek("NOT") and self.take("NOT"))
            self.take("IN"), self.take("(")
            values = [self.value()]
            while self.peek(","):
                self.take(",")
                values.append(self.value())
            self.take(")")
            return ("nin" if negate else "in", path, values)
        if self.peek("LIKE"):
            self.take("LIKE")
            return ("like", path, self.value())
        kind, op = self.take()
        if kind != "op":
            raise SoqlError("MALFORMED_QUERY", f"expecting an operator, found '{op}'")
        return ({"<>": "!="}.get(op, op), path, self.value())

    def value(self) -> Any:
        kind, value = self.take()
        if kind == "num":
            return float(value)
        if kind == "word":
            lowered = value.lower()
            if lowered in ("true", "false", "null"):
                return {"true": True, "false": False, "null": None}[lowered]
            raise SoqlError("MALFORMED_QUERY", f"unexpected value: {value}")
        if kind == "dt":
            return coerce(Field("literal", "datetime", "literal"), value, "rest")
        if kind in ("str", "date"):
            return value
        raise SoqlError("MALFORMED_QUERY", f"unexpected value: {value}")


def resolve(obj: SObject, path: str) -> str:
    """The canonical spelling of a field path, or INVALID_FIELD."""
    head, _, tail = path.partition(".")
    if not tail:
        f = obj.field(head)
        if f is None:
            raise SoqlError(
                "INVALID_FIELD",
                f"No such column '{path}' on entity '{obj.name}'. If you are attempting to "
                "use a custom field, be sure to append the '__c' after the custom field name.",
            )
        return f.name
    relation = obj.by_relationship.get(head.lower())
    target = find_object(relation.reference_to[0]) if relation else None
    if relation is None or target is None or "." in tail:
        raise SoqlError("INVALID_FIELD", f"Didn't understand relationship '{head}' in field path '{path}'.")
    return f"{relation.relationship_name}.{resolve(target, tail)}"


def parse(text: str) -> Query:
    try:
        return _Parser(text).query()
    except RowError as exc:
        raise SoqlError("MALFORMED_QUERY", exc.message) from None


def _comparable(value: Any) -> Any:
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    return value


def matches(condition: Any, read: Any) -> bool:
    """Whether a record (read through ``read(path)``) satisfies a parsed WHERE clause."""
    if condition is None:
        return True
    op = condition[0]
    if op == "and":
        return all(matches(c, read) for c in condition[1])
    if op == "or":
        return any(matches(c, read) for c in condition[1])
    if op == "not":
        return not matches(condition[1], read)
    value, operand = _comparable(read(condition[1])), condition[2]
    if op in ("in", "nin"):
        return (value in [_comparable(v) for v in operand]) == (op == "in")
    if op == "like":
        pattern = re.escape(str(operand).lower()).replace("%", ".*").replace("_", ".")
        return value is not None and re.fullmatch(pattern, str(value)) is not None
    if operand is None or value is None:
        return (
            (value is None) == (operand is None)
            if op == "="
            else ((value is None) != (operand is None) if op == "!=" else False)
        )
    operand = _comparable(operand)
    try:
        return {
            "=": value == operand,
            "!=": value != operand,
            "<": value < operand,
            "<=": value <= operand,
            ">": value > operand,
            ">=": value >= operand,
        }[op]
    except TypeError:
        return False
