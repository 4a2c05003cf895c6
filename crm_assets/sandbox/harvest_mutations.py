"""Realistic edits for the Harvest admin API's ``modify`` route."""

from __future__ import annotations

import math
import random

from crm_assets.sandbox.harvest_vocabulary import (
    CITIES, LINE_DESCRIPTIONS, NOTE_PHRASES, STREETS, Record, apply_totals, line_quantity, money, unit_price,
)


class Mutator:
    """Realistic edits for the admin ``modify`` endpoint: each returns a changed copy.

    Nested objects are shared between seeded records (one ``user`` dict per user), so an edit
    always copies before it writes.
    """

    def __init__(self, rng: random.Random, next_ids: dict[str, int]):
        self.rng = rng
        self.next_ids = next_ids

    def new_id(self, kind: str) -> int:
        nid = self.next_ids[kind]
        self.next_ids[kind] = nid + self.rng.randint(1, 9)
        return nid

    def edit(self, stream: str, record: Record) -> Record:
        rec = dict(record)
        method = getattr(self, f"edit_{stream}", None)
        if method is not None:
            method(rec)
        elif "notes" in rec:
            rec["notes"] = self.new_note(rec.get("notes"))
        elif stream == "roles":
            self.edit_roles(rec)
        elif "name" in rec and isinstance(rec["name"], str):
            rec["name"] = rec["name"][:-2] if rec["name"].endswith(" ✓") else f"{rec['name']} ✓"
        return rec

    def new_note(self, old: str | None) -> str:
        base = self.rng.choice(NOTE_PHRASES)
        return f"{base} (edited)" if old != f"{base} (edited)" else f"{base} (edited again)"

    def edit_time_entries(self, rec: Record) -> None:
        rec["notes"] = self.new_note(rec.get("notes"))
        if not rec["is_running"]:
            hours = round(max(0.05, rec["hours"] + self.rng.choice([-0.5, 0.25, 0.5, 1.0])), 2)
            rec["hours"] = rec["hours_without_timer"] = hours
            rec["rounded_hours"] = math.ceil(hours * 4) / 4

    def edit_expenses(self, rec: Record) -> None:
        rec["notes"] = self.new_note(rec.get("notes"))
        rec["total_cost"] = money(rec["total_cost"] + self.rng.choice([-5.0, 2.5, 10.0, 0.99]))

    def edit_clients(self, rec: Record) -> None:
        street, (city, country) = self.rng.choice(STREETS), self.rng.choice(CITIES)
        rec["address"] = f"{street}\r\n{city}\r\n{country}"

    def edit_contacts(self, rec: Record) -> None:
        rec["title"] = self.rng.choice(["Owner", "CFO", "Head of Product", "Gérante", "Einkauf"])
        rec["phone_mobile"] = f"+1 555-{self.rng.randint(1000, 9999)}"

    def edit_users(self, rec: Record) -> None:
        rec["telephone"] = f"+1 555-{self.rng.randint(1000, 9999)}"
        rec["weekly_capacity"] = self.rng.choice([126000, 144000, 108000, 72000])

    def edit_roles(self, rec: Record) -> None:
        rec["name"] = rec["name"][:-2] if rec["name"].endswith(" ✓") else f"{rec['name']} ✓"

    def edit_tasks(self, rec: Record) -> None:
        rec["default_hourly_rate"] = self.rng.choice([90.0, 110.0, 135.5])

    def edit_project_tasks(self, rec: Record) -> None:
        rec["hourly_rate"] = self.rng.choice([90.0, 110.0, 135.5])
        rec["budget"] = self.rng.choice([None, 20.0, 60.0])

    def edit_project_users(self, rec: Record) -> None:
        rec["hourly_rate"] = self.rng.choice([95.0, 115.0, 160.0])
        rec["use_default_rates"] = False

    def edit_projects(self, rec: Record) -> None:
        rec["notes"] = self.new_note(rec.get("notes"))
        rec["budget"] = self.rng.choice([150.0, 300.0, 42.5])

    def edit_invoice_payments(self, rec: Record) -> None:
        rec["notes"] = self.rng.choice(["Corrected amount", "Reference added ✔", "Zahlung bestätigt"])

    def edit_invoices(self, rec: Record) -> None:
        self.edit_document(rec, "invoice_line_items")

    def edit_estimates(self, rec: Record) -> None:
        self.edit_document(rec, "estimate_line_items")

    def edit_document(self, rec: Record, kind: str) -> None:
        """Edit one line item, then add one (or remove one when there are several)."""
        items = [dict(li) for li in rec.get("line_items") or []]
        if items:
            li = items[0]
            li["quantity"] = money(li["quantity"] + self.rng.choice([1.0, 0.5, 2.0]))
            li["description"] = f"{li['description'].split(' (rev')[0]} (rev {self.rng.randint(2, 99)})"
            li["amount"] = money(li["quantity"] * li["unit_price"])
        if len(items) > 1 and self.rng.random() < 0.5:
            items.pop()
        else:
            q, up = line_quantity(self.rng), unit_price(self.rng)
            new = {"id": self.new_id(kind)}
            if kind == "invoice_line_items":
                new["project"] = next((li["project"] for li in items if li.get("project")), None)
            new.update({"kind": "Service", "description": self.rng.choice(LINE_DESCRIPTIONS), "quantity": q,
                        "unit_price": up, "amount": money(q * up), "taxed": True, "taxed2": False})
            items.append(new)
        rec["line_items"] = items
        paid = rec["amount"] - rec["due_amount"] if "due_amount" in rec else 0.0
        apply_totals(rec, items, max(0.0, paid))
