"""The DuckDB warehouse: schema from the catalogs, transactional idempotent writes."""

from crm_assets.warehouse.store import TableWrite, Warehouse, WarehouseSession, WriteCounts

__all__ = ["TableWrite", "Warehouse", "WarehouseSession", "WriteCounts"]
