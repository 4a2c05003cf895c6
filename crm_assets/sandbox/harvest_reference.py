"""What Harvest API v2 serves, written from its reference (``shared/specs/harvest.md``).

The sandbox's routes, envelopes, pagination modes, sort orders, filters and record shapes all
come from this module and from nothing in the rest of ``crm_assets``: the emulator stands
apart from the platform so that it can catch the platform's mistakes instead of sharing them.

Section numbers below are those of the spec: §2.3 sort orders, §3.2 pagination modes, §4.1
``updated_since`` support, §6 the record fields; the rate, report and company shapes come from
the same documentation pages (the OpenAPI scrape the spec cites as [OAS]).

Record shapes are small trees: a type name (``integer``, ``decimal``, ``string``, ``date``,
``datetime``, ``boolean``), :class:`Obj` for a nested object and :class:`Arr` for an array.
Nullability, as the reference writes it: an object is never null unless its row says "or null"
(or "nullable"); arrays are never null (an empty array instead); booleans and a record's own
``id``, ``created_at`` and ``updated_at`` are always set; any other scalar may be null (§2.1:
the examples show nulls in every kind of scalar field, and a payment recorded without a gateway
has a ``payment_gateway`` object whose ``id`` and ``name`` are null).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Obj:
    fields: dict[str, Any]
    nullable: bool = False


@dataclass(frozen=True)
class Arr:
    item: Any


NEVER_NULL_SCALARS = frozenset({"id", "created_at", "updated_at"})

# --- nested objects shared by several records ----------------------------------------------------

REF = Obj({"id": "integer", "name": "string"})
PROJECT_REF = Obj({"id": "integer", "name": "string", "code": "string"})
CLIENT_WITH_CURRENCY = Obj({"id": "integer", "name": "string", "currency": "string"})
USER_ASSIGNMENT_SNAPSHOT = Obj({
    "id": "integer", "is_project_manager": "boolean", "is_active": "boolean", "budget": "decimal",
    "created_at": "datetime", "updated_at": "datetime", "hourly_rate": "decimal",
})
TASK_ASSIGNMENT_SNAPSHOT = Obj({
    "id": "integer", "billable": "boolean", "is_active": "boolean", "created_at": "datetime",
    "updated_at": "datetime", "hourly_rate": "decimal", "budget": "decimal",
})
RECIPIENT = Obj({"name": "string", "email": "string"})
DOCUMENT_MONEY = {k: "decimal" for k in ("amount", "tax", "tax_amount", "tax2", "tax2_amount", "discount", "discount_amount")}

# --- §6 records ---------------------------------------------------------------------------------

RECORDS: dict[str, Obj] = {
    "client": Obj({  # §6.2
        "id": "integer", "name": "string", "is_active": "boolean", "address": "string",
        "statement_key": "string", "currency": "string", "created_at": "datetime", "updated_at": "datetime",
    }),
    "contact": Obj({  # §6.3
        "id": "integer", "client": REF, "title": "string", "first_name": "string", "last_name": "string",
        "email": "string", "phone_office": "string", "phone_mobile": "string", "fax": "string",
        "created_at": "datetime", "updated_at": "datetime",
    }),
    "estimate_item_category": Obj({"id": "integer", "name": "string", "created_at": "datetime", "updated_at": "datetime"}),
    "invoice_item_category": Obj({  # §6.4
        "id": "integer", "name": "string", "use_as_service": "boolean", "use_as_expense": "boolean",
        "created_at": "datetime", "updated_at": "datetime",
    }),
    "estimate": Obj({  # §6.5
        "id": "integer", "client": REF, "creator": REF, "client_key": "string", "number": "string",
        "purchase_order": "string", **DOCUMENT_MONEY, "subject": "string", "notes": "string", "currency": "string",
        "state": "string", "issue_date": "date", "sent_at": "datetime", "accepted_at": "datetime",
        "declined_at": "datetime", "created_at": "datetime", "updated_at": "datetime",
        "line_items": Arr(Obj({
            "id": "integer", "kind": "string", "description": "string", "quantity": "decimal",
            "unit_price": "decimal", "amount": "decimal", "taxed": "boolean", "taxed2": "boolean",
        })),
    }),
    "estimate_message": Obj({  # §6.6
        "id": "integer", "sent_by": "string", "sent_by_email": "string", "sent_from": "string",
        "sent_from_email": "string", "recipients": Arr(RECIPIENT), "subject": "string", "body": "string",
        "send_me_a_copy": "boolean", "event_type": "string", "created_at": "datetime", "updated_at": "datetime",
    }),
    "expense_category": Obj({  # §6.7
        "id": "integer", "name": "string", "unit_name": "string", "unit_price": "decimal", "is_active": "boolean",
        "created_at": "datetime", "updated_at": "datetime",
    }),
    "expense": Obj({  # §6.8; `units` is documented as integer but the docs' own example shows 1.0
        "id": "integer", "client": CLIENT_WITH_CURRENCY, "project": PROJECT_REF,
        "expense_category": Obj({"id": "integer", "name": "string", "unit_price": "decimal", "unit_name": "string"}),
        "user": REF, "user_assignment": USER_ASSIGNMENT_SNAPSHOT,
        "receipt": Obj({"url": "string", "file_name": "string", "file_size": "integer", "content_type": "string"}, nullable=True),
        "invoice": Obj({"id": "integer", "number": "string"}, nullable=True),
        "notes": "string", "units": "decimal", "total_cost": "decimal", "billable": "boolean", "is_closed": "boolean",
        "is_locked": "boolean", "is_billed": "boolean", "locked_reason": "string", "spent_date": "date",
        "created_at": "datetime", "updated_at": "datetime",
    }),
    "invoice": Obj({  # §6.9
        "id": "integer", "client": REF,
        "line_items": Arr(Obj({
            "id": "integer", "project": Obj(PROJECT_REF.fields, nullable=True), "kind": "string",
            "description": "string", "quantity": "decimal", "unit_price": "decimal", "amount": "decimal",
            "taxed": "boolean", "taxed2": "boolean",
        })),
        "estimate": Obj({"id": "integer"}, nullable=True), "retainer": Obj({"id": "integer"}, nullable=True),
        "creator": REF, "client_key": "string", "number": "string", "purchase_order": "string",
        **DOCUMENT_MONEY, "due_amount": "decimal", "subject": "string", "notes": "string", "currency": "string",
        "state": "string", "period_start": "date", "period_end": "date", "issue_date": "date", "due_date": "date",
        "payment_term": "string", "payment_options": Arr("string"), "sent_at": "datetime", "paid_at": "datetime",
        "closed_at": "datetime", "paid_date": "date", "recurring_invoice_id": "integer",
        "created_at": "datetime", "updated_at": "datetime",
    }),
    "invoice_message": Obj({  # §6.10
        "id": "integer", "sent_by": "string", "sent_by_email": "string", "sent_from": "string",
        "sent_from_email": "string", "recipients": Arr(RECIPIENT), "subject": "string", "body": "string",
        "include_link_to_client_invoice": "boolean", "attach_pdf": "boolean", "send_me_a_copy": "boolean",
        "thank_you": "boolean", "reminder": "boolean", "event_type": "string", "send_reminder_on": "date",
        "created_at": "datetime", "updated_at": "datetime",
    }),
    "invoice_payment": Obj({  # §6.11: payment_gateway is an object, not "or null"
        "id": "integer", "amount": "decimal", "paid_at": "datetime", "paid_date": "date", "recorded_by": "string",
        "recorded_by_email": "string", "notes": "string", "transaction_id": "string",
        "payment_gateway": Obj({"id": "integer", "name": "string"}), "created_at": "datetime", "updated_at": "datetime",
    }),
    "project": Obj({  # §6.12
        "id": "integer", "client": CLIENT_WITH_CURRENCY, "name": "string", "code": "string", "is_active": "boolean",
        "is_billable": "boolean", "is_fixed_fee": "boolean", "bill_by": "string", "hourly_rate": "decimal",
        "budget": "decimal", "budget_by": "string", "budget_is_monthly": "boolean",
        "notify_when_over_budget": "boolean", "over_budget_notification_percentage": "decimal",
        "over_budget_notification_date": "date", "show_budget_to_all": "boolean", "cost_budget": "decimal",
        "cost_budget_include_expenses": "boolean", "fee": "decimal", "notes": "string", "starts_on": "date",
        "ends_on": "date", "created_at": "datetime", "updated_at": "datetime",
    }),
    "task_assignment": Obj({  # §6.13
        "id": "integer", "project": PROJECT_REF, "task": REF, "is_active": "boolean", "billable": "boolean",
        "hourly_rate": "decimal", "budget": "decimal", "created_at": "datetime", "updated_at": "datetime",
    }),
    "user_assignment": Obj({  # §6.14
        "id": "integer", "project": PROJECT_REF, "user": REF, "is_active": "boolean", "is_project_manager": "boolean",
        "use_default_rates": "boolean", "hourly_rate": "decimal", "budget": "decimal",
        "created_at": "datetime", "updated_at": "datetime",
    }),
    "role": Obj({  # §6.15
        "id": "integer", "name": "string", "user_ids": Arr("integer"), "created_at": "datetime", "updated_at": "datetime",
    }),
    "task": Obj({  # §6.16
        "id": "integer", "name": "string", "billable_by_default": "boolean", "default_hourly_rate": "decimal",
        "is_default": "boolean", "is_active": "boolean", "created_at": "datetime", "updated_at": "datetime",
    }),
    "time_entry": Obj({  # §6.17; external_reference's fields are all strings
        "id": "integer", "spent_date": "date", "user": REF, "user_assignment": USER_ASSIGNMENT_SNAPSHOT,
        "client": REF, "project": REF, "task": REF, "task_assignment": TASK_ASSIGNMENT_SNAPSHOT,
        "external_reference": Obj({k: "string" for k in ("id", "group_id", "account_id", "permalink", "service",
                                                          "service_icon_url")}, nullable=True),
        "invoice": Obj({"id": "integer", "number": "string"}, nullable=True),
        "hours": "decimal", "hours_without_timer": "decimal", "rounded_hours": "decimal", "notes": "string",
        "is_locked": "boolean", "locked_reason": "string", "is_closed": "boolean", "is_billed": "boolean",
        "timer_started_at": "datetime", "started_time": "string", "ended_time": "string", "is_running": "boolean",
        "billable": "boolean", "budgeted": "boolean", "billable_rate": "decimal", "cost_rate": "decimal",
        "created_at": "datetime", "updated_at": "datetime",
    }),
    "user": Obj({  # §6.18
        "id": "integer", "first_name": "string", "last_name": "string", "email": "string", "telephone": "string",
        "timezone": "string", "has_access_to_all_future_projects": "boolean", "is_contractor": "boolean",
        "is_active": "boolean", "weekly_capacity": "integer", "default_hourly_rate": "decimal", "cost_rate": "decimal",
        "roles": Arr("string"), "access_roles": Arr("string"), "avatar_url": "string",
        "created_at": "datetime", "updated_at": "datetime",
    }),
    "project_assignment": Obj({  # §6.19
        "id": "integer", "is_active": "boolean", "is_project_manager": "boolean", "use_default_rates": "boolean",
        "hourly_rate": "decimal", "budget": "decimal", "created_at": "datetime", "updated_at": "datetime",
        "project": PROJECT_REF, "client": REF,
        "task_assignments": Arr(Obj({**TASK_ASSIGNMENT_SNAPSHOT.fields, "task": REF})),
    }),
    "rate": Obj({  # billable and cost rates: the users-api rate pages
        "id": "integer", "amount": "decimal", "start_date": "date", "end_date": "date",
        "created_at": "datetime", "updated_at": "datetime",
    }),
}

# --- routes -------------------------------------------------------------------------------------

CREATED_DESC = "created_desc"  # §2.3 "creation date, newest first" (ids grow with creation)


@dataclass(frozen=True)
class Endpoint:
    """One list endpoint: ``path`` uses ``{id}`` for a parent's id; ``table`` names the sandbox's
    collection (tap-harvest's table names, §6.1), ``record`` its shape in :data:`RECORDS`.

    ``order`` is :data:`CREATED_DESC`, ``"<date field> desc"`` or ``"start_date asc"``;
    ``filters`` maps a query parameter to the record path it matches (``*`` walks an array);
    ``date_range`` is the field ``from``/``to`` bound.
    """

    path: str
    envelope: str
    table: str
    record: str
    pagination: str = "cursor"
    updated_since: bool = True
    order: str = CREATED_DESC
    filters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    date_range: str | None = None
    default_per_page: int = 2000
    parent: str | None = None

    @property
    def per_parent(self) -> bool:
        return "{id}" in self.path


def _flag(*names: str) -> dict[str, tuple[str, ...]]:
    return {name: (name,) for name in names}


def _ref(*names: str) -> dict[str, tuple[str, ...]]:
    return {f"{name}_id": (name, "id") for name in names}


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("/clients", "clients", "clients", "client", filters=_flag("is_active")),
    Endpoint("/contacts", "contacts", "contacts", "contact", filters=_ref("client")),
    Endpoint("/estimate_item_categories", "estimate_item_categories", "estimate_item_categories", "estimate_item_category"),
    Endpoint("/estimates", "estimates", "estimates", "estimate", pagination="page", order="issue_date desc",
             filters={**_ref("client"), **_flag("state")}, date_range="issue_date"),
    Endpoint("/estimates/{id}/messages", "estimate_messages", "estimate_messages", "estimate_message", parent="estimates"),
    Endpoint("/expense_categories", "expense_categories", "expense_categories", "expense_category", filters=_flag("is_active")),
    Endpoint("/expenses", "expenses", "expenses", "expense", pagination="page", order="spent_date desc",
             filters={**_ref("user", "client", "project"), **_flag("is_billed")}, date_range="spent_date"),
    Endpoint("/invoice_item_categories", "invoice_item_categories", "invoice_item_categories", "invoice_item_category"),
    # /invoices alone still documents "per_page (Default: 100)" (§3.1).
    Endpoint("/invoices", "invoices", "invoices", "invoice", pagination="page", order="issue_date desc",
             filters={**_ref("client"), "project_id": ("line_items", "*", "project", "id"), **_flag("state")},
             date_range="issue_date", default_per_page=100),
    Endpoint("/invoices/{id}/messages", "invoice_messages", "invoice_messages", "invoice_message", parent="invoices"),
    Endpoint("/invoices/{id}/payments", "invoice_payments", "invoice_payments", "invoice_payment", parent="invoices"),
    Endpoint("/projects", "projects", "projects", "project", filters={**_flag("is_active"), **_ref("client")}),
    Endpoint("/task_assignments", "task_assignments", "project_tasks", "task_assignment", filters=_flag("is_active")),
    Endpoint("/user_assignments", "user_assignments", "project_users", "user_assignment",
             filters={**_ref("user"), **_flag("is_active")}),
    Endpoint("/roles", "roles", "roles", "role", updated_since=False),  # §4.1: no updated_since
    Endpoint("/tasks", "tasks", "tasks", "task", filters=_flag("is_active")),
    Endpoint("/time_entries", "time_entries", "time_entries", "time_entry", pagination="page", order="spent_date desc",
             filters={**_ref("user", "client", "project", "task"), "external_reference_id": ("external_reference", "id"),
                      **_flag("is_billed", "is_running")}, date_range="spent_date"),
    Endpoint("/users", "users", "users", "user", filters=_flag("is_active")),
    Endpoint("/users/{id}/project_assignments", "project_assignments", "user_projects", "project_assignment", parent="users"),
    # §3.2 lists them as cursor endpoints; their pages sort by start_date, oldest first.
    Endpoint("/users/{id}/billable_rates", "billable_rates", "billable_rates", "rate", updated_since=False,
             order="start_date asc", parent="users"),
    Endpoint("/users/{id}/cost_rates", "cost_rates", "cost_rates", "rate", updated_since=False,
             order="start_date asc", parent="users"),
    # §3.2: page mode and no updated_since; the same records as /users/{id}/project_assignments.
    Endpoint("/users/me/project_assignments", "project_assignments", "user_projects", "project_assignment",
             pagination="page", updated_since=False, parent="users"),
)
ENDPOINT_BY_PATH = {e.path: e for e in ENDPOINTS}
BOOLEAN_FILTERS = frozenset({"is_active", "is_billed", "is_running"})

# --- single objects and reports -------------------------------------------------------------------

COMPANY = Obj({
    "base_uri": "string", "full_domain": "string", "name": "string", "is_active": "boolean",
    "week_start_day": "string", "wants_timestamp_timers": "boolean", "time_format": "string",
    "date_format": "string", "plan_type": "string", "clock": "string", "currency_code_display": "string",
    "currency_symbol_display": "string", "decimal_symbol": "string", "thousands_separator": "string",
    "color_scheme": "string", "weekly_capacity": "integer", "expense_feature": "boolean",
    "invoice_feature": "boolean", "estimate_feature": "boolean", "approval_feature": "boolean", "team_feature": "boolean",
})
TIME_TOTALS = {"total_hours": "decimal", "billable_hours": "decimal", "currency": "string", "billable_amount": "decimal"}
EXPENSE_TOTALS = {"total_amount": "decimal", "billable_amount": "decimal", "currency": "string"}
CLIENT_COLUMNS = {"client_id": "integer", "client_name": "string"}
PROJECT_COLUMNS = {"project_id": "integer", "project_name": "string", **CLIENT_COLUMNS}
REPORTS: dict[str, Obj] = {
    "/reports/time/clients": Obj({**CLIENT_COLUMNS, **TIME_TOTALS}),
    "/reports/time/projects": Obj({**PROJECT_COLUMNS, **TIME_TOTALS}),
    "/reports/time/tasks": Obj({"task_id": "integer", "task_name": "string", **TIME_TOTALS}),
    "/reports/time/team": Obj({"user_id": "integer", "user_name": "string", "is_contractor": "boolean", **TIME_TOTALS,
                               "weekly_capacity": "integer", "avatar_url": "string"}),
    "/reports/expenses/clients": Obj({**CLIENT_COLUMNS, **EXPENSE_TOTALS}),
    "/reports/expenses/projects": Obj({**PROJECT_COLUMNS, **EXPENSE_TOTALS}),
    "/reports/expenses/categories": Obj({"expense_category_id": "integer", "expense_category_name": "string", **EXPENSE_TOTALS}),
    "/reports/expenses/team": Obj({"user_id": "integer", "user_name": "string", "is_contractor": "boolean", **EXPENSE_TOTALS}),
    "/reports/uninvoiced": Obj({**PROJECT_COLUMNS, "currency": "string", "total_hours": "decimal", "uninvoiced_hours": "decimal",
                                "uninvoiced_expenses": "decimal", "uninvoiced_amount": "decimal"}),
    "/reports/project_budget": Obj({**PROJECT_COLUMNS, "budget_is_monthly": "boolean", "budget_by": "string",
                                    "is_active": "boolean", "budget": "decimal", "budget_spent": "decimal",
                                    "budget_remaining": "decimal"}),
}
REPORTS_WITHOUT_TIMEFRAME = frozenset({"/reports/project_budget"})
REPORT_MAX_DAYS = 365  # §5.1: "cannot exceed 1 year (365 days)"


# --- validation -----------------------------------------------------------------------------------

_SCALAR_CHECKS = {
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "decimal": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "date": lambda v: isinstance(v, str) and len(v) == 10 and v[4] == "-" and v[7] == "-",
    "datetime": lambda v: isinstance(v, str) and len(v) == 20 and v[10] == "T" and v.endswith("Z"),
}


def shape_errors(value: Any, shape: Any, where: str = "", key: str = "", top: bool = True) -> list[str]:
    """Where ``value`` breaks ``shape``: missing or unknown keys, wrong types, forbidden nulls.

    ``top`` marks the fields of the record itself (as opposed to a nested object's)."""
    if isinstance(shape, Obj):
        if value is None:
            return [] if shape.nullable else [f"{where}: null where the reference has an object"]
        if not isinstance(value, dict):
            return [f"{where}: {type(value).__name__} where the reference has an object"]
        errors = []
        if set(value) != set(shape.fields):
            errors.append(f"{where}: missing {sorted(set(shape.fields) - set(value))}, unknown {sorted(set(value) - set(shape.fields))}")
        for name, sub in shape.fields.items():
            if name in value:
                errors += shape_errors(value[name], sub, f"{where}.{name}", name if top else "", top=False)
        return errors
    if isinstance(shape, Arr):
        if not isinstance(value, list):
            return [f"{where}: {value!r} where the reference has an array"]
        return [e for i, item in enumerate(value) for e in shape_errors(item, shape.item, f"{where}[{i}]", top=False)]
    if value is None:
        never_null = shape == "boolean" or key in NEVER_NULL_SCALARS
        return [f"{where}: null {shape}"] if never_null else []
    return [] if _SCALAR_CHECKS[shape](value) else [f"{where}: {value!r} is not a {shape}"]


__all__ = ["ENDPOINTS", "ENDPOINT_BY_PATH", "RECORDS", "REPORTS", "COMPANY", "Arr", "Endpoint", "Obj", "shape_errors"]
