"""The catalog carries a description for every column, and both column forms parse."""

from __future__ import annotations

import pytest

from crm_assets.catalog import CatalogError, Column, parse_catalog
from crm_assets.sources.harvest import harvest_catalog


def one_stream(columns: dict) -> dict:
    return {
        "source": "demo",
        "streams": [
            {
                "name": "things",
                "endpoint": "/things",
                "envelope": "things",
                "primary_key": ["id"],
                "replication": "incremental",
                "replication_key": "updated_at",
                "pagination": "cursor",
                "updated_since": True,
                "columns": columns,
            }
        ],
    }


def test_every_harvest_column_has_a_description():
    catalog = harvest_catalog()
    assert len(catalog.streams) == 24
    missing = [f"{s.table}.{c.name}" for s in catalog.streams for c in s.columns if not c.description.strip()]
    assert missing == []
    assert len(catalog.stream("time_entries").columns) >= 50


def test_both_column_forms_parse_and_descriptions_stay_out_of_equality():
    stream = parse_catalog(
        one_stream(
            {
                "id": "BIGINT",
                "updated_at": {"type": "TIMESTAMPTZ", "description": "When the thing  last\n changed."},
                "owner": {"id": {"type": "BIGINT", "description": "The owner's id."}, "name": "VARCHAR"},
                "owner_code": {
                    "type": "VARCHAR",
                    "path": "owner.code",
                    "description": "Read from elsewhere.",
                },
            }
        )
    ).stream("things")
    assert stream.columns == (
        Column("id", "BIGINT", ("id",)),
        Column("updated_at", "TIMESTAMPTZ", ("updated_at",)),
        Column("owner__id", "BIGINT", ("owner", "id")),
        Column("owner__name", "VARCHAR", ("owner", "name")),
        Column("owner_code", "VARCHAR", ("owner", "code")),
    )
    assert [c.description for c in stream.columns] == [
        "",
        "When the thing last changed.",
        "The owner's id.",
        "",
        "Read from elsewhere.",
    ]
    assert hash(stream) == hash(
        parse_catalog(
            one_stream(
                {
                    "id": "BIGINT",
                    "updated_at": "TIMESTAMPTZ",
                    "owner": {"id": "BIGINT", "name": "VARCHAR"},
                    "owner_code": {"type": "VARCHAR", "path": "owner.code"},
                }
            )
        ).stream("things")
    ), "a stream stays hashable, and its identity ignores wording"


def test_a_column_with_a_misspelt_key_is_an_error():
    with pytest.raises(CatalogError, match="things.id: unknown column keys"):
        parse_catalog(
            one_stream({"id": {"type": "BIGINT", "descripton": "typo"}, "updated_at": "TIMESTAMPTZ"})
        )


def test_a_child_has_no_replication_key_of_its_own():
    """Children follow their root's partition; the catalog must not claim otherwise."""
    catalog = harvest_catalog()
    children = [s for s in catalog.streams if s.parent]
    assert len(children) == 9
    assert all(s.replication_key is None for s in children)
    doc = one_stream({"id": "BIGINT", "updated_at": "TIMESTAMPTZ"})
    doc["streams"].append({
        "name": "parts", "parent": "things", "endpoint": "/things/{parent_id}/parts", "envelope": "parts",
        "parent_key": "thing_id", "primary_key": ["id"], "replication": "incremental",
        "replication_key": "updated_at", "pagination": "cursor", "updated_since": True,
        "columns": {"id": "BIGINT", "thing_id": "BIGINT", "updated_at": "TIMESTAMPTZ"},
    })
    with pytest.raises(CatalogError, match=r"demo\.parts: a child follows its parent's partition"):
        parse_catalog(doc)
    del doc["streams"][1]["replication_key"]
    assert parse_catalog(doc).stream("parts").replication_key is None


def test_a_snapshot_shrink_share_outside_zero_to_one_is_refused():
    doc = one_stream({"id": "BIGINT", "updated_at": "TIMESTAMPTZ"})
    doc["streams"][0]["max_snapshot_shrink"] = 1.5
    with pytest.raises(CatalogError, match="max_snapshot_shrink"):
        parse_catalog(doc)


def test_a_reread_trigger_must_name_a_stream_of_the_catalog():
    assert harvest_catalog().stream("user_projects").reread_when == ("project_users", ("user", "id"))
    doc = one_stream({"id": "BIGINT", "updated_at": "TIMESTAMPTZ"})
    doc["streams"].append({
        "name": "parts", "parent": "things", "endpoint": "/things/{parent_id}/parts", "envelope": "parts",
        "parent_key": "thing_id", "primary_key": ["id"], "replication": "incremental",
        "pagination": "cursor", "updated_since": True, "reread_when": {"stream": "nowhere", "parent_id": "thing.id"},
        "columns": {"id": "BIGINT", "thing_id": "BIGINT"},
    })
    with pytest.raises(CatalogError, match=r"demo\.parts: reread_when"):
        parse_catalog(doc)
    doc["streams"][1]["reread_when"] = {"stream": "things"}
    with pytest.raises(CatalogError, match=r"demo\.parts: reread_when is"):
        parse_catalog(doc)
