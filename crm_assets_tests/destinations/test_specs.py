"""Sync definitions: the shipped file loads, and each mistake is named by sync and field."""

from __future__ import annotations

import pytest

from crm_assets.destinations.lineage import LineageError, source_tables
from crm_assets.destinations.specs import SyncSpecError, load_syncs

GOOD = """
  - name: clients_to_accounts
    destination: salesforce
    object: Account
    query: select id::varchar as Harvest_Client_Id__c, name as Name from harvest.clients
    mode: update
    upsert: true
    key: Harvest_Client_Id__c
"""


def _load(tmp_path, body: str):
    path = tmp_path / "syncs.yaml"
    path.write_text("syncs:\n" + body, encoding="utf-8")
    return load_syncs(path)


def test_a_contract_example_loads_with_its_defaults(tmp_path):
    (spec,) = _load(tmp_path, GOOD)
    assert (spec.mode, spec.upsert, spec.key, spec.match_key) == (
        "update",
        True,
        "Harvest_Client_Id__c",
        "Harvest_Client_Id__c",
    )
    assert (spec.batch_size, spec.concurrency, spec.retry_limit, spec.api_version) == (
        10_000,
        "parallel",
        5,
        None,
    )
    assert spec.tables == (("harvest", "clients"),)
    assert spec.asset_key == ("salesforce", "clients_to_accounts")


def test_the_shipped_syncs_load():
    specs = load_syncs()
    assert {s.name for s in specs} >= {
        "clients_to_accounts",
        "contacts_to_contacts",
        "projects_to_harvest_projects",
    }


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ("mode: merge", "mode", "unknown mode 'merge'"),
        ("mode: append", "upsert", "applies to mode update only"),
        ("hard_delete: true", "hard_delete", "applies to mode truncate only"),
        ("batch_size: 10001", "batch_size", "between 1 and 10000"),
        ("batch_size: 0", "batch_size", "between 1 and 10000"),
        ("schedule: '61 3 * * *'", "schedule", "not a valid cron"),
        ("destination: hubspot", "destination", "unknown destination 'hubspot'"),
        ("concurency: serial", "concurency", "unknown field"),
        ("retry_limit: true", "retry_limit", "expected int"),
        ("api_version: v59", "api_version", 'such as "59.0"'),
        ("query: select * from clients", "query", "needs its schema"),
        ("query: delete from harvest.clients", "query", "exactly one SELECT"),
    ],
)
def test_each_mistake_names_the_sync_and_the_field(tmp_path, change, field, words):
    key = change.split(":")[0]
    body = "\n".join(line for line in GOOD.splitlines() if not line.strip().startswith(f"{key}:"))
    body += f"\n    {change}\n"
    with pytest.raises(SyncSpecError) as err:
        _load(tmp_path, body)
    message = str(err.value)
    assert "'clients_to_accounts'" in message and f"field '{field}'" in message and words in message


def test_upsert_needs_a_key_and_zoho_batches_are_small(tmp_path):
    no_key = GOOD.replace("    key: Harvest_Client_Id__c\n", "")
    with pytest.raises(SyncSpecError, match="field 'key': upsert needs"):
        _load(tmp_path, no_key)
    zoho = GOOD.replace("destination: salesforce", "destination: zoho") + "    batch_size: 101\n"
    with pytest.raises(SyncSpecError, match="between 1 and 100 for zoho"):
        _load(tmp_path, zoho)


def test_the_path_comes_from_crm_assets_syncs(tmp_path, monkeypatch):
    path = tmp_path / "other.yaml"
    path.write_text("syncs:\n" + GOOD.replace("clients_to_accounts", "elsewhere"), encoding="utf-8")
    monkeypatch.setenv("CRM_ASSETS_SYNCS", str(path))
    assert [s.name for s in load_syncs()] == ["elsewhere"]


def test_lineage_follows_ctes_subqueries_joins_and_quoted_names():
    sql = """
        with hours as (select project__id, sum(hours) as h from harvest.time_entries group by 1),
             named as (select * from hours)
        select p.id, n.h from "harvest"."Projects" as p
        join named as n on n.project__id = p.id
        where p.client__id in (select id from (select id from harvest.clients) as c)
    """
    assert source_tables(sql) == [
        ("harvest", "clients"),
        ("harvest", "projects"),
        ("harvest", "time_entries"),
    ]


def test_a_cte_named_like_a_table_is_not_a_table():
    sql = "with clients as (select 1 as id) select * from clients join harvest.users u on true"
    assert source_tables(sql) == [("harvest", "users")]


def test_unparseable_sql_is_refused():
    with pytest.raises(LineageError, match="not valid DuckDB SQL"):
        source_tables("select from from where")
