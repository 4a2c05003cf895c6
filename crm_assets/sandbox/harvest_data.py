"""Seed data and record mutations for the Harvest emulator.

Everything here is deterministic: each table draws from its own ``random.Random`` seeded with
``(seed, table)``, so the same seed, scale and anchor give byte-identical records, and the
small reference tables do not change when only the scale changes. Records are plain dicts in
the shape the Harvest API v2 serves them (nested objects, ISO 8601 UTC timestamps with ``Z``);
``harvest.py`` checks them against the catalog at start-up.

The data is meant to exercise a replication pipeline: unicode names, nulls in nullable fields,
multi-line notes longer than 2,000 characters, money decimals, ids of realistic magnitude,
records updated long after creation, several children per parent, running timers and
back-dated entries. References between tables always resolve, and a child never has a newer
``updated_at`` than its parent (a change to a child bumps the parent, as in Harvest).
"""

from __future__ import annotations

import bisect
import calendar
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

DAY = 86_400
HISTORY_DAYS = 400

Record = dict[str, Any]


def iso(epoch: int) -> str:
    """Harvest's datetime format: UTC, second precision, ``Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def iso_day(epoch: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(epoch))


def clock_12h(seconds_of_day: int) -> str:
    """A wall-clock time as a 12-hour Harvest account shows it, e.g. ``3:05pm``."""
    hour, minute = divmod(seconds_of_day // 60, 60)
    hour %= 24
    return f"{(hour % 12) or 12}:{minute:02d}{'am' if hour < 12 else 'pm'}"


# --- text pools --------------------------------------------------------------------------------

FIRST_NAMES = [
    "Kim", "José", "Zoë", "Mårten", "Chloé", "Łukasz", "Amélie", "Søren", "Inês", "Rafael",
    "Hiroshi", "Priya", "Olúwaseun", "François", "Björn", "Małgorzata", "Jürgen", "Keiko",
    "Mateo", "Dmitri", "Aoife", "Emre", "Léa", "Bob", "Nguyễn",
]
LAST_NAMES = [
    "Allen", "Álvarez", "O'Brien", "Dubois", "Kowalski", "Ødegaard", "Nakamura", "García",
    "Smith", "Núñez", "Schröder", "Rossi", "Ivanova", "Çelik", "Kim", "Bianchi", "Haddad",
    "Novák", "Lefèvre", "Powell",
]
CJK_PEOPLE = [("太郎", "田中"), ("美咲", "佐藤"), ("伟", "王"), ("민준", "김")]
CLIENT_NAMES = [
    "123 Industries", "ABC Corp", "Café Olé S.à r.l.", "北京星辰科技有限公司", "Müller & Söhne GmbH",
    "Blue Fjord AS", "Żółć Design Sp. z o.o.", "Smörgåsbord AB", "Crème Brûlée Ltd 🍮",
    "Nordlicht Studios", "São Paulo Digital Ltda.", "Ōkami Games 株式会社", "Tequila Sunrise S.A. de C.V.",
    "Acme Widgets, Inc.", "Δέλτα Analytics", "Northwind Traders", "Rocket Science 🚀 LLC",
    "Initech", "Umbrella Health", "Globex Corporation", "Soylent Foods", "Hooli XYZ",
    "Pied Piper", "Vandelay Industries", "Stark & Wayne Partners",
]
CITIES = [
    ("Anytown, LA 71223", "USA"), ("75011 Paris", "France"), ("10115 Berlin", "Deutschland"),
    ("北京市朝阳区", "中国"), ("0150 Oslo", "Norge"), ("00-001 Warszawa", "Polska"),
    ("São Paulo - SP, 01310-100", "Brasil"), ("東京都渋谷区", "日本"), ("Austin, TX 78701", "USA"),
]
STREETS = ["123 Main St.", "Rue de Rivoli 42", "Unter den Linden 7", "建国路88号", "Karl Johans gate 1",
           "ul. Marszałkowska 10", "Av. Paulista, 1578", "道玄坂1-2-3", "500 Congress Ave, Suite 300"]
CURRENCIES = ["USD", "USD", "USD", "EUR", "EUR", "GBP", "JPY", "CHF", "SEK", "BRL", "CNY"]
PROJECT_NAMES = [
    "Online Store - Phase 1", "Online Store - Phase 2", "Website Redesign", "Mobile App 📱",
    "Data Migration", "Brand Refresh", "Q3 Campaign", "API Integration", "Support Retainer",
    "Cloud Audit ☁", "Onboarding Flow", "Refonte du site", "Datenplattform", "新製品ローンチ",
    "Task Force", "Annual Report", "SEO Sprint", "Design System", "Kundenportal", "Analytics 2.0",
]
TASK_NAMES = [
    "Graphic Design", "Programming", "Project Management", "Research", "Marketing",
    "QA / Testing", "Meetings", "Copywriting", "DevOps", "Data Analysis", "Support",
    "Travel ✈", "Training", "Rédaction", "Übersetzung", "デザインレビュー", "Business Development",
]
ROLE_NAMES = ["Developer", "Designer", "Project Manager", "Sales", "Operations 🛠", "Consultant"]
TIMEZONES = [
    "Eastern Time (US & Canada)", "Pacific Time (US & Canada)", "Mountain Time (US & Canada)",
    "Central Time (US & Canada)", "London", "Paris", "Berlin", "Tokyo", "Beijing", "Brasilia", "UTC",
]
NOTE_PHRASES = [
    "Importing products", "Planning meetings", "Fixed the checkout bug 🐛", "Code review",
    "Weekly sync with client", "Réunion de lancement", "Überarbeitung der Startseite",
    "設計レビュー", "客户电话会议", "Wireframes v2", "Deploy to staging 🚀", "Refactoring the API client",
    "Updated copy — per Zoë's feedback", "Research: competitor pricing", "QA pass on iOS & Android",
    "Data import (CSV, 12k rows)", "Onboarding call ☎", "Sprint planning", "Bugfix #1234",
    "Retro notes: \"ship smaller PRs\"", "Travel to São Paulo", "Invoice prep", "Estimate for phase 2",
    "Workshop 🎉 with stakeholders", "Café with the design team ☕",
]
LINE_DESCRIPTIONS = [
    "Project Management", "Programming", "Graphic Design", "Hosting (annual)", "Licence fee",
    "Phase 2 of the Online Store", "Conception graphique", "Beratung vor Ort", "サーバー保守",
    "Travel expenses", "Support hours 🛠", "Discovery workshop", "Content writing",
]
EXPENSE_CATEGORIES = [
    ("Mileage", "mile", 0.655), ("Kilometergeld", "km", 0.30), ("Lodging", None, None),
    ("Meals 🍝", None, None), ("Entertainment", None, None), ("Transportation ✈", None, None),
    ("Software & Subscriptions", None, None), ("Équipement", None, None), ("Other", None, None),
]
INVOICE_ITEM_CATEGORIES = [("Service", True, False), ("Product", False, True), ("Hosting", False, False),
                           ("Licence", False, False), ("Rabatt / Discount", False, False)]
ESTIMATE_ITEM_CATEGORIES = ["Service", "Product", "Design", "Consulting"]
PAYMENT_GATEWAYS = [(1234, "Linkpoint International"), (2201, "Stripe"), (3310, "PayPal"), (4420, "Authorize.Net")]
EXTERNAL_SERVICES = [
    ("trello.com", "https://trello.com/c/{id}", "https://proxy.harvestfiles.com/production_harvestapp_public/assets/platform_icons/trello.com.png"),
    ("github.com", "https://github.com/{group}/issues/{id}", "https://proxy.harvestfiles.com/production_harvestapp_public/assets/platform_icons/github.com.png"),
    ("app.asana.com", "https://app.asana.com/0/{group}/{id}", "https://proxy.harvestfiles.com/production_harvestapp_public/assets/platform_icons/app.asana.com.png"),
    ("atlassian.net", "https://acme.atlassian.net/browse/{id}", "https://proxy.harvestfiles.com/production_harvestapp_public/assets/platform_icons/atlassian.net.png"),
    ("basecamp.com", "https://3.basecamp.com/{group}/todos/{id}", "https://proxy.harvestfiles.com/production_harvestapp_public/assets/platform_icons/basecamp.com.png"),
]
LONG_PARAGRAPHS = [
    "Summary of the work session: we walked through every open ticket, re-estimated the backlog "
    "and agreed on the acceptance criteria for the next milestone.",
    "Détails : reprise complète du module de facturation, avec gestion des arrondis et des taxes "
    "multiples (TVA 20 %, 5,5 %).",
    "Notizen: Die Schnittstelle liefert jetzt Seiten zu 2000 Datensätzen; Wiederholungen nach "
    "HTTP 429 berücksichtigen den Retry-After-Header.",
    "メモ：クライアントとの定例会議。次回までにデザイン案を三つ用意すること。",
    "Follow-ups 📌: send the revised estimate, book the venue, confirm the travel dates "
    "and update the risk register.",
    "Edge cases checked: empty pages, last page shorter than per_page, unicode in names "
    "(Zoë, Søren, 田中), emoji 🎉 and quotes \"like these\".",
]


def long_text(rng: random.Random, min_chars: int = 2100) -> str:
    """Multi-line text (``\\r\\n`` separated, as Harvest's web forms store it) above 2,000 chars."""
    lines: list[str] = []
    size = 0
    while size < min_chars:
        line = f"{len(lines) + 1}. {rng.choice(LONG_PARAGRAPHS)}"
        lines.append(line)
        size += len(line) + 2
    return "\r\n".join(lines)


def ascii_slug(text: str) -> str:
    """An e-mail-safe slug; falls back to ``user`` for names with no ASCII letters."""
    out = "".join(ch for ch in text.lower() if ch.isascii() and ch.isalnum())
    return out or "user"


def money(x: float) -> float:
    return round(x + 1e-9, 2)


# --- invoice / estimate arithmetic (shared with the modify endpoint) ---------------------------


def apply_totals(doc: Record, line_items: list[Record], paid: float = 0.0) -> None:
    """Recompute an invoice's or estimate's amounts from its line items and percentages."""
    subtotal = sum(li["amount"] for li in line_items)
    discount = doc.get("discount") or 0.0
    factor = 1 - discount / 100
    taxable = sum(li["amount"] for li in line_items if li["taxed"]) * factor
    taxable2 = sum(li["amount"] for li in line_items if li["taxed2"]) * factor
    doc["discount_amount"] = money(subtotal * discount / 100)
    doc["tax_amount"] = money(taxable * (doc.get("tax") or 0.0) / 100)
    doc["tax2_amount"] = money(taxable2 * (doc.get("tax2") or 0.0) / 100)
    doc["amount"] = money(subtotal - doc["discount_amount"] + doc["tax_amount"] + doc["tax2_amount"])
    if "due_amount" in doc:
        doc["due_amount"] = 0.0 if doc.get("state") in ("paid", "closed") else money(max(0.0, doc["amount"] - paid))


def line_quantity(rng: random.Random) -> float:
    return rng.choice([1.0, 1.0, 2.0, 3.5, 8.0, 10.0, 12.25, 40.0, 100.0, 0.5])


def unit_price(rng: random.Random) -> float:
    return rng.choice([75.0, 100.0, 120.0, 137.5, 150.0, 99.99, 19.95, 1250.0, 45.5, 210.0])


@dataclass
class Dataset:
    """What the seeder produces: root tables by catalog stream name, per-parent children as
    ``(parent_id, record)`` pairs, and the next free id of each embedded collection."""

    anchor: int
    start: int
    roots: dict[str, list[Record]]
    children: dict[str, list[tuple[int, Record]]]
    next_ids: dict[str, int] = field(default_factory=dict)


class Seeder:
    """Builds the whole account, reference tables first so later tables can point at them."""

    def __init__(self, seed: int, scale: float, anchor_epoch: int):
        self.seed = seed
        self.scale = scale
        self.end = anchor_epoch
        self.start = anchor_epoch - HISTORY_DAYS * DAY
        self.roots: dict[str, list[Record]] = {}
        self.children: dict[str, list[tuple[int, Record]]] = {}
        self.next_ids: dict[str, int] = {}

    def rng(self, table: str) -> random.Random:
        return random.Random(f"harvest:{self.seed}:{table}")

    def scaled(self, base: int) -> int:
        return max(1, round(base * self.scale))

    # -- time helpers --

    def created_times(self, rng: random.Random, n: int, lo: int | None = None, hi: int | None = None) -> list[int]:
        lo = self.start if lo is None else lo
        hi = self.end if hi is None else hi
        return sorted(rng.randrange(lo, hi) for _ in range(n))

    def updated_after(self, rng: random.Random, created: int) -> int:
        """Most records are edited later: minutes, days or months after creation."""
        r = rng.random()
        if r < 0.3:
            upd = created
        elif r < 0.45:
            upd = created + rng.randint(1, 3600)
        else:
            upd = created + int(rng.expovariate(1 / 25) * DAY) + rng.randint(DAY, 3 * DAY)
        return min(upd, self.end - 1)

    @staticmethod
    def ids(rng: random.Random, base: int, n: int, max_gap: int = 40) -> list[int]:
        out, cur = [], base
        for _ in range(n):
            cur += rng.randint(1, max_gap)
            out.append(cur)
        return out

    def person(self, rng: random.Random, i: int) -> tuple[str, str]:
        if i % 9 == 4:
            return CJK_PEOPLE[(i // 9) % len(CJK_PEOPLE)]
        return rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)

    def notes(self, rng: random.Random, long_rate: float = 0.01, null_rate: float = 0.08) -> str | None:
        r = rng.random()
        if r < null_rate:
            return None
        if r < null_rate + 0.03:
            return ""
        if r < null_rate + 0.03 + long_rate:
            return long_text(rng)
        if r < 0.3:
            return f"{rng.choice(NOTE_PHRASES)}\r\n- {rng.choice(NOTE_PHRASES)}\r\n- {rng.choice(NOTE_PHRASES)}"
        return rng.choice(NOTE_PHRASES)

    # -- build --

    def build(self) -> Dataset:
        self.clients()
        self.contacts()
        self.users()
        self.roles()
        self.tasks()
        self.projects()
        self.project_tasks()
        self.project_users()
        self.expense_categories()
        self.item_categories()
        self.estimates()
        self.invoices()
        self.expenses()
        self.time_entries()
        self.bump_parents()
        self.rates("billable_rates", "default_hourly_rate", 2_130_000)
        self.rates("cost_rates", "cost_rate", 2_870_000)
        return Dataset(self.end, self.start, self.roots, self.children, self.next_ids)

    def reference_window(self) -> tuple[int, int]:
        """Reference data is mostly created early, so transactions can point at it."""
        return self.start, self.start + 90 * DAY

    def clients(self) -> None:
        rng = self.rng("clients")
        n = 20
        lo, hi = self.reference_window()
        created = self.created_times(rng, n, lo, hi)
        out = []
        for i, (cid, c) in enumerate(zip(self.ids(rng, 5_735_000, n, 400), created)):
            street, (city, country) = rng.choice(STREETS), rng.choice(CITIES)
            address = None if i % 7 == 6 else f"{street}\r\n{city}\r\n{country}"
            out.append({
                "id": cid,
                "name": CLIENT_NAMES[i % len(CLIENT_NAMES)],
                "is_active": i % 8 != 3,
                "address": address,
                "statement_key": f"{rng.getrandbits(128):032x}",
                "currency": rng.choice(CURRENCIES),
                "created_at": iso(c),
                "updated_at": iso(self.updated_after(rng, c)),
            })
        self.roots["clients"] = out
        self.client_by_id = {c["id"]: c for c in out}
        self.client_ref = {c["id"]: {"id": c["id"], "name": c["name"]} for c in out}
        self.active_clients = [c for c in out if c["is_active"]]

    def contacts(self) -> None:
        rng = self.rng("contacts")
        n = self.scaled(40)
        out = []
        for i, (cid, c) in enumerate(zip(self.ids(rng, 4_930_000, n, 60), self.created_times(rng, n))):
            first, last = self.person(rng, i)
            client = rng.choice(self.roots["clients"])
            out.append({
                "id": cid,
                "client": self.client_ref[client["id"]],
                "title": rng.choice(["Owner", "CTO", "Head of Finance", "Directrice artistique", None, ""]),
                "first_name": first,
                "last_name": last,
                "email": None if i % 11 == 5 else f"{ascii_slug(first)}.{ascii_slug(last)}{i}@example.com",
                "phone_office": rng.choice(["+1 555-0100", "+33 1 23 45 67 89", "", None, "(555) 867-5309"]),
                "phone_mobile": rng.choice(["+49 151 2345678", "", None, "+81 90-1234-5678"]),
                "fax": rng.choice(["", None, None, "+1 555-0199"]),
                "created_at": iso(c),
                "updated_at": iso(self.updated_after(rng, c)),
            })
        self.roots["contacts"] = out

    def users(self) -> None:
        rng = self.rng("users")
        n = 25
        lo, hi = self.reference_window()
        created = self.created_times(rng, n, lo, hi)
        out = []
        for i, (uid, c) in enumerate(zip(self.ids(rng, 1_782_800, n, 3000), created)):
            first, last = self.person(rng, i)
            if i == 0:
                access = ["administrator"]
            elif i % 5 == 1:
                access = ["manager", "project_creator", "billable_rates_manager", "managed_projects_invoice_drafter"]
            elif i % 5 == 2:
                access = ["manager", "time_and_expenses_manager"]
            else:
                access = ["member"]
            out.append({
                "id": uid,
                "first_name": first,
                "last_name": last,
                "email": f"{ascii_slug(first)}.{ascii_slug(last)}.{i}@example.com",
                "telephone": rng.choice(["", "", "+1 555-0142", "+44 20 7946 0958", "+81 3-1234-5678"]),
                "timezone": rng.choice(TIMEZONES),
                "has_access_to_all_future_projects": rng.random() < 0.3,
                "is_contractor": i % 6 == 5,
                "is_active": i % 9 != 8,
                "weekly_capacity": rng.choice([126000, 126000, 144000, 72000, 108000]),
                "default_hourly_rate": rng.choice([100.0, 120.0, 150.0, 85.5, None]),
                "cost_rate": rng.choice([50.0, 60.0, 72.25, None]),
                "roles": [],
                "access_roles": access,
                "avatar_url": f"https://cache.harvestapp.com/assets/profile_images/{ascii_slug(first)}_{uid}.png?{c}"
                if i % 4 else "https://d3s3969qhosaug.cloudfront.net/v2/user.png",
                "created_at": iso(c),
                "updated_at": iso(self.updated_after(rng, c)),
            })
        self.roots["users"] = out
        self.user_by_id = {u["id"]: u for u in out}
        self.user_ref = {u["id"]: {"id": u["id"], "name": f"{u['first_name']} {u['last_name']}"} for u in out}
        self.creators = [u for u in out if u["access_roles"][0] in ("administrator", "manager") and u["is_active"]]

    def roles(self) -> None:
        rng = self.rng("roles")
        names = ROLE_NAMES[:5]
        lo, hi = self.reference_window()
        created = self.created_times(rng, len(names), lo, hi)
        users = self.roots["users"]
        out = []
        for name, rid, c in zip(names, self.ids(rng, 617_600, len(names), 30), created):
            members = sorted(u["id"] for u in rng.sample(users, rng.randint(0 if name.startswith("Op") else 2, 8)))
            for uid in members:
                self.user_by_id[uid]["roles"].append(name)
            out.append({"id": rid, "name": name, "user_ids": members, "created_at": iso(c),
                        "updated_at": iso(self.updated_after(rng, c))})
        self.roots["roles"] = out

    def tasks(self) -> None:
        rng = self.rng("tasks")
        n = 15
        lo, hi = self.reference_window()
        out = []
        for i, (tid, c) in enumerate(zip(self.ids(rng, 8_083_300, n, 8), self.created_times(rng, n, lo, hi))):
            out.append({
                "id": tid,
                "name": TASK_NAMES[i],
                "billable_by_default": i % 4 != 3,
                "default_hourly_rate": rng.choice([100.0, 120.0, 0.0, None, 87.5]),
                "is_default": i < 4,
                "is_active": i % 7 != 6,
                "created_at": iso(c),
                "updated_at": iso(self.updated_after(rng, c)),
            })
        self.roots["tasks"] = out
        self.task_ref = {t["id"]: {"id": t["id"], "name": t["name"]} for t in out}

    def projects(self) -> None:
        rng = self.rng("projects")
        n = 30
        lo, hi = self.reference_window()
        out = []
        for i, (pid, c) in enumerate(zip(self.ids(rng, 14_308_000, n, 5000), self.created_times(rng, n, lo, hi + 60 * DAY))):
            client = self.active_clients[i % len(self.active_clients)] if i % 10 else rng.choice(self.roots["clients"])
            fixed = rng.random() < 0.2
            budget_by = rng.choice(["project", "project_cost", "task", "task_fees", "person", "none"])
            starts = c + rng.randint(-20, 20) * DAY
            name = PROJECT_NAMES[i % len(PROJECT_NAMES)]
            if i >= len(PROJECT_NAMES):
                name = f"{name} ({i // len(PROJECT_NAMES) + 1})"
            out.append({
                "id": pid,
                "client": {"id": client["id"], "name": client["name"], "currency": client["currency"]},
                "name": name,
                "code": None if i % 9 == 7 else ("" if i % 9 == 8 else f"P{i + 1:03d}"),
                "is_active": i % 8 != 5,
                "is_billable": i % 6 != 4,
                "is_fixed_fee": fixed,
                "bill_by": rng.choice(["Project", "Tasks", "People", "none"]),
                "hourly_rate": rng.choice([100.0, 150.0, 95.5, None]),
                "budget": None if budget_by == "none" else rng.choice([200.0, 120.5, 1000.0, 37.5]),
                "budget_by": budget_by,
                "budget_is_monthly": rng.random() < 0.2,
                "notify_when_over_budget": rng.random() < 0.6,
                "over_budget_notification_percentage": 80.0,
                "over_budget_notification_date": iso_day(c + 100 * DAY) if i % 5 == 0 else None,
                "show_budget_to_all": rng.random() < 0.3,
                "cost_budget": rng.choice([None, None, 25000.0, 12500.5]),
                "cost_budget_include_expenses": rng.random() < 0.3,
                "fee": rng.choice([5000.0, 12000.0, 7999.99]) if fixed else None,
                "notes": long_text(rng) if i % 10 == 2 else rng.choice(["", None, "Phase 1 of the rollout", "Client prefers e-mail — no calls 📵"]),
                "starts_on": iso_day(starts),
                "ends_on": iso_day(starts + rng.randint(60, 500) * DAY) if i % 3 else None,
                "created_at": iso(c),
                "updated_at": iso(self.updated_after(rng, c)),
            })
        self.roots["projects"] = out
        self.project_by_id = {p["id"]: p for p in out}
        self.project_code_ref = {p["id"]: {"id": p["id"], "name": p["name"], "code": p["code"]} for p in out}
        self.project_name_ref = {p["id"]: {"id": p["id"], "name": p["name"]} for p in out}

    def project_tasks(self) -> None:
        """Task assignments: several per project, a few archived."""
        rng = self.rng("project_tasks")
        pending = []
        for p in self.roots["projects"]:
            p_created = _epoch(p["created_at"])
            for task in rng.sample(self.roots["tasks"], rng.randint(3, 7)):
                c = min(p_created + rng.randint(0, 5 * DAY), self.end - 1)
                pending.append((c, p, task))
        pending.sort(key=lambda x: x[0])
        out = []
        for tid, (c, p, task) in zip(self.ids(rng, 155_505_000, len(pending), 6), pending):
            out.append({
                "id": tid,
                "project": self.project_code_ref[p["id"]],
                "task": self.task_ref[task["id"]],
                "is_active": rng.random() > 0.1,
                "billable": task["billable_by_default"] and p["is_billable"],
                "hourly_rate": task["default_hourly_rate"] if rng.random() < 0.7 else p["hourly_rate"],
                "budget": rng.choice([None, None, None, 40.0, 12.5]),
                "created_at": iso(c),
                "updated_at": iso(self.updated_after(rng, c)),
            })
        self.roots["project_tasks"] = out
        self.task_assignments_by_project: dict[int, list[Record]] = {}
        for ta in out:
            self.task_assignments_by_project.setdefault(ta["project"]["id"], []).append(ta)

    def project_users(self) -> None:
        """User assignments: several per project, some archived; every active user has one."""
        rng = self.rng("project_users")
        pending = []
        users = self.roots["users"]
        covered: set[int] = set()
        for p in self.roots["projects"]:
            p_created = _epoch(p["created_at"])
            for u in rng.sample(users, rng.randint(3, 8)):
                covered.add(u["id"])
                pending.append((min(p_created + rng.randint(0, 10 * DAY), self.end - 1), p, u, rng.random() > 0.15))
        for u in users:
            if u["id"] not in covered:
                p = rng.choice(self.roots["projects"])
                pending.append((min(_epoch(p["created_at"]) + DAY, self.end - 1), p, u, True))
        pending.sort(key=lambda x: x[0])
        out = []
        for uaid, (c, p, u, active) in zip(self.ids(rng, 125_068_000, len(pending), 9), pending):
            default = rng.random() < 0.5
            out.append({
                "id": uaid,
                "project": self.project_code_ref[p["id"]],
                "user": self.user_ref[u["id"]],
                "is_active": active,
                "is_project_manager": rng.random() < 0.25,
                "use_default_rates": default,
                "hourly_rate": u["default_hourly_rate"] if default else rng.choice([100.0, 125.0, 142.5]),
                "budget": rng.choice([None, None, 80.0]),
                "created_at": iso(c),
                "updated_at": iso(self.updated_after(rng, c)),
            })
        self.roots["project_users"] = out
        self.ua_snapshot = {
            ua["id"]: {k: ua[k] for k in ("id", "is_project_manager", "is_active", "budget", "created_at", "updated_at", "hourly_rate")}
            for ua in out
        }
        self.ta_snapshot = {
            ta["id"]: {k: ta[k] for k in ("id", "billable", "is_active", "created_at", "updated_at", "hourly_rate", "budget")}
            for ta in self.roots["project_tasks"]
        }
        self.assignments_for_work = [
            ua for ua in out
            if self.user_by_id[ua["user"]["id"]]["is_active"] and self.task_assignments_by_project.get(ua["project"]["id"])
        ]

    def expense_categories(self) -> None:
        rng = self.rng("expense_categories")
        lo, hi = self.reference_window()
        n = len(EXPENSE_CATEGORIES)
        out = []
        for i, ((name, unit, price), eid, c) in enumerate(zip(EXPENSE_CATEGORIES, self.ids(rng, 4_195_900, n, 20), self.created_times(rng, n, lo, hi))):
            out.append({"id": eid, "name": name, "unit_name": unit, "unit_price": price, "is_active": i != 4,
                        "created_at": iso(c), "updated_at": iso(self.updated_after(rng, c))})
        self.roots["expense_categories"] = out

    def item_categories(self) -> None:
        rng = self.rng("invoice_item_categories")
        lo, hi = self.reference_window()
        n = len(INVOICE_ITEM_CATEGORIES)
        self.roots["invoice_item_categories"] = [
            {"id": iid, "name": name, "use_as_service": svc, "use_as_expense": exp,
             "created_at": iso(c), "updated_at": iso(self.updated_after(rng, c))}
            for (name, svc, exp), iid, c in zip(INVOICE_ITEM_CATEGORIES, self.ids(rng, 1_466_000, n, 20), self.created_times(rng, n, lo, hi))
        ]
        rng = self.rng("estimate_item_categories")
        n = len(ESTIMATE_ITEM_CATEGORIES)
        self.roots["estimate_item_categories"] = [
            {"id": eid, "name": name, "created_at": iso(c), "updated_at": iso(self.updated_after(rng, c))}
            for name, eid, c in zip(ESTIMATE_ITEM_CATEGORIES, self.ids(rng, 1_378_700, n, 20), self.created_times(rng, n, lo, hi))
        ]

    def sender(self, rng: random.Random) -> Record:
        return rng.choice(self.creators)

    def recipients(self, rng: random.Random, client_name: str) -> list[dict[str, str]]:
        out = []
        for j in range(rng.randint(1, 3)):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            out.append({"name": f"{first} {last}", "email": f"{ascii_slug(first)}.{ascii_slug(last)}{j}@{ascii_slug(client_name)[:12] or 'client'}.example"})
        return out

    def document_terms(self, rng: random.Random, i: int, creator: Record) -> Record:
        """The fields invoices and estimates share; amounts are filled by `apply_totals`."""
        return {
            "creator": self.user_ref[creator["id"]],
            "client_key": f"{rng.getrandbits(160):040x}",
            "number": str(1001 + i),
            "purchase_order": rng.choice(["", "", None, f"PO-{rng.randint(1000, 9999)}"]),
            "amount": 0.0,
            "tax": rng.choice([None, 5.0, 8.25, 20.0]),
            "tax_amount": 0.0,
            "tax2": rng.choice([None, None, 2.0]),
            "tax2_amount": 0.0,
            "discount": rng.choice([None, None, 10.0, 2.5]),
            "discount_amount": 0.0,
        }

    def estimates(self) -> None:
        rng = self.rng("estimates")
        n = self.scaled(40)
        created = self.created_times(rng, n, self.start + 20 * DAY)
        line_id = 53_334_000
        out, messages = [], []
        self.estimates_by_client: dict[int, list[Record]] = {}
        msg_rng = self.rng("estimate_messages")
        for i, (eid, c) in enumerate(zip(self.ids(rng, 1_439_800, n, 12), created)):
            client = rng.choice(self.active_clients)
            creator = self.sender(rng)
            state = rng.choices(["draft", "sent", "accepted", "declined"], [2, 4, 5, 2])[0]
            sent = c + rng.randint(600, 5 * DAY) if state != "draft" else None
            decided = sent + rng.randint(DAY, 20 * DAY) if sent and state in ("accepted", "declined") else None
            if sent and sent >= self.end:
                sent, decided, state = None, None, "draft"
            if decided and decided >= self.end:
                decided, state = None, "sent"
            items = []
            for _ in range(rng.randint(1, 5)):
                line_id += rng.randint(1, 30)
                q, up = line_quantity(rng), unit_price(rng)
                items.append({"id": line_id, "kind": rng.choice(ESTIMATE_ITEM_CATEGORIES),
                              "description": rng.choice(LINE_DESCRIPTIONS), "quantity": q, "unit_price": up,
                              "amount": money(q * up), "taxed": rng.random() < 0.6, "taxed2": rng.random() < 0.2})
            est = {
                "id": eid,
                "client": self.client_ref[client["id"]],
                **self.document_terms(rng, i, creator),
                "subject": f"{rng.choice(PROJECT_NAMES)} — estimate",
                "notes": self.notes(rng, long_rate=0.05, null_rate=0.2),
                "currency": client["currency"],
                "state": state,
                "issue_date": iso_day(c - rng.randint(0, 3) * DAY),
                "sent_at": iso(sent) if sent else None,
                "accepted_at": iso(decided) if state == "accepted" else None,
                "declined_at": iso(decided) if state == "declined" else None,
                "created_at": iso(c),
                "updated_at": iso(max(self.updated_after(rng, c), decided or sent or c)),
                "line_items": items,
            }
            apply_totals(est, items)
            out.append(est)
            self.estimates_by_client.setdefault(client["id"], []).append(est)
            if sent:
                events = [None] + [msg_rng.choice(["send", "view", "re-open", None]) for _ in range(msg_rng.randint(0, 3))]
                if state in ("accepted", "declined"):
                    events.append("accept" if state == "accepted" else "decline")
                t = sent
                for ev in events:
                    t = min(t + msg_rng.randint(60, 4 * DAY), self.end - 1)
                    messages.append((t, eid, ev, client, est))
        self.next_ids["estimate_line_items"] = line_id + 1
        self.roots["estimates"] = out
        self.children["estimate_messages"] = self.messages(msg_rng, messages, 3_250_000, estimate=True)

    def messages(self, rng: random.Random, pending: list[tuple], base: int, estimate: bool) -> list[tuple[int, Record]]:
        pending.sort(key=lambda x: x[0])
        out = []
        for mid, (t, parent_id, event, client, doc) in zip(self.ids(rng, base, len(pending), 25), pending):
            sender = self.sender(rng)
            name = f"{sender['first_name']} {sender['last_name']}"
            kind = "Estimate" if estimate else "Invoice"
            rec: Record = {
                "id": mid,
                "sent_by": name,
                "sent_by_email": sender["email"],
                "sent_from": name,
                "sent_from_email": sender["email"],
                "recipients": self.recipients(rng, client["name"]),
                "subject": f"{kind} #{doc['number']} from Sandbox Studio",
                "body": long_text(rng) if rng.random() < 0.05 else
                f"Hi {client['name']},\r\n\r\nPlease find {kind.lower()} #{doc['number']} attached. Merci ! 🙏\r\n\r\nBest,\r\n{name}",
            }
            if not estimate:
                rec["include_link_to_client_invoice"] = rng.random() < 0.5
                rec["attach_pdf"] = rng.random() < 0.7
            rec["send_me_a_copy"] = rng.random() < 0.3
            if not estimate:
                reminder = event is None and rng.random() < 0.2
                rec["thank_you"] = doc["state"] == "paid" and rng.random() < 0.3
                rec["reminder"] = reminder
                rec["send_reminder_on"] = iso_day(t + 7 * DAY) if reminder else None
            rec["event_type"] = event
            rec["created_at"] = iso(t)
            rec["updated_at"] = iso(t if rng.random() < 0.8 else min(t + rng.randint(1, 3 * DAY), self.end - 1))
            out.append((parent_id, rec))
        return out

    def invoices(self) -> None:
        rng = self.rng("invoices")
        pay_rng = self.rng("invoice_payments")
        msg_rng = self.rng("invoice_messages")
        n = self.scaled(120)
        created = self.created_times(rng, n, self.start + 30 * DAY)
        line_id = 53_341_000
        out, messages, payments = [], [], []
        projects_by_client: dict[int, list[Record]] = {}
        for p in self.roots["projects"]:
            projects_by_client.setdefault(p["client"]["id"], []).append(p)
        terms = {"upon receipt": 0, "net 15": 15, "net 30": 30, "net 45": 45, "net 60": 60, "custom": 21}
        billed_clients = [cl for cl in self.active_clients if cl["id"] in projects_by_client] or self.active_clients
        for i, (iid, c) in enumerate(zip(self.ids(rng, 13_150_000, n, 40), created)):
            client = rng.choice(billed_clients)
            client_projects = projects_by_client.get(client["id"]) or self.roots["projects"]
            creator = self.sender(rng)
            state = rng.choices(["draft", "open", "paid", "closed"], [15, 35, 40, 10])[0]
            issue = c - rng.randint(0, 2) * DAY
            term = rng.choice(list(terms))
            sent = c + rng.randint(300, 3 * DAY) if state != "draft" else None
            if sent and sent >= self.end:
                sent, state = None, "draft"
            items = []
            for _ in range(rng.randint(1, 6)):
                line_id += rng.randint(1, 30)
                q, up = line_quantity(rng), unit_price(rng)
                project = None if rng.random() < 0.1 else self.project_code_ref[rng.choice(client_projects)["id"]]
                items.append({"id": line_id, "project": project,
                              "kind": rng.choice(["Service", "Service", "Product", "Hosting"]),
                              "description": rng.choice(LINE_DESCRIPTIONS) if rng.random() > 0.02 else long_text(rng),
                              "quantity": q, "unit_price": up, "amount": money(q * up),
                              "taxed": rng.random() < 0.6, "taxed2": rng.random() < 0.2})
            estimates = [e for e in self.estimates_by_client.get(client["id"], []) if e["state"] == "accepted"]
            inv = {
                "id": iid,
                "client": self.client_ref[client["id"]],
                "estimate": {"id": rng.choice(estimates)["id"]} if estimates and rng.random() < 0.3 else None,
                "retainer": {"id": 89_000 + i} if rng.random() < 0.03 else None,
                **self.document_terms(rng, i, creator),
                "due_amount": 0.0,
                "subject": f"{client_projects[0]['name']} — {iso_day(issue)[:7]}",
                "notes": self.notes(rng, long_rate=0.05, null_rate=0.2),
                "currency": client["currency"],
                "state": state,
                "period_start": iso_day(issue - 30 * DAY) if i % 3 else None,
                "period_end": iso_day(issue - DAY) if i % 3 else None,
                "issue_date": iso_day(issue),
                "due_date": iso_day(issue + terms[term] * DAY),
                "payment_term": term,
                "payment_options": rng.choice([[], ["credit_card"], ["ach", "credit_card"], ["paypal"]]),
                "sent_at": iso(sent) if sent else None,
                "paid_at": None,
                "paid_date": None,
                "closed_at": None,
                "recurring_invoice_id": 4_200_000 + i if rng.random() < 0.05 else None,
                "created_at": iso(c),
                "updated_at": "",
                "line_items": items,
            }
            apply_totals(inv, items)
            last = sent or c
            paid_total = 0.0
            if state in ("paid", "open") and sent:
                parts = rng.randint(1, 2) if state == "paid" else (1 if rng.random() < 0.25 else 0)
                t = sent
                for k in range(parts):
                    t = t + rng.randint(DAY, 20 * DAY)
                    if t >= self.end:
                        break
                    amount = inv["amount"] - paid_total if (state == "paid" and k == parts - 1) else money(inv["amount"] * rng.choice([0.25, 0.5]))
                    payments.append((t, iid, money(amount), client))
                    paid_total = money(paid_total + amount)
                    last = t
                if state == "paid" and paid_total < inv["amount"]:
                    state = inv["state"] = "open"
                if state == "paid":
                    inv["paid_at"], inv["paid_date"] = iso(last), iso_day(last)
            if state == "closed":
                last = min(last + rng.randint(DAY, 30 * DAY), self.end - 1)
                inv["closed_at"] = iso(last)
            apply_totals(inv, items, paid_total)
            inv["updated_at"] = iso(max(self.updated_after(rng, c), last))
            out.append(inv)
            if sent:
                events = [None] + [msg_rng.choice([None, "send", "re-open"]) for _ in range(msg_rng.choices([0, 1, 2, 4], [5, 3, 2, 1])[0])]
                if state == "closed":
                    events.append("close")
                t = sent
                for ev in events:
                    t = min(t + msg_rng.randint(60, 5 * DAY), self.end - 1)
                    messages.append((t, iid, ev, client, inv))
            elif msg_rng.random() < 0.1:
                messages.append((min(c + 60, self.end - 1), iid, "draft", client, inv))
        self.next_ids["invoice_line_items"] = line_id + 1
        self.roots["invoices"] = out
        self.invoices_by_client: dict[int, list[Record]] = {}
        self.invoice_created_keys: dict[int, list[int]] = {}
        for inv in out:
            if inv["state"] != "draft":
                self.invoices_by_client.setdefault(inv["client"]["id"], []).append(inv)
        self.children["invoice_messages"] = self.messages(msg_rng, messages, 27_211_000, estimate=False)
        self.children["invoice_payments"] = self.payments(pay_rng, payments)

    def payments(self, rng: random.Random, pending: list[tuple]) -> list[tuple[int, Record]]:
        pending.sort(key=lambda x: x[0])
        out = []
        for pid, (t, invoice_id, amount, client) in zip(self.ids(rng, 10_112_800, len(pending), 30), pending):
            recorder = self.sender(rng)
            gateway = rng.choice(PAYMENT_GATEWAYS) if rng.random() < 0.6 else None
            paid_at = t - t % DAY
            out.append((invoice_id, {
                "id": pid,
                "amount": amount,
                "paid_at": iso(paid_at),
                "paid_date": iso_day(paid_at),
                "recorded_by": f"{recorder['first_name']} {recorder['last_name']}",
                "recorded_by_email": recorder["email"],
                "notes": rng.choice(["Paid via check #4321", "Virement reçu ✔", "", None, "Teilzahlung"]),
                "transaction_id": f"txn_{rng.getrandbits(64):016x}" if gateway else None,
                # With no gateway Harvest still sends the object, with null members (§6.11).
                "payment_gateway": {"id": gateway[0], "name": gateway[1]} if gateway else {"id": None, "name": None},
                "created_at": iso(t),
                "updated_at": iso(t),
            }))
        return out

    def rates(self, table: str, user_field: str, base: int) -> None:
        """A user's rate history (billable or cost): up to three rates, each ending the day
        before the next starts; the current one is the user's ``default_hourly_rate`` or
        ``cost_rate``, and a user without that rate has no history."""
        rng = self.rng(table)
        out: list[tuple[int, Record]] = []
        next_id = base
        for user in self.roots["users"]:
            current = user[user_field]
            if current is None:
                continue
            starts = [_epoch(user["created_at"])]
            for _ in range(rng.randint(0, 2)):
                later = starts[-1] + rng.randint(30, 150) * DAY
                if later < self.end:
                    starts.append(later)
            amounts = [rng.choice([60.0, 75.0, 90.0, 110.0, 45.5]) for _ in starts[:-1]] + [current]
            for k, (start, amount) in enumerate(zip(starts, amounts)):
                next_id += rng.randint(1, 50)
                end = iso_day(starts[k + 1] - DAY) if k + 1 < len(starts) else None
                stamp = iso(start + rng.randint(0, 3600))
                out.append((user["id"], {"id": next_id, "amount": amount, "start_date": iso_day(start), "end_date": end,
                                         "created_at": stamp, "updated_at": stamp}))
        self.children[table] = out

    def billed_invoice(self, rng: random.Random, client_id: int, created: int) -> Record | None:
        """An invoice of the same client issued after the work was logged, if there is one."""
        invoices = self.invoices_by_client.get(client_id)
        if not invoices:
            return None
        keys = self.invoice_created_keys.get(client_id)
        if keys is None:
            keys = self.invoice_created_keys[client_id] = [_epoch(inv["created_at"]) for inv in invoices]
        k = bisect.bisect_right(keys, created)
        if k >= len(invoices):
            return None
        return invoices[min(len(invoices) - 1, k + rng.randint(0, 2))]

    def expenses(self) -> None:
        rng = self.rng("expenses")
        n = self.scaled(300)
        categories = self.roots["expense_categories"]
        out = []
        for i, (xid, c) in enumerate(zip(self.ids(rng, 15_296_000, n, 30), self.created_times(rng, n))):
            ua = rng.choice(self.assignments_for_work)
            project = self.project_by_id[ua["project"]["id"]]
            client = self.client_by_id[project["client"]["id"]]
            cat = rng.choice(categories)
            spent = c - rng.randint(0, 10) * DAY if rng.random() < 0.3 else c
            spent = max(spent, self.start)
            units = float(rng.randint(5, 400)) if cat["unit_price"] else None
            total = money(units * cat["unit_price"]) if units else rng.choice([12.5, 49.99, 230.0, 1180.4, 8.75, 99.0])
            billable = project["is_billable"] and rng.random() < 0.7
            invoice = self.billed_invoice(rng, client["id"], c) if billable and rng.random() < 0.4 else None
            locked = invoice is not None or rng.random() < 0.1
            receipt = None
            if rng.random() < 0.4:
                ext, ctype = rng.choice([("pdf", "application/pdf"), ("jpg", "image/jpeg"), ("png", "image/png")])
                receipt = {"url": f"https://sandbox.harvestapp.com/expenses/{xid}/receipt", "file_name": f"receipt_{i}.{ext}",
                           "file_size": rng.randint(20_000, 4_000_000), "content_type": ctype}
            out.append({
                "id": xid,
                "client": {"id": client["id"], "name": client["name"], "currency": client["currency"]},
                "project": self.project_code_ref[project["id"]],
                "expense_category": {"id": cat["id"], "name": cat["name"], "unit_price": cat["unit_price"], "unit_name": cat["unit_name"]},
                "user": self.user_ref[ua["user"]["id"]],
                "user_assignment": self.ua_snapshot[ua["id"]],
                "receipt": receipt,
                "invoice": {"id": invoice["id"], "number": invoice["number"]} if invoice else None,
                "notes": self.notes(rng, long_rate=0.01),
                "units": units,
                "total_cost": total,
                "billable": billable,
                "is_closed": locked,
                "is_locked": locked,
                "is_billed": invoice is not None,
                "locked_reason": ("Expense is invoiced." if invoice else "Expense is approved.") if locked else None,
                "spent_date": iso_day(spent),
                "created_at": iso(c),
                "updated_at": iso(self.updated_after(rng, c)),
            })
        self.roots["expenses"] = out

    def time_entries(self) -> None:
        rng = self.rng("time_entries")
        n = self.scaled(5000)
        created = self.created_times(rng, n)
        ids = self.ids(rng, 636_708_000, n, 25)
        work = self.assignments_for_work
        tas_by_project = {pid: tas for pid, tas in self.task_assignments_by_project.items()}
        invoice_refs: dict[int, Record] = {}
        days: dict[int, str] = {}
        out = []
        locked_invoiced = "Item Invoiced and Approved and Locked for this Time Period"
        for tid, c in zip(ids, created):
            ua = rng.choice(work)
            pid = ua["project"]["id"]
            project = self.project_by_id[pid]
            client_id = project["client"]["id"]
            ta = rng.choice(tas_by_project[pid])
            user = self.user_by_id[ua["user"]["id"]]
            spent = c - rng.randint(1, 14) * DAY if rng.random() < 0.15 else c
            spent_day = max(spent, self.start) // DAY
            day = days.get(spent_day)
            if day is None:
                day = days[spent_day] = iso_day(spent_day * DAY)
            hours = round(rng.uniform(0.08, 8.0), 2)
            if rng.random() < 0.7:
                begin = rng.randint(16, 34) * 1800
                started, ended = clock_12h(begin), clock_12h(begin + int(hours * 3600))
            else:
                started = ended = None
            billable = ta["billable"] and project["is_billable"]
            invoice = None
            if billable and rng.random() < 0.35:
                inv = self.billed_invoice(rng, client_id, c)
                if inv is not None:
                    invoice = invoice_refs.get(inv["id"])
                    if invoice is None:
                        invoice = invoice_refs[inv["id"]] = {"id": inv["id"], "number": inv["number"]}
            approved = invoice is None and rng.random() < 0.1
            external = None
            if rng.random() < 0.3:
                service, link, icon = rng.choice(EXTERNAL_SERVICES)
                if service == "trello.com":
                    ext_id, group = f"{rng.getrandbits(96):024x}", f"{rng.getrandbits(96):024x}"
                elif service == "atlassian.net":
                    group = rng.choice(["WEB", "OPS", "DATA"])
                    ext_id = f"{group}-{rng.randint(1, 2500)}"
                else:
                    ext_id, group = str(rng.randint(10_000_000, 99_999_999)), rng.choice(["acme/storefront", "Cyberdyne", "1200450"])
                external = {"id": ext_id, "group_id": group, "account_id": rng.choice([None, "1401", "acme"]),
                            "permalink": link.format(id=ext_id, group=group), "service": service, "service_icon_url": icon}
            rate = ta["hourly_rate"] if ta["hourly_rate"] is not None else project["hourly_rate"]
            out.append({
                "id": tid,
                "spent_date": day,
                "user": self.user_ref[user["id"]],
                "user_assignment": self.ua_snapshot[ua["id"]],
                "client": self.client_ref[client_id],
                "project": self.project_name_ref[pid],
                "task": self.task_ref[ta["task"]["id"]],
                "task_assignment": self.ta_snapshot[ta["id"]],
                "external_reference": external,
                "invoice": invoice,
                "hours": hours,
                "hours_without_timer": hours,
                "rounded_hours": math.ceil(hours * 4) / 4,
                "notes": self.notes(rng, long_rate=0.005),
                "is_locked": invoice is not None or approved,
                "locked_reason": locked_invoiced if invoice else ("Item Approved and Locked for this Time Period" if approved else None),
                "is_closed": approved or invoice is not None,
                "is_billed": invoice is not None,
                "timer_started_at": None,
                "started_time": started,
                "ended_time": ended,
                "is_running": False,
                "billable": billable,
                "budgeted": project["budget"] is not None,
                "billable_rate": rate if billable else None,
                "cost_rate": user["cost_rate"],
                "created_at": iso(c),
                "updated_at": iso(self.updated_after(rng, c)),
            })
        self.start_timers(rng, out)
        self.roots["time_entries"] = out

    def start_timers(self, rng: random.Random, entries: list[Record]) -> None:
        """A few users have a timer running on the last seeded day."""
        last_day = iso_day(self.end - DAY)
        running_users: set[int] = set()
        for e in reversed(entries):
            if len(running_users) >= 4:
                break
            if e["spent_date"] != last_day or e["user"]["id"] in running_users or e["invoice"] or e["is_locked"]:
                continue
            running_users.add(e["user"]["id"])
            started = self.end - rng.randint(1800, 6 * 3600)
            elapsed = (self.end - 60 - started) / 3600
            e.update({
                "hours": round(elapsed, 2), "hours_without_timer": 0.0, "rounded_hours": math.ceil(elapsed * 4) / 4,
                "timer_started_at": iso(started), "started_time": clock_12h(started % DAY), "ended_time": None,
                "is_running": True, "created_at": iso(started), "updated_at": iso(self.end - 60),
            })

    def bump_parents(self) -> None:
        """A parent's ``updated_at`` is never older than its per-parent children's."""
        for stream, parent in (("invoice_messages", "invoices"), ("invoice_payments", "invoices"), ("estimate_messages", "estimates")):
            by_id = {r["id"]: r for r in self.roots[parent]}
            for parent_id, rec in self.children[stream]:
                p = by_id[parent_id]
                if rec["updated_at"] > p["updated_at"]:
                    p["updated_at"] = rec["updated_at"]
        for ua in self.roots["project_users"]:
            if ua["is_active"]:
                u = self.user_by_id[ua["user"]["id"]]
                if ua["updated_at"] > u["updated_at"]:
                    u["updated_at"] = ua["updated_at"]


def _epoch(stamp: str) -> int:
    """Seconds since the epoch for a Harvest ``YYYY-MM-DDTHH:MM:SSZ`` timestamp."""
    return calendar.timegm((int(stamp[0:4]), int(stamp[5:7]), int(stamp[8:10]),
                            int(stamp[11:13]), int(stamp[14:16]), int(stamp[17:19])))


def build_dataset(seed: int, scale: float, anchor_epoch: int) -> Dataset:
    return Seeder(seed, scale, anchor_epoch).build()


# --- modifications ---------------------------------------------------------------------------


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
