"""Record ids and field values as Salesforce checks them (spec §3.2, §8 "Values").

- Ids are 18 characters: the object's 3-character key prefix, 12 more, and the 3-character
  suffix that makes the id case-insensitive (a checksum over the case of the first 15).
  15-character ids are accepted and extended.
- :func:`coerce` turns a JSON value into the stored value of a field or raises :class:`RowError`
  with the code and message Salesforce gives: ``STRING_TOO_LONG``, ``INVALID_EMAIL_ADDRESS``,
  ``INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST``, ``NUMBER_OUTSIDE_VALID_RANGE``, ``MALFORMED_ID``,
  and for a value of the wrong type ``INVALID_TYPE_ON_FIELD_IN_RECORD`` (Bulk) or
  ``JSON_PARSER_ERROR`` (REST, which fails while reading the body). ``''`` becomes null; numbers
  are rounded half-up to the field's scale; datetimes must be ISO 8601 with ``T`` (a zone is
  optional and defaults to UTC) and are stored as ``2024-01-02T03:04:05.000+0000``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import string
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from crm_assets.sandbox.salesforce_schema import NUMBER_TYPES, Field

SUFFIX_ALPHABET = string.ascii_uppercase + "012345"
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
ID_PATTERN = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-5]{3})?$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATETIME = re.compile(
    r"^(\d{4}-\d{2}-\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?$"
)


class RowError(Exception):
    """One record's failure: a Salesforce status code, message and the fields concerned."""

    def __init__(
        self, code: str, message: str, fields: list[str] | None = None, record_id: str | None = None
    ):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.fields, self.record_id = code, message, fields or [], record_id

    def as_error(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}


def id_suffix(id15: str) -> str:
    out = ""
    for chunk in range(3):
        flags = sum(1 << bit for bit, char in enumerate(id15[chunk * 5 : chunk * 5 + 5]) if char.isupper())
        out += SUFFIX_ALPHABET[flags]
    return out


def make_id(prefix: str, number: int) -> str:
    digits = ""
    while number:
        number, rest = divmod(number, 62)
        digits = BASE62[rest] + digits
    id15 = prefix + "8c" + digits.rjust(10, "0")
    return id15 + id_suffix(id15)


def normalize_id(value: Any) -> str | None:
    """The 18-character form of a well-formed id, else None."""
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        return None
    return value[:15] + id_suffix(value[:15])


def sf_datetime(moment: dt.datetime) -> str:
    moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _type_error(f: Field, value: Any, api: str) -> RowError:
    if api == "rest":
        kind = {"boolean": "boolean", "int": "int", "date": "date", "datetime": "datetime"}.get(
            f.type, "double"
        )
        token = "VALUE_STRING" if isinstance(value, str) else "VALUE_" + type(value).__name__.upper()
        return RowError(
            "JSON_PARSER_ERROR",
            f"Cannot deserialize instance of {kind} from {token} value {value} "
            "or request may be missing a required field at [line:1, column:1]",
            [f.name],
        )
    return RowError(
        "INVALID_TYPE_ON_FIELD_IN_RECORD", f"{f.label}: value not of required type: {value}", [f.name]
    )


def _text(f: Field, value: Any, api: str) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float)):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        raise _type_error(f, value, api)
    if len(text) > f.length:
        raise RowError(
            "STRING_TOO_LONG",
            f"{f.label}: data value too large: {text[:255]} (max length={f.length})",
            [f.name],
        )
    if f.type == "email" and not EMAIL.match(text):
        raise RowError("INVALID_EMAIL_ADDRESS", f"{f.label}: invalid email address: {text}", [f.name])
    if f.restricted_picklist and text not in f.picklist:
        raise RowError(
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            f"{f.label}: bad value for restricted picklist field: {text}",
            [f.name],
        )
    return text


def _decimal(f: Field, value: Any, api: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _type_error(f, value, api)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise _type_error(f, value, api) from None
    if not number.is_finite():
        raise _type_error(f, value, api)
    return number


def _number(f: Field, value: Any, api: str) -> float | int:
    number = _decimal(f, value, api)
    if f.type == "int":
        if number != number.to_integral_value():
            raise _type_error(f, value, api)
        if len(str(abs(int(number)))) > (f.digits or 9):
            raise RowError(
                "NUMBER_OUTSIDE_VALID_RANGE",
                f"{f.label}: value outside of valid range on numeric field: {value}",
                [f.name],
            )
        return int(number)
    rounded = number.quantize(Decimal(1).scaleb(-f.scale), rounding=ROUND_HALF_UP)
    integer_digits = len(str(abs(int(rounded)))) if abs(rounded) >= 1 else 0
    if integer_digits > f.precision - f.scale:
        raise RowError(
            "NUMBER_OUTSIDE_VALID_RANGE",
            f"{f.label}: value outside of valid range on numeric field: {value}",
            [f.name],
        )
    return float(rounded)


def _boolean(f: Field, value: Any, api: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _type_error(f, value, api)


def _date(f: Field, value: Any, api: str) -> str:
    if isinstance(value, str) and DATE.match(value):
        try:
            return dt.date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise _type_error(f, value, api)


def _datetime(f: Field, value: Any, api: str) -> str:
    match = DATETIME.match(value) if isinstance(value, str) else None
    if not match:
        raise _type_error(f, value, api)
    day, hour, minute, second, fraction, zone = match.groups()
    zone = zone or "Z"
    offset = dt.timedelta(0)
    if zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    try:
        moment = dt.datetime.fromisoformat(f"{day}T{hour}:{minute}:{second or '00'}").replace(
            microsecond=int((fraction or "0").ljust(6, "0")[:6]), tzinfo=dt.timezone(offset)
        )
    except ValueError:
        raise _type_error(f, value, api) from None
    return sf_datetime(moment)


def _reference(f: Field, value: Any, api: str) -> str:
    record_id = normalize_id(value)
    if record_id is None:
        raise RowError("MALFORMED_ID", f"{f.label}: id value of incorrect type: {value}", [f.name])
    return record_id


COERCE = {
    "boolean": _boolean,
    "int": _number,
    "date": _date,
    "datetime": _datetime,
    "reference": _reference,
    "id": _reference,
    **{t: _number for t in NUMBER_TYPES},
}


def coerce(f: Field, value: Any, api: str) -> Any:
    """The stored value of `value` for field `f`; None for null (callers apply required/default rules)."""
    if value is None or value == "":
        return None
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        raise _type_error(f, value, api)
    return COERCE.get(f.type, _text)(f, value, api)
