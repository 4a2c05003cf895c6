"""Reverse-ETL sync definitions: ``crm_assets/syncs.yaml`` read into validated specs.

The file's format is the contract's (section 5). Every field is checked when the file is
loaded, so a typo fails the code location at once with a message naming the sync and the
field, rather than a run hours later in the middle of a push.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from dagster._utils.schedules import is_valid_cron_string

from crm_assets.destinations.lineage import LineageError, source_tables

DEFAULT_SYNCS_PATH = Path(__file__).resolve().parents[1] / "syncs.yaml"
MODES = ("append", "truncate", "update")
CONCURRENCY = ("parallel", "serial")
# Records per request each destination accepts: Salesforce Bulk 1.0 batches, Zoho record calls.
MAX_BATCH_SIZE = {"salesforce": 10_000, "zoho": 100}
# The field that holds a record's own id, which an update without upsert matches on.
RECORD_ID = {"salesforce": "Id", "zoho": "id"}
# Zoho's records API inserts, updates and upserts; deleting a whole module is not offered.
DESTINATION_MODES = {"salesforce": MODES, "zoho": ("append", "update")}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_API_VERSION = re.compile(r"^\d{2}\.0$")


class SyncSpecError(ValueError):
    """The sync definitions file is wrong; the message names the sync and the field."""


@dataclass(frozen=True)
class SyncSpec:
    """One sync: a SQL query over the warehouse whose rows are written into an object."""

    name: str
    destination: str
    object: str
    query: str
    mode: str = "append"
    upsert: bool = False
    key: str | None = None
    hard_delete: bool = False
    concurrency: str = "parallel"
    batch_size: int = 10_000
    api_version: str | None = None
    retry_initial_delay: float = 1.0
    retry_limit: int = 5
    schedule: str | None = None
    trigger_workflow: bool = False
    include_nulls: bool = False
    tables: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @property
    def asset_key(self) -> tuple[str, str]:
        prefix = "salesforce" if self.destination == "salesforce" else "zoho_crm"
        return (prefix, self.name)

    @property
    def match_key(self) -> str | None:
        """The column that finds an existing record in update mode: the upsert key, or Id."""
        if self.mode != "update":
            return None
        return self.key or RECORD_ID[self.destination]

    @property
    def row_key(self) -> str | None:
        """The column identifying a row for change tracking and rejections (None: the row's
        content is its identity, as for an append without a key)."""
        return self.match_key or self.key


_FIELDS = {f for f in SyncSpec.__dataclass_fields__ if f != "tables"}


def syncs_path() -> Path:
    return Path(os.getenv("CRM_ASSETS_SYNCS") or DEFAULT_SYNCS_PATH)


def load_syncs(path: str | Path | None = None) -> list[SyncSpec]:
    """Read and validate every sync in the file (default: ``CRM_ASSETS_SYNCS`` or the shipped one)."""
    path = Path(path) if path else syncs_path()
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise SyncSpecError(f"{path}: cannot read the sync definitions ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise SyncSpecError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("syncs", []), list):
        raise SyncSpecError(f"{path}: expected a mapping with a `syncs:` list")
    specs: list[SyncSpec] = []
    seen: set[str] = set()
    for index, entry in enumerate(document.get("syncs") or []):
        spec = parse_sync(entry, f"{path.name}: sync #{index + 1}")
        if spec.name in seen:
            raise SyncSpecError(f"{path.name}: sync {spec.name!r}: field 'name': defined twice")
        seen.add(spec.name)
        specs.append(spec)
    return specs


def parse_sync(entry: Any, where: str) -> SyncSpec:
    """One validated spec from a YAML entry; `where` locates it in error messages."""
    if not isinstance(entry, dict):
        raise SyncSpecError(f"{where}: expected a mapping of fields")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise SyncSpecError(f"{where}: field 'name': must be lower_snake_case text, got {name!r}")
    where = f"{where.split(':')[0]}: sync {name!r}"

    def fail(field_name: str, message: str) -> SyncSpecError:
        return SyncSpecError(f"{where}: field {field_name!r}: {message}")

    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise fail(unknown[0], f"unknown field (known: {', '.join(sorted(_FIELDS))})")
    for required in ("destination", "object", "query"):
        if not isinstance(entry.get(required), str) or not entry[required].strip():
            raise fail(required, "required text")
    values = {name: value for name, value in entry.items() if value is not None}
    _check_types(values, fail)
    destination = values["destination"]
    if destination not in MAX_BATCH_SIZE:
        raise fail("destination", f"unknown destination {destination!r} (known: {', '.join(MAX_BATCH_SIZE)})")
    mode = values.get("mode", "append")
    if mode not in MODES:
        raise fail("mode", f"unknown mode {mode!r} (known: {', '.join(MODES)})")
    if mode not in DESTINATION_MODES[destination]:
        supported = ", ".join(DESTINATION_MODES[destination])
        raise fail("mode", f"{destination} syncs support {supported}, not {mode}")
    if values.get("upsert") and mode != "update":
        raise fail("upsert", f"applies to mode update only, not {mode}")
    if values.get("upsert") and not values.get("key"):
        raise fail("key", "upsert needs the external id field that matches records")
    record_id = RECORD_ID[destination]
    if mode == "update" and not values.get("upsert") and values.get("key", record_id) != record_id:
        raise fail(
            "key",
            f"an update without upsert matches records by {record_id}; "
            f"set upsert: true to match on {values['key']}",
        )
    if values.get("hard_delete") and mode != "truncate":
        raise fail("hard_delete", f"applies to mode truncate only, not {mode}")
    if values.get("concurrency", "parallel") not in CONCURRENCY:
        raise fail("concurrency", f"must be one of {', '.join(CONCURRENCY)}")
    limit = MAX_BATCH_SIZE[destination]
    if not 1 <= values.get("batch_size", min(10_000, limit)) <= limit:
        raise fail(
            "batch_size", f"must be between 1 and {limit} for {destination}, got {values['batch_size']}"
        )
    if "api_version" in values:
        values["api_version"] = str(values["api_version"])
        if not _API_VERSION.match(values["api_version"]):
            raise fail("api_version", f'expected a version such as "59.0", got {values["api_version"]!r}')
    if values.get("retry_initial_delay", 1.0) < 0:
        raise fail("retry_initial_delay", "must be zero or more seconds")
    if not 0 <= values.get("retry_limit", 5) <= 20:
        raise fail("retry_limit", "must be between 0 and 20")
    if values.get("schedule") is not None and not is_valid_cron_string(values["schedule"]):
        raise fail("schedule", f"not a valid cron expression: {values['schedule']!r}")
    for zoho_only in ("trigger_workflow", "include_nulls"):
        if values.get(zoho_only) and destination != "zoho":
            raise fail(zoho_only, "applies to zoho syncs only")
    if "api_version" in values and destination != "salesforce":
        raise fail("api_version", "applies to salesforce syncs only (the Zoho records API is v8)")
    values.setdefault("batch_size", min(10_000, limit))
    try:
        tables = source_tables(values["query"])
    except LineageError as exc:
        raise fail("query", str(exc)) from exc
    return SyncSpec(**values, tables=tuple(tables))


_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "destination": (str,),
    "object": (str,),
    "query": (str,),
    "mode": (str,),
    "upsert": (bool,),
    "key": (str,),
    "hard_delete": (bool,),
    "concurrency": (str,),
    "batch_size": (int,),
    "api_version": (str, int, float),
    "retry_initial_delay": (int, float),
    "retry_limit": (int,),
    "schedule": (str, type(None)),
    "trigger_workflow": (bool,),
    "include_nulls": (bool,),
}


def _check_types(values: dict[str, Any], fail) -> None:
    for name, value in values.items():
        expected = _TYPES[name]
        # YAML booleans are ints to Python; a count given as `true` is still a mistake.
        if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in expected)
            raise fail(name, f"expected {names}, got {value!r}")
