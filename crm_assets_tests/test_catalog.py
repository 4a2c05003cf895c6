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
