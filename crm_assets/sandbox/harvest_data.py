"""Seed data for the Harvest emulator: the account, built table by table from a seed.

Everything here is deterministic: each table draws from its own ``random.Random`` seeded with
``(seed, table)``, so the same seed, scale and anchor give byte-identical records, and the
small reference tables do not change when only the scale changes. Records are plain dicts in
the shape the Harvest API v2 serves them (nested objects, ISO 8601 UTC timestamps with ``Z``);
``harvest.py`` checks them against ``harvest_reference`` at start-up.

The data is meant to exercise a replication pipeline: unicode names, nulls in nullable fields,
multi-line notes longer than 2,000 characters, money decimals, ids of realistic magnitude,
records updated long after creation, several children per parent, running timers and
back-dated entries. References between tables always resolve, and a child never has a newer
``updated_at`` than its parent (a change to a child bumps the parent, as in Harvest).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from crm_assets.sandbox.harvest_activity import ActivitySeeder
from crm_assets.sandbox.harvest_documents import DocumentSeeder
from crm_assets.sandbox.harvest_vocabulary import (
    CITIES, CJK_PEOPLE, CLIENT_NAMES, CURRENCIES, DAY, ESTIMATE_ITEM_CATEGORIES, EXPENSE_CATEGORIES, FIRST_NAMES,
    HISTORY_DAYS, INVOICE_ITEM_CATEGORIES, LAST_NAMES, NOTE_PHRASES, PROJECT_NAMES, ROLE_NAMES, STREETS,
    TASK_NAMES, TIMEZONES, Record, ascii_slug, iso, iso_day, long_text, stamp_epoch,
)


@dataclass
class Dataset:
    """What the seeder produces: root tables by catalog stream name, per-parent children as
    ``(parent_id, record)`` pairs, and the next free id of each embedded collection."""

    anchor: int
    start: int
    roots: dict[str, list[Record]]
    children: dict[str, list[tuple[int, Record]]]
    next_ids: dict[str, int] = field(default_factory=dict)


class Seeder(DocumentSeeder, ActivitySeeder):
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
            p_created = stamp_epoch(p["created_at"])
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
            p_created = stamp_epoch(p["created_at"])
            for u in rng.sample(users, rng.randint(3, 8)):
                covered.add(u["id"])
                pending.append((min(p_created + rng.randint(0, 10 * DAY), self.end - 1), p, u, rng.random() > 0.15))
        for u in users:
            if u["id"] not in covered:
                p = rng.choice(self.roots["projects"])
                pending.append((min(stamp_epoch(p["created_at"]) + DAY, self.end - 1), p, u, True))
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


def build_dataset(seed: int, scale: float, anchor_epoch: int) -> Dataset:
    return Seeder(seed, scale, anchor_epoch).build()
