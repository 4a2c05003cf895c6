"""Harvest API v2 source: catalog, client and assets."""

from pathlib import Path

from crm_assets.catalog import Catalog, load_catalog

CATALOG_PATH = Path(__file__).with_name("catalog.yaml")


def harvest_catalog() -> Catalog:
    return load_catalog(CATALOG_PATH)
