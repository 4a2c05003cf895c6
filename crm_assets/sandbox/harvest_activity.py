"""Seeded time entries, expenses and rate histories: the day-to-day activity of the account.

Mixed into :class:`~crm_assets.sandbox.harvest_data.Seeder`, after the documents, so that billed
work can point at the invoice that billed it.
"""

from __future__ import annotations

import bisect
import math
import random

from crm_assets.sandbox.harvest_vocabulary import (
    DAY, EXTERNAL_SERVICES, Record, clock_12h, iso, iso_day, money, stamp_epoch,
)


class ActivitySeeder:
    """Time entries, expenses, billable and cost rates, and the parents' ``updated_at`` bumps."""

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
            starts = [stamp_epoch(user["created_at"])]
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
            keys = self.invoice_created_keys[client_id] = [stamp_epoch(inv["created_at"]) for inv in invoices]
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
        """A document's ``updated_at`` is never older than its messages' and payments': sending
        one or recording one changes the document's own fields (state, sent and paid times,
        amount due). A user's assignments change nothing in the user record, so users are left
        alone (Harvest documents no such bump, spec §4.2)."""
        for stream, parent in (("invoice_messages", "invoices"), ("invoice_payments", "invoices"), ("estimate_messages", "estimates")):
            by_id = {r["id"]: r for r in self.roots[parent]}
            for parent_id, rec in self.children[stream]:
                p = by_id[parent_id]
                if rec["updated_at"] > p["updated_at"]:
                    p["updated_at"] = rec["updated_at"]
