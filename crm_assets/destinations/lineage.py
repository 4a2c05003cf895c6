"""A sync's upstream assets, read from its SQL: the warehouse tables the query reads.

The query is parsed with sqlglot in DuckDB's dialect. Names bound by a CTE are not tables, and
tables inside subqueries, joins and CTE bodies count. A table is named ``schema.table``, which
is the asset key ``schema/table`` (``harvest.time_entries`` → ``harvest/time_entries``).
"""

from __future__ import annotations

from functools import lru_cache

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError


class LineageError(ValueError):
    """The query cannot be parsed, or reads a table whose schema it does not name."""


@lru_cache(maxsize=256)
def _parse(query: str) -> exp.Query:
    """The query's one statement; cached, as each sync's query is read for its columns and for
    its tables while the definitions load (callers only read the tree)."""
    try:
        statements = [s for s in sqlglot.parse(query, read="duckdb") if s is not None]
    except ParseError as exc:
        raise LineageError(f"not valid DuckDB SQL: {exc}") from exc
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise LineageError("must be exactly one SELECT statement")
    return statements[0]


def result_names(query: str) -> list[str]:
    """The names the query gives its result columns, as far as the SQL alone tells."""
    return list(_parse(query).named_selects)


def source_tables(query: str) -> list[tuple[str, str]]:
    """(schema, table) pairs the query reads, lower-cased, sorted and without repeats."""
    tree = _parse(query)
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    found: set[tuple[str, str]] = set()
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            continue  # a table function such as read_parquet(...)
        name, schema = table.name.lower(), table.db.lower()
        if not schema:
            if name in ctes:
                continue
            raise LineageError(f"table {table.name!r} needs its schema, as in harvest.{table.name}")
        found.add((schema, name))
    return sorted(found)
