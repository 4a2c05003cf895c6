"""Seeded invoices and estimates with their line items, messages and payments.

Mixed into :class:`~crm_assets.sandbox.harvest_data.Seeder`, which has already built the
clients, users and projects these documents point at.
"""

from __future__ import annotations

import random

from crm_assets.sandbox.harvest_vocabulary import (
    DAY, FIRST_NAMES, LAST_NAMES, LINE_DESCRIPTIONS, ESTIMATE_ITEM_CATEGORIES, PAYMENT_GATEWAYS, PROJECT_NAMES,
    Record, apply_totals, ascii_slug, iso, iso_day, line_quantity, long_text, money, unit_price,
)


class DocumentSeeder:
    """Invoices, estimates, their messages and payments."""

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
