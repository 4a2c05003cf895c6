"""Words, names and arithmetic shared by the Harvest seeder and the admin API's edits.

Text pools mix scripts, emoji, quotes and ``\r\n`` line breaks on purpose: the data is meant
to exercise a replication pipeline. Amounts follow Harvest's invoice arithmetic (discount on
the subtotal, taxes on the discounted taxed lines).
"""

from __future__ import annotations

import calendar
import random
import time
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



def stamp_epoch(stamp: str) -> int:
    """Seconds since the epoch for a Harvest ``YYYY-MM-DDTHH:MM:SSZ`` timestamp."""
    return calendar.timegm((int(stamp[0:4]), int(stamp[5:7]), int(stamp[8:10]),
                            int(stamp[11:13]), int(stamp[14:16]), int(stamp[17:19])))


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
