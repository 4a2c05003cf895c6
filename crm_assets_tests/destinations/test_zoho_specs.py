"""Zoho sync definitions: Zoho's modes, its record id, its batch limit and its own options."""

from __future__ import annotations

import pytest

from crm_assets.destinations.specs import SyncSpecError, load_syncs

ZOHO = """
  - name: clients_to_zoho
    destination: zoho
    object: Accounts
    query: select id::varchar as Harvest_Client_Id, name as Account_Name from harvest.clients
    mode: update
    upsert: true
    key: Harvest_Client_Id
"""


def _load(tmp_path, body: str):
    path = tmp_path / "syncs.yaml"
    path.write_text("syncs:\n" + body, encoding="utf-8")
    return load_syncs(path)


def test_a_zoho_sync_loads_with_zoho_defaults(tmp_path):
    (spec,) = _load(tmp_path, ZOHO)
    assert spec.asset_key == ("zoho_crm", "clients_to_zoho")
    assert (spec.batch_size, spec.trigger_workflow, spec.include_nulls, spec.match_key) == (
        100,
        False,
        False,
        "Harvest_Client_Id",
    )
    by_id = ZOHO.replace("    upsert: true\n    key: Harvest_Client_Id\n", "")
    (spec,) = _load(tmp_path, by_id)
    assert spec.match_key == "id"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ("batch_size: 101", "batch_size", "between 1 and 100 for zoho, got 101"),
        ("batch_size: 500", "batch_size", "between 1 and 100 for zoho, got 500"),
        ("mode: truncate", "mode", "zoho syncs support append, update, not truncate"),
        ("api_version: '59.0'", "api_version", "applies to salesforce syncs only"),
        ("trigger_workflow: 'yes'", "trigger_workflow", "expected bool"),
        ("include_nulls: 1", "include_nulls", "expected bool"),
    ],
)
def test_zoho_mistakes_name_the_sync_and_the_field(tmp_path, change, field, words):
    key = change.split(":")[0]
    drop = {key, "upsert", "key"} if key == "mode" else {key}  # truncate takes no key
    body = "\n".join(line for line in ZOHO.splitlines() if line.strip().split(":")[0] not in drop)
    with pytest.raises(SyncSpecError) as err:
        _load(tmp_path, body + f"\n    {change}\n")
    message = str(err.value)
    assert "'clients_to_zoho'" in message and f"field '{field}'" in message and words in message


def test_an_update_without_upsert_matches_zoho_records_by_id(tmp_path):
    by_name = ZOHO.replace("    upsert: true\n", "")
    with pytest.raises(SyncSpecError, match="matches records by id; set upsert: true"):
        _load(tmp_path, by_name)
    salesforce_style = by_name.replace("key: Harvest_Client_Id", "key: Id")
    with pytest.raises(SyncSpecError, match="field 'key'"):
        _load(tmp_path, salesforce_style)
    zoho_only = ZOHO.replace("destination: zoho", "destination: salesforce") + "    include_nulls: true\n"
    with pytest.raises(SyncSpecError, match="applies to zoho syncs only"):
        _load(tmp_path, zoho_only)


def test_the_shipped_zoho_example_upserts_harvest_clients_into_accounts():
    (spec,) = [s for s in load_syncs() if s.destination == "zoho"]
    assert (spec.name, spec.object, spec.key, spec.upsert, spec.tables) == (
        "clients_to_zoho_accounts",
        "Accounts",
        "Harvest_Client_Id",
        True,
        (("harvest", "clients"),),
    )
