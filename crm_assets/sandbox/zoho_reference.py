"""What Zoho CRM v8 serves for the six settings tables, written from ``shared/specs/zoho.md``.

The Zoho emulator's routes, envelopes, paging and record shapes come from this module and from
nothing in the rest of ``crm_assets`` (the platform's catalog must not agree with the sandbox by
construction). Section numbers are the spec's: §2.0 the summary table, §2.1-§2.6 the fields.

A shape is a tree of type names and :class:`Obj` / :class:`Arr`. Type names: ``id`` (a string of
1 to 19 digits, §2.0), ``string``, ``integer``, ``decimal``, ``boolean``, ``date``
(``yyyy-MM-dd``), ``datetime`` (ISO-8601, seconds, with ``Z`` or a ``±HH:MM`` offset), ``digits``
(a decimal number written as a string, e.g. ``exchange_rate``). A trailing ``?`` marks a field
that may be null; objects say so with ``nullable=True``. Every listed key is always present.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

API_VERSION = "v8"


@dataclass(frozen=True)
class Obj:
    fields: dict[str, Any]
    nullable: bool = False


@dataclass(frozen=True)
class Arr:
    item: Any


@dataclass(frozen=True)
class Endpoint:
    """One list endpoint of §2.0: path below ``/crm/v8``, envelope key, paging."""

    table: str
    path: str
    envelope: str
    max_per_page: int | None = None  # None: unpaged, no ``info`` block
    replication_key: str | None = None


ENDPOINTS: dict[str, Endpoint] = {e.table: e for e in (
    Endpoint("currencies", "/org/currencies", "currencies", replication_key="modified_time"),
    Endpoint("organization", "/org", "org"),
    Endpoint("profiles", "/settings/profiles", "profiles", max_per_page=200, replication_key="modified_time"),
    Endpoint("roles", "/settings/roles", "roles", replication_key="modified_time__s"),
    Endpoint("territories", "/settings/territories", "territories", max_per_page=2000, replication_key="modified_time"),
    Endpoint("users", "/users", "users", max_per_page=200, replication_key="Modified_Time"),
)}

NAME_ID = Obj({"name": "string", "id": "id"})
NAME_ID_OR_NULL = Obj({"name": "string", "id": "id"}, nullable=True)

CURRENCY = Obj({  # §2.1
    "id": "id", "name": "string", "iso_code": "string", "symbol": "string", "prefix_symbol": "boolean",
    "is_active": "boolean", "is_base": "boolean", "exchange_rate": "digits", "exchange_rate_auto_update": "boolean",
    "exchange_rate_updated_time": "datetime?",
    "format": Obj({"numeral_system": "string", "decimal_places": "digits", "decimal_separator": "string",
                   "thousand_separator": "string"}),
    "created_by": NAME_ID, "created_time": "datetime", "modified_by": NAME_ID, "modified_time": "datetime",
})

ORGANIZATION = Obj({  # §2.2 (types from the v8 OAS ``Org`` schema)
    "id": "id", "company_name": "string", "alias": "string?", "domain_name": "string", "primary_email": "string",
    "primary_zuid": "id", "zgid": "id", "ezgid": "string", "zia_zgid": "integer?", "zia_portal_id": "string?",
    "phone": "string", "mobile": "string?", "fax": "string?", "website": "string", "employee_count": "digits",
    "description": "string?", "street": "string?", "city": "string?", "state": "string?", "zip": "string?",
    "country": "string", "country_code": "string", "time_zone": "string", "currency": "string",
    "currency_symbol": "string", "currency_locale": "string", "iso_code": "string", "mc_status": "boolean",
    "gapps_enabled": "boolean", "translation_enabled": "boolean", "privacy_settings": "boolean",
    "hipaa_compliance_enabled": "boolean", "lite_users_enabled": "boolean", "deletable_org_account": "boolean",
    "photo_id": "string?", "type": "string", "created_time": "datetime", "max_per_page": "integer",
    "call_icon": "string", "oauth_presence": "boolean",
    "hierarchy_preferences": Obj({"type": "string", "strictly_reporting": "boolean"}),
    "checkin_preferences": Obj({"restricted_event_types": "string?"}),
    "license_details": Obj({
        "paid": "boolean", "paid_type": "string", "paid_expiry": "datetime?", "trial_type": "string?",
        "trial_expiry": "datetime?", "trial_action": "string?", "users_license_purchased": "integer",
        "portal_users_license_purchased": "integer",
    }),
})

PROFILE = Obj({  # §2.3 (list fields; ``$has_more`` is left out: the spec gives no type for it)
    "id": "id", "name": "string", "display_label": "string", "api_name": "string", "description": "string?",
    "custom": "boolean", "type": "string", "created_time": "datetime?", "created_by": NAME_ID_OR_NULL,
    "modified_time": "datetime?", "modified_by": NAME_ID_OR_NULL,
})

ROLE = Obj({  # §2.4
    "id": "id", "name": "string", "display_label": "string", "api_name": "string", "description": "string?",
    "share_with_peers": "boolean", "reporting_to": NAME_ID_OR_NULL, "forecast_manager": NAME_ID_OR_NULL,
    "admin_user": "boolean", "created_by__s": NAME_ID_OR_NULL, "modified_by__s": NAME_ID_OR_NULL,
    "created_time__s": "datetime?", "modified_time__s": "datetime?",
})

TERRITORY = Obj({  # §2.5 (v8: the parent is ``reporting_to``; v2's ``parent_id`` is gone)
    "id": "id", "name": "string", "api_name": "string", "description": "string?", "permission_type": "string",
    "manager": NAME_ID_OR_NULL, "reporting_to": NAME_ID_OR_NULL, "created_by": NAME_ID, "created_time": "datetime",
    "modified_by": NAME_ID, "modified_time": "datetime",
})

USER = Obj({  # §2.6, mixed case as Zoho spells it; Currency_1, Date_1, Multi_Select_1 are custom fields
    "id": "id", "zuid": "id", "ezuid": "string?", "first_name": "string?", "last_name": "string",
    "full_name": "string", "email": "string", "alias": "string?", "status": "string", "confirm": "boolean",
    "role": NAME_ID, "profile": NAME_ID, "Reporting_To": NAME_ID_OR_NULL, "created_by": NAME_ID,
    "created_time": "datetime", "Modified_By": NAME_ID_OR_NULL, "Modified_Time": "datetime?",
    "phone": "string?", "mobile": "string?", "fax": "string?", "website": "string?", "street": "string?",
    "city": "string?", "state": "string?", "zip": "string?", "country": "string?", "country_locale": "string",
    "locale": "string", "language": "string", "time_zone": "string", "offset": "integer", "time_format": "string",
    "date_format": "string", "decimal_separator": "string", "number_separator": "string", "dob": "date?",
    "signature": "string?", "Currency": "string", "microsoft": "boolean", "personal_account": "boolean",
    "sandboxDeveloper": "boolean", "Isonline": "boolean", "default_tab_group": "string", "image_link": "string?",
    "customize_info": Obj({"notes_desc": "string?", "show_right_panel": "string?", "bc_view": "string?",
                           "show_home": "boolean", "show_detail_view": "boolean", "unpin_recent_item": "string?"}),
    "theme": Obj({"normal_tab": Obj({"font_color": "string", "background": "string"}),
                  "selected_tab": Obj({"font_color": "string", "background": "string"}),
                  "new_background": "string?", "background": "string", "screen": "string", "type": "string"}),
    "$current_shift": NAME_ID_OR_NULL, "$next_shift": NAME_ID_OR_NULL, "$shift_effective_from": "datetime?",
    "type__s": "string", "name_format__s": "string", "sort_order_preference__s": "string",
    "status_reason__s": "string?", "Status_Updated_Time__s": "datetime?", "Invited_Time__s": "datetime?",
    "Confirmed_Time__s": "datetime?", "share_among_subordinates": "boolean", "imap_status": "boolean",
    "telephony_enabled": "boolean", "rtl_enabled": "boolean", "ntc_enabled": "boolean",
    "Currency_1": "decimal?", "Date_1": "date?", "Multi_Select_1": Arr("string"),
})

RECORDS: dict[str, Obj] = {"currencies": CURRENCY, "organization": ORGANIZATION, "profiles": PROFILE,
                           "roles": ROLE, "territories": TERRITORY, "users": USER}

# §2.6 ``type`` values the emulator answers; §9: AllUsers is the default and leaves deleted users out.
USER_TYPES = ("AllUsers", "ActiveUsers", "DeactiveUsers", "ConfirmedUsers", "NotConfirmedUsers", "DeletedUsers",
              "ActiveConfirmedUsers", "AdminUsers", "ActiveConfirmedAdmins", "CurrentUser")

# §2.5: what ``filters`` accepts for territories.
TIME_COMPARATORS = frozenset({"less_equal", "between", "greater_than", "less_than", "equal"})
TEXT_COMPARATORS = frozenset({"equal", "not_equal", "starts_with", "ends_with", "contains", "not_contains"})
ID_FILTER_FIELDS = {"id": ("id",), "reporting_to.id": ("reporting_to", "id"), "manager.id": ("manager", "id"),
                    "permission_type": ("permission_type",), "created_by": ("created_by", "id"),
                    "modified_by": ("modified_by", "id")}

# §1.6 and §4: error bodies.
INVALID_TOKEN = {"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token", "status": "error"}
AUTHENTICATION_FAILURE = {"code": "AUTHENTICATION_FAILURE", "details": {}, "message": "Authentication failed",
                          "status": "error"}
OAUTH_SCOPE_MISMATCH = {"code": "OAUTH_SCOPE_MISMATCH", "details": {}, "message": "Unauthorized", "status": "error"}
CURRENCIES_NOT_ENABLED = {"code": "CURRENCIES_NOT_ENABLED", "details": {}, "message": "Multi currency is not enabled",
                          "status": "error"}
FEATURE_NOT_ENABLED = {"code": "FEATURE_NOT_ENABLED", "details": {}, "message": "Territory Management is not enabled",
                       "status": "error"}
CREDITS_EXCEEDED = "number of API requests for the 24 hour period is exceeded"
CONCURRENCY_EXCEEDED = "concurrency limit of the user for the app is exceeded"


def error_body(code: str, message: str, **details: Any) -> dict[str, Any]:
    """Zoho's request-level error: ``{code, details, message, status: "error"}``."""
    return {"code": code, "details": details, "message": message, "status": "error"}


_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$")
_SCALAR_CHECKS = {
    "id": lambda v: isinstance(v, str) and v.isdigit() and 1 <= len(v) <= 19,
    "string": lambda v: isinstance(v, str),
    "digits": lambda v: isinstance(v, str) and re.fullmatch(r"\d+(\.\d+)?", v) is not None,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "decimal": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "date": lambda v: isinstance(v, str) and re.fullmatch(r"\d{4}-\d\d-\d\d", v) is not None,
    "datetime": lambda v: isinstance(v, str) and _DATETIME.match(v) is not None,
}


def shape_errors(value: Any, shape: Any, where: str = "") -> list[str]:
    """Where ``value`` breaks ``shape``: missing or unknown keys, wrong types, forbidden nulls."""
    if isinstance(shape, Obj):
        if value is None:
            return [] if shape.nullable else [f"{where}: null where the reference has an object"]
        if not isinstance(value, dict):
            return [f"{where}: {type(value).__name__} where the reference has an object"]
        errors = []
        if set(value) != set(shape.fields):
            errors.append(f"{where}: missing {sorted(set(shape.fields) - set(value))}, "
                          f"unknown {sorted(set(value) - set(shape.fields))}")
        for name, sub in shape.fields.items():
            if name in value:
                errors += shape_errors(value[name], sub, f"{where}.{name}")
        return errors
    if isinstance(shape, Arr):
        if not isinstance(value, list):
            return [f"{where}: {value!r} where the reference has an array"]
        return [e for i, item in enumerate(value) for e in shape_errors(item, shape.item, f"{where}[{i}]")]
    kind, nullable = shape.rstrip("?"), shape.endswith("?")
    if value is None:
        return [] if nullable else [f"{where}: null {kind}"]
    return [] if _SCALAR_CHECKS[kind](value) else [f"{where}: {value!r} is not a {kind}"]


def parse_time(text: str) -> dt.datetime:
    """A Zoho timestamp (``Z`` or ``±HH:MM``) as an aware datetime; ValueError when malformed."""
    value = dt.datetime.fromisoformat(text.strip().replace(" ", "+"))
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no offset")
    return value


__all__ = ["API_VERSION", "ENDPOINTS", "RECORDS", "USER_TYPES", "Arr", "Endpoint", "Obj", "error_body",
           "parse_time", "shape_errors"]
