"""The DuckDB warehouse: schema from the catalogs, transactional idempotent writes."""

from crm_assets.warehouse.store import Warehouse, WarehouseSession
from crm_assets.warehouse.table_write import TableWrite, WriteCounts

__all__ = ["TableWrite", "Warehouse", "WarehouseSession", "WriteCounts"]
