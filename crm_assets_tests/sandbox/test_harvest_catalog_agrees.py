"""The platform's Harvest catalog agrees with the sandbox, which is written from Harvest's reference.

The sandbox no longer reads the catalog, so a catalog mistake (``contacts`` at ``/people`` with
envelope ``people``, a page-mode endpoint declared cursor, a column at a path Harvest does not
serve) now shows up here: each catalog entry is checked against the sandbox's own route table
and record shapes, and its endpoint is requested over HTTP exactly as the catalog spells it.
"""

from __future__ import annotations

import pytest

from crm_assets.sandbox.harvest_reference import ENDPOINT_BY_PATH, RECORDS, Arr, Obj
from crm_assets.sources.harvest import harvest_catalog
from crm_assets_tests.sandbox.harvest_http import get

CATALOG = harvest_catalog()
SCALAR_OF_COLUMN_TYPE = {"BIGINT": "integer", "DOUBLE": "decimal", "VARCHAR": "string", "BOOLEAN": "boolean",
                         "DATE": "date", "TIMESTAMPTZ": "datetime"}


def sandbox_endpoint(stream):
    """The sandbox's endpoint for a stream with a request of its own (its path, ``{id}`` for a parent)."""
    path = stream.endpoint.replace("{parent_id}", "{id}")
    assert path in ENDPOINT_BY_PATH, f"{stream.name}: Harvest serves no {stream.endpoint}"
    return ENDPOINT_BY_PATH[path]


def record_shape(stream) -> Obj:
    """The reference shape of the objects a stream's columns read."""
    if not stream.is_derived:
        return RECORDS[sandbox_endpoint(stream).record]
    parent = record_shape(CATALOG.stream(stream.parent))
    assert stream.path in parent.fields, f"{stream.name}: {stream.parent} records have no {stream.path!r}"
    shape = parent.fields[stream.path]
    return shape.item if isinstance(shape, Arr) else shape


def column_errors(stream) -> list[str]:
    """Columns whose path the reference shape lacks, or whose type does not fit the field's."""
    shape, errors = record_shape(stream), []
    for column in stream.columns:
        if column.path is None:
            continue  # the parent's id, filled in by the reader
        field = shape
        for key in column.path:
            if not isinstance(field, Obj) or key not in field.fields:
                errors.append(f"{stream.name}.{column.name}: no field at {'.'.join(column.path)}")
                break
            field = field.fields[key]
        else:
            if not column.path:
                continue  # a scalar array element (user_roles.user_id)
            if column.type == "JSON":
                fits = isinstance(field, (Arr, Obj))
            elif column.type.endswith("[]"):
                fits = isinstance(field, Arr) and field.item == SCALAR_OF_COLUMN_TYPE[column.type[:-2]]
            else:
                fits = field == SCALAR_OF_COLUMN_TYPE[column.type]
            if not fits:
                errors.append(f"{stream.name}.{column.name}: {column.type} but the reference has {field}")
    return errors


@pytest.mark.parametrize("stream", [s for s in CATALOG.streams if s.endpoint], ids=lambda s: s.name)
def test_an_endpoint_stream_matches_the_route_table(stream):
    endpoint = sandbox_endpoint(stream)
    assert endpoint.table == stream.name, "the sandbox's ground truth for this stream has another name"
    assert endpoint.envelope == stream.envelope
    assert endpoint.pagination == stream.pagination
    assert endpoint.updated_since == stream.updated_since
    if stream.parent:
        assert endpoint.parent == CATALOG.stream(stream.parent).name


@pytest.mark.parametrize("stream", CATALOG.streams, ids=lambda s: s.name)
def test_every_column_reads_a_field_the_reference_has(stream):
    assert not column_errors(stream)


@pytest.mark.parametrize("stream", [s for s in CATALOG.streams if s.endpoint], ids=lambda s: s.name)
def test_the_catalog_endpoint_serves_its_envelope_and_columns(sandbox, stream):
    path = stream.endpoint
    if stream.parent:
        parent_ids = [item["parent_id"] for item in sandbox.harvest_records(stream.name)]
        assert parent_ids, f"no {stream.parent} record has {stream.name}"
        path = path.replace("{parent_id}", str(parent_ids[0]))
    status, body = get(sandbox, f"{path}?per_page=50")
    assert status == 200, f"GET {path}: {status} {body}"
    assert stream.envelope in body, f"GET {path}: no {stream.envelope!r} key in {sorted(body)}"
    records = body[stream.envelope]
    assert records
    top_level = {c.path[0] for c in stream.columns if c.path}
    for record in records:
        assert top_level <= set(record), f"{stream.name} id={record['id']}: missing {sorted(top_level - set(record))}"


def test_a_renamed_endpoint_would_fail():
    """The check above is not vacuous: the issue's example, contacts at /people, is caught."""
    contacts = CATALOG.stream("contacts")
    moved = type(contacts)(**{**contacts.__dict__, "endpoint": "/people", "envelope": "people"})
    with pytest.raises(AssertionError, match="serves no /people"):
        test_an_endpoint_stream_matches_the_route_table(moved)
