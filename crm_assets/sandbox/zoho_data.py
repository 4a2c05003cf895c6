"""Seeded Zoho CRM settings data: the same seed gives the same records.

One organization (multi-currency on), six currencies (USD base, one inactive), six profiles (two
system profiles with null ``created_time``/``created_by``), thirteen roles in a tree under ``CEO``
(``reporting_to``), sixteen territories in a tree under the org's root territory
(``reporting_to``; most with a ``manager``), and 240 users that ``type=AllUsers`` serves (active and inactive, across every
profile and role) plus four deleted users that only ``type=DeletedUsers`` shows. The scale only
grows the users (``max(240, 240 * scale)``) so that they always span two pages of 200.

Ids are 19-digit strings (beyond a double's exact range, as Zoho's are). Timestamps fall in the
400 days before the anchor and are written, record by record, with ``+05:30``, ``-07:00`` or
``Z`` (the API user's zone as Zoho renders it, §2.0 and §9), so string order is not time order.
"""

from __future__ import annotations

import calendar
import datetime as dt
import random
from typing import Any

HISTORY_DAYS = 400
ID_BASE = 4_150_868_000_000_000_000
ORG_ID = "60031846551"
OFFSETS = ("+05:30", "+05:30", "-07:00", "Z")
USERS_PER_SCALE = 240
DELETED_USERS = 4

Record = dict[str, Any]


def stamp(epoch: int, offset: str) -> str:
    """``epoch`` written in the zone ``offset`` (``Z`` or ``±HH:MM``), seconds precision."""
    if offset == "Z":
        return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    sign = 1 if offset[0] == "+" else -1
    delta = dt.timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])) * sign
    return dt.datetime.fromtimestamp(epoch, dt.timezone(delta)).strftime("%Y-%m-%dT%H:%M:%S") + offset


class Dataset:
    """Every table's records in the order the API serves them, plus the anchor's start date."""

    def __init__(self, seed: int, scale: float, anchor: dt.date):
        self.rng = random.Random(f"zoho:{seed}")
        self.end = calendar.timegm(anchor.timetuple())
        self.start = self.end - HISTORY_DAYS * 86400
        self.start_date = (anchor - dt.timedelta(days=HISTORY_DAYS)).isoformat()
        self.serial = 0
        self.admin = {"name": "Priya Raman", "id": self.new_id()}
        self.tables: dict[str, list[Record]] = {}
        self.tables["currencies"] = self._currencies()
        self.tables["profiles"] = self._profiles()
        self.tables["roles"] = self._roles()
        self.tables["territories"] = self._territories()
        self.tables["users"] = self._users(max(USERS_PER_SCALE, round(USERS_PER_SCALE * scale)))
        self.tables["organization"] = [self._organization()]
        self._assign_managers()

    def new_id(self) -> str:
        self.serial += 1
        return str(ID_BASE + 1_000_000 * self.serial + self.rng.randrange(1000))

    def moment(self, lo: float = 0.0, hi: float = 1.0) -> int:
        """A whole second between fractions ``lo`` and ``hi`` of the history."""
        span = self.end - self.start
        return self.start + int(span * lo) + self.rng.randrange(max(1, int(span * (hi - lo))))

    def when(self, epoch: int) -> str:
        return stamp(epoch, self.rng.choice(OFFSETS))

    def _made(self, prefix: str = "", by: str = "by") -> Record:
        created = self.moment(0.0, 0.6)
        return {f"created_{by}{prefix}": dict(self.admin), f"created_time{prefix}": self.when(created),
                f"modified_{by}{prefix}": dict(self.admin), f"modified_time{prefix}": self.when(self.moment(0.6, 1.0))}

    def _currencies(self) -> list[Record]:
        rows = [("US Dollar - USD", "USD", "$", "1.000000000"), ("Euro - EUR", "EUR", "€", "0.921450000"),
                ("Pound Sterling - GBP", "GBP", "£", "0.789100000"), ("Indian Rupee - INR", "INR", "₹", "83.120000000"),
                ("Japanese Yen - JPY", "JPY", "¥", "149.870000000"), ("Australian Dollar - AUD", "AUD", "A$", "1.531200000")]
        out = []
        for i, (name, iso, symbol, rate) in enumerate(rows):
            out.append({
                "id": self.new_id(), "name": name, "iso_code": iso, "symbol": symbol, "prefix_symbol": iso != "EUR",
                "is_active": iso != "AUD", "is_base": i == 0, "exchange_rate": rate,
                "exchange_rate_auto_update": i in (1, 2), "exchange_rate_updated_time": None if i == 0 else self.when(self.moment()),
                "format": {"numeral_system": "Indian" if iso == "INR" else "International",
                           "decimal_places": "0" if iso == "JPY" else "2",
                           "decimal_separator": "Comma" if iso == "EUR" else "Period",
                           "thousand_separator": "Period" if iso == "EUR" else "Comma"},
                **self._made(),
            })
        return out

    def _profiles(self) -> list[Record]:
        rows = [("Administrator", False, "normal_profile"), ("Standard", False, "normal_profile"),
                ("Sales Rep", True, "normal_profile"), ("Support Agent", True, "normal_profile"),
                ("Read Only", True, "lite_profile"), ("Partner Portal", True, "portal_profile")]
        out = []
        for name, custom, kind in rows:
            made = self._made() if custom else {"created_time": None, "created_by": None,
                                                 "modified_time": self.when(self.moment(0.5, 1.0)), "modified_by": dict(self.admin)}
            out.append({"id": self.new_id(), "name": name, "display_label": name, "api_name": name.replace(" ", "_"),
                        "description": f"{name} profile" if custom else None, "custom": custom, "type": kind, **made})
        return out

    def _roles(self) -> list[Record]:
        tree = [("CEO", None), ("VP Sales", "CEO"), ("VP Support", "CEO"), ("Sales Manager EMEA", "VP Sales"),
                ("Sales Manager APAC", "VP Sales"), ("Sales Manager Americas", "VP Sales"), ("Support Lead", "VP Support"),
                ("Sales Rep EMEA", "Sales Manager EMEA"), ("Sales Rep APAC", "Sales Manager APAC"),
                ("Sales Rep Americas", "Sales Manager Americas"), ("Support Agent", "Support Lead"),
                ("Partner Manager", "VP Sales"), ("Intern", "Support Lead")]
        by_name: dict[str, Record] = {}
        for name, parent in tree:
            dated = self.rng.random() < 0.8  # v8 added the __s timestamps; older roles have none
            made = self._made("__s") if dated else {"created_by__s": None, "created_time__s": None,
                                                     "modified_by__s": None, "modified_time__s": None}
            by_name[name] = {
                "id": self.new_id(), "name": name, "display_label": name, "api_name": name.lower().replace(" ", "_"),
                "description": None if self.rng.random() < 0.3 else f"The {name} role",
                "share_with_peers": self.rng.random() < 0.5,
                "reporting_to": {"name": parent, "id": by_name[parent]["id"]} if parent else None,
                "forecast_manager": None, "admin_user": name == "CEO", **made,
            }
        return list(by_name.values())

    def _territories(self) -> list[Record]:
        tree = [("Acme Global", None), ("EMEA", "Acme Global"), ("APAC", "Acme Global"), ("Americas", "Acme Global"),
                ("DACH", "EMEA"), ("Nordics", "EMEA"), ("UK and Ireland", "EMEA"), ("India", "APAC"),
                ("Chennai", "India"), ("Bengaluru", "India"), ("Japan", "APAC"), ("ANZ", "APAC"),
                ("US East", "Americas"), ("US West", "Americas"), ("Canada", "Americas"), ("LATAM", "Americas")]
        by_name: dict[str, Record] = {}
        for name, parent in tree:
            by_name[name] = {
                "id": self.new_id(), "name": name, "api_name": name.replace(" ", "_"),
                "description": None if self.rng.random() < 0.4 else f"Accounts in {name}",
                "permission_type": self.rng.choice(("read_only", "read_write_delete")),
                "manager": None, "reporting_to": {"name": parent, "id": by_name[parent]["id"]} if parent else None,
                **self._made(),
            }
        return list(by_name.values())

    def _users(self, count: int) -> list[Record]:
        roles, profiles = self.tables["roles"], self.tables["profiles"]
        first = ["Asha", "Ben", "Chen", "Dana", "Emil", "Fatima", "Goran", "Hiro", "Ines", "Jonas", "Kavya", "Luis",
                 "Mei", "Nils", "Olu", "Priya", "Quinn", "Rosa", "Sven", "Tara", "Uma", "Viktor", "Wen", "Yara"]
        last = ["Iyer", "Schmidt", "Okafor", "Tanaka", "Garcia", "Nguyen", "Larsen", "Rossi", "Kowalski", "Dubois",
                "Haddad", "Silva", "Novak", "Murphy", "Sato", "Khan"]
        users: list[Record] = []
        for n in range(count + DELETED_USERS):
            created = self.moment(0.0, 0.7)
            fn, ln = self.rng.choice(first), self.rng.choice(last)
            if n == 0:
                fn, ln = self.admin["name"].split()
                uid, role, profile = self.admin["id"], roles[0], profiles[0]
            else:
                uid, role, profile = self.new_id(), self.rng.choice(roles[1:]), self.rng.choice(profiles[1:])
            status = "deleted" if n >= count else ("inactive" if self.rng.random() < 0.12 else "active")
            confirmed = n == 0 or self.rng.random() < 0.9
            zone = self.rng.choice(OFFSETS)
            modified = None if self.rng.random() < 0.03 and n else self.moment(0.7, 1.0)
            manager = self.rng.choice(users[:20]) if users and role["reporting_to"] else None
            users.append(self._user(n, uid, fn, ln, status, confirmed, role, profile, manager, created, modified, zone))
        return users

    def _user(self, n: int, uid: str, fn: str, ln: str, status: str, confirmed: bool, role: Record, profile: Record,
              manager: Record | None, created: int, modified: int | None, zone: str) -> Record:
        rng = self.rng
        tz, offset_ms, locale = {"+05:30": ("Asia/Kolkata", 19_800_000, "en_IN"), "-07:00": ("America/Denver", -25_200_000, "en_US"),
                                 "Z": ("Europe/London", 0, "en_GB")}[zone]
        day = dt.date(1970, 1, 1) + dt.timedelta(days=rng.randrange(6000, 12000))
        return {
            "id": uid, "zuid": str(70_000_000 + n * 37 + rng.randrange(30)), "ezuid": None, "first_name": fn,
            "last_name": ln, "full_name": f"{fn} {ln}", "email": f"{fn.lower()}.{ln.lower()}.{n}@acme.example",
            "alias": None if rng.random() < 0.7 else fn.lower(), "status": status, "confirm": confirmed,
            "role": {"name": role["name"], "id": role["id"]}, "profile": {"name": profile["name"], "id": profile["id"]},
            "Reporting_To": None if manager is None else {"name": manager["full_name"], "id": manager["id"]},
            "created_by": dict(self.admin), "created_time": stamp(created, zone),
            "Modified_By": None if modified is None else dict(self.admin),
            "Modified_Time": None if modified is None else stamp(modified, zone),
            "phone": None if rng.random() < 0.3 else f"+1 555 01{n:04d}", "mobile": None, "fax": None, "website": None,
            "street": None, "city": rng.choice((None, "Chennai", "Denver", "London", "Berlin")), "state": None,
            "zip": None, "country": None, "country_locale": locale.split("_")[1], "locale": locale, "language": "en",
            "time_zone": tz, "offset": offset_ms, "time_format": rng.choice(("hh:mm a", "HH:mm")),
            "date_format": rng.choice(("MM/dd/yyyy", "dd/MM/yyyy", "yyyy-MM-dd")), "decimal_separator": "Period",
            "number_separator": "Comma", "dob": None if rng.random() < 0.6 else day.isoformat(), "signature": None,
            "Currency": "USD", "microsoft": False, "personal_account": False, "sandboxDeveloper": False,
            "Isonline": rng.random() < 0.2, "default_tab_group": "0",
            "image_link": f"https://profile.zoho.example/file?ID={70_000_000 + n}&fs=thumb",
            "customize_info": {"notes_desc": None, "show_right_panel": None, "bc_view": None, "show_home": False,
                               "show_detail_view": True, "unpin_recent_item": None},
            "theme": {"normal_tab": {"font_color": "#FFFFFF", "background": "#222222"},
                      "selected_tab": {"font_color": "#FFFFFF", "background": "#222222"},
                      "new_background": None, "background": "#F3F0EB", "screen": "fixed", "type": "default"},
            "$current_shift": None, "$next_shift": None, "$shift_effective_from": None,
            "type__s": "Regular User", "name_format__s": "Salutation,First Name,Last Name",
            "sort_order_preference__s": "First Name,Last Name",
            "status_reason__s": "deleted by admin" if status == "deleted" else None,
            "Status_Updated_Time__s": None if status == "active" else stamp(created + 86400, zone),
            "Invited_Time__s": stamp(created, zone), "Confirmed_Time__s": stamp(created + 3600, zone) if confirmed else None,
            "share_among_subordinates": False, "imap_status": False, "telephony_enabled": False,
            "rtl_enabled": False, "ntc_enabled": False,
            "Currency_1": None if rng.random() < 0.5 else round(rng.uniform(1000, 90000), 2),
            "Date_1": None if rng.random() < 0.5 else day.isoformat(),
            "Multi_Select_1": rng.sample(["CRM", "Analytics", "Desk", "Books", "Projects"], rng.randrange(0, 4)),
        }

    def _organization(self) -> Record:
        return {
            "id": ORG_ID, "company_name": "Acme Sandbox Corp", "alias": None, "domain_name": "org60031846551",
            "primary_email": self.admin_email(), "primary_zuid": "70000000", "zgid": "60031846551", "ezgid": "a1b2c3d4e5",
            "zia_zgid": None, "zia_portal_id": None, "phone": "+91 44 6744 7000", "mobile": None, "fax": None,
            "website": "www.acme.example", "employee_count": "250", "description": None, "street": "Estancia IT Park",
            "city": "Chennai", "state": "Tamil Nadu", "zip": "603202", "country": "India", "country_code": "IN",
            "time_zone": "Asia/Kolkata", "currency": "US Dollar - USD", "currency_symbol": "$", "currency_locale": "en_US",
            "iso_code": "USD", "mc_status": True, "gapps_enabled": False, "translation_enabled": False,
            "privacy_settings": True, "hipaa_compliance_enabled": False, "lite_users_enabled": True,
            "deletable_org_account": False, "photo_id": None, "type": "production",
            "created_time": stamp(self.start - 86400 * 30, "+05:30"), "max_per_page": 200, "call_icon": "none",
            "oauth_presence": True, "hierarchy_preferences": {"type": "Role_Hierarchy", "strictly_reporting": False},
            "checkin_preferences": {"restricted_event_types": None},
            "license_details": {"paid": True, "paid_type": "enterprise", "paid_expiry": stamp(self.end + 86400 * 200, "+05:30"),
                                "trial_type": None, "trial_expiry": None, "trial_action": None,
                                "users_license_purchased": 260, "portal_users_license_purchased": 0},
        }

    def _assign_managers(self) -> None:
        """Most territories get a manager and some roles a forecast manager, once users exist."""
        active = [u for u in self.tables["users"] if u["status"] == "active"]
        for territory in self.tables["territories"]:
            if self.rng.random() < 0.7:
                user = self.rng.choice(active)
                territory["manager"] = {"name": user["full_name"], "id": user["id"]}
        for role in self.tables["roles"]:
            if self.rng.random() < 0.4:
                user = self.rng.choice(active)
                role["forecast_manager"] = {"name": user["full_name"], "id": user["id"]}

    def admin_email(self) -> str:
        return self.tables["users"][0]["email"]


# The org's module layouts for the records API (§3.5: ``GET /settings/fields?module=``): system
# fields, standard fields and the custom fields this org added (``Harvest_*``, ``Client_Since``);
# ``Harvest_Client_Id`` and ``Harvest_Contact_Id`` are unique, so upserts can match on them (§3.2).
# Row: api_name, data_type, length, flags (m = system mandatory, r = read only, u = unique), lookup module.
_SYSTEM_FIELDS = (("Owner", "ownerlookup", None, "", None), ("Created_By", "ownerlookup", None, "r", None),
                  ("Modified_By", "ownerlookup", None, "r", None), ("Created_Time", "datetime", None, "r", None),
                  ("Modified_Time", "datetime", None, "r", None))
_MODULE_LAYOUTS: dict[str, tuple[tuple[str, str, int | None, str, str | None], ...]] = {
    "Accounts": (("Account_Name", "text", 200, "m", None), ("Account_Number", "text", 40, "", None),
                 ("Account_Type", "picklist", 120, "", None), ("Industry", "picklist", 120, "", None),
                 ("Annual_Revenue", "currency", 16, "", None), ("Employees", "integer", 9, "", None),
                 ("Phone", "phone", 30, "", None), ("Website", "website", 255, "", None),
                 ("Billing_Street", "text", 250, "", None), ("Billing_City", "text", 30, "", None),
                 ("Billing_Country", "text", 30, "", None), ("Description", "textarea", 32000, "", None),
                 ("Parent_Account", "lookup", None, "", "Accounts"), ("Tag", "multiselectpicklist", None, "", None),
                 ("Harvest_Client_Id", "text", 20, "u", None), ("Harvest_Currency", "text", 3, "", None),
                 ("Harvest_Active", "boolean", None, "", None), ("Client_Since", "date", None, "", None),
                 ("Harvest_Updated_At", "datetime", None, "", None), ("Account_Code", "autonumber", 20, "r", None)),
    "Contacts": (("First_Name", "text", 40, "", None), ("Last_Name", "text", 80, "m", None),
                 ("Email", "email", 100, "", None), ("Phone", "phone", 30, "", None), ("Mobile", "phone", 30, "", None),
                 ("Title", "text", 100, "", None), ("Account_Name", "lookup", None, "", "Accounts"),
                 ("Date_of_Birth", "date", None, "", None), ("Harvest_Contact_Id", "text", 20, "u", None)),
    "Leads": (("First_Name", "text", 40, "", None), ("Last_Name", "text", 80, "m", None),
              ("Company", "text", 200, "m", None), ("Email", "email", 100, "", None),
              ("Lead_Source", "picklist", 120, "", None), ("Annual_Revenue", "currency", 16, "", None),
              ("No_of_Employees", "integer", 9, "", None)),
    "Deals": (("Deal_Name", "text", 120, "m", None), ("Stage", "picklist", 120, "m", None),
              ("Closing_Date", "date", None, "", None), ("Amount", "currency", 16, "", None),
              ("Probability", "percent", 3, "", None), ("Account_Name", "lookup", None, "", "Accounts")),
}
_JSON_TYPES = {"integer": "integer", "double": "double", "currency": "double", "decimal": "double", "percent": "double",
               "boolean": "boolean", "lookup": "jsonobject", "ownerlookup": "jsonobject", "userlookup": "jsonobject",
               "multiselectpicklist": "jsonarray"}


def module_fields() -> dict[str, list[Record]]:
    """Each module's field metadata, as ``GET /crm/v8/settings/fields?module=<Module>`` lists it."""
    out: dict[str, list[Record]] = {}
    for module, layout in _MODULE_LAYOUTS.items():
        fields = []
        for serial, (name, kind, length, flags, lookup) in enumerate((*layout, *_SYSTEM_FIELDS)):
            fields.append({
                "id": str(ID_BASE + 900_000_000_000 + 1000 * len(out) + serial), "api_name": name,
                "field_label": name.replace("_", " "), "data_type": kind, "json_type": _JSON_TYPES.get(kind, "string"),
                "length": length, "system_mandatory": "m" in flags, "read_only": "r" in flags,
                "field_read_only": "r" in flags, "custom_field": name.startswith(("Harvest_", "Client_Since")),
                "unique": {"casesensitive": False} if "u" in flags else {},
                "lookup": {"module": {"api_name": lookup}} if lookup else {},
            })
        out[module] = fields
    return out


__all__ = ["HISTORY_DAYS", "OFFSETS", "Dataset", "module_fields", "stamp"]
