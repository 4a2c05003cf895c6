"""What a load hands the warehouse: one table's rows of a batch and the rule that applies them,
and what applying them did (see :mod:`crm_assets.warehouse.store` for the rules)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from crm_assets.catalog import Column, Stream
from crm_assets.warehouse.records import Rows, convert


@dataclass
class WriteCounts:
    """What one stream's writes did, summed over a run."""

    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0

    @property
    def written(self) -> int:
        return self.inserted + self.updated

    def add(self, other: WriteCounts) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.deleted += other.deleted
        self.unchanged += other.unchanged


@dataclass
class TableWrite:
    """Rows for one table in a batch, and the rule that applies them."""

    stream: Stream
    records: list[Any]
    mode: str  # merge | replace | snapshot
    parent_ids: list[Any] | None = None
    scope: list[Any] | None = None
    consumed_keys: tuple[str, ...] = ()  # record keys that feed child tables
    # For a `replace`: each scoped root's replication-key value, and the root stream, so that
    # the children of a root whose stored version is newer are left alone.
    scope_versions: list[Any] | None = None
    root: Stream | None = None
    # The records as Arrow once converted (then `records` is emptied): converting on the
    # reading thread leaves the writer only DuckDB's work, which runs free of the GIL.
    rows: Rows | None = None

    def arrow(self, known: list[Column]) -> Rows:
        """The rows as Arrow, for a table whose columns are `known`."""
        if self.rows is not None:
            return self.rows
        return convert(self.stream, self.records, known, self.parent_ids, self.consumed_keys)

    def converted(self, known: list[Column]) -> TableWrite:
        """This write with its records converted, and let go of."""
        return replace(self, records=[], parent_ids=None, rows=self.arrow(known))
