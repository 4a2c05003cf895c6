"""Zoho CRM v8: the six settings tables of the seed, replicated into schema `zoho`."""

from pathlib import Path

from crm_assets.catalog import Catalog, load_catalog

CATALOG_PATH = Path(__file__).with_name("catalog.yaml")


def zoho_catalog() -> Catalog:
    return load_catalog(CATALOG_PATH)
