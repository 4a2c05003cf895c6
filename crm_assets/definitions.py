"""The single entry point: every asset, check and resource of crm_assets.

The imports and the build run with Python's cyclic collector paused (see
:mod:`crm_assets.loading`): the UI's code server, every run and every step load this module in a
fresh process, and the collector took about half a second of that load and as much again at exit
(benchmarks/definitions_load.py).
"""

from __future__ import annotations

import os

from crm_assets.loading import collector_paused

with collector_paused():
    import dagster as dg
    from dagster_duckdb import DuckDBResource

    from crm_assets.code_links import link_assets_to_code, with_python_links
    from crm_assets.destinations.assets import build_sync_definitions
    from crm_assets.destinations.salesforce import SalesforceResource
    from crm_assets.destinations.salesforce.resource import DEFAULT_API_VERSION, DEFAULT_LOGIN_URL
    from crm_assets.destinations.specs import load_syncs, syncs_path
    from crm_assets.marts import marts_definitions
    from crm_assets.orchestration.wiring import build_orchestration
    from crm_assets.sources.harvest import harvest_catalog
    from crm_assets.sources.harvest.assets import harvest_assets
    from crm_assets.sources.harvest.client import DEFAULT_API_URL, HarvestClient
    from crm_assets.sources.harvest.oauth import DEFAULT_ID_URL
    from crm_assets.sources.zoho import zoho_catalog
    from crm_assets.sources.zoho.assets import zoho_assets
    from crm_assets.sources.zoho.client import ZohoClient
    from crm_assets.sources.zoho.oauth import DEFAULT_ACCOUNTS_URL
    from crm_assets.warehouse import Warehouse

DEFAULT_DUCKDB_PATH = "data/crm.duckdb"
HARVEST_TOKEN_STATE_FILE = "harvest_oauth.json"


def _env_var(name: str) -> dg.EnvVar | None:
    """`dg.EnvVar(name)` when the variable is set, else None.

    Dagster resolves an EnvVar when a run starts and fails the run's config with a long
    traceback when it is unset; passing None for an unset variable lets the resource say in one
    line which of the two ways to connect is incomplete, while a set secret is still read
    through EnvVar (its value is never written into the run's config or snapshot).
    """
    return dg.EnvVar(name) if os.getenv(name) else None


def duckdb_path() -> str:
    return os.getenv("CRM_ASSETS_DUCKDB_PATH") or DEFAULT_DUCKDB_PATH


def harvest_client() -> HarvestClient:
    """The Harvest resource from the environment: a personal token, or OAuth credentials.

    A rotated OAuth refresh token is kept in a file beside the warehouse file, where the next
    run finds it (see :mod:`crm_assets.sources.harvest.oauth`).
    """
    return HarvestClient(
        access_token=_env_var("HARVEST_ACCESS_TOKEN"),
        account_id=_env_var("HARVEST_ACCOUNT_ID"),
        client_id=_env_var("HARVEST_CLIENT_ID"),
        client_secret=_env_var("HARVEST_CLIENT_SECRET"),
        refresh_token=_env_var("HARVEST_REFRESH_TOKEN"),
        id_url=os.getenv("HARVEST_ID_URL") or DEFAULT_ID_URL,
        api_url=os.getenv("HARVEST_API_URL") or DEFAULT_API_URL,
        token_state_path=os.path.join(os.path.dirname(duckdb_path()) or ".", HARVEST_TOKEN_STATE_FILE),
    )


def salesforce_resource() -> SalesforceResource:
    """The Salesforce resource from the environment: credentials, client credentials or a session id."""
    return SalesforceResource(
        username=_env_var("SALESFORCE_USERNAME"),
        password=_env_var("SALESFORCE_PASSWORD"),
        security_token=_env_var("SALESFORCE_SECURITY_TOKEN"),
        login_url=os.getenv("SALESFORCE_LOGIN_URL") or DEFAULT_LOGIN_URL,
        client_id=_env_var("SALESFORCE_CLIENT_ID"),
        client_secret=_env_var("SALESFORCE_CLIENT_SECRET"),
        instance_url=os.getenv("SALESFORCE_INSTANCE_URL") or None,
        session_id=_env_var("SALESFORCE_SESSION_ID"),
        api_version=os.getenv("SALESFORCE_API_VERSION") or DEFAULT_API_VERSION,
        ca_bundle=os.getenv("SALESFORCE_CA_BUNDLE") or None,
    )


def zoho_client() -> ZohoClient:
    """The Zoho resource from the environment; the API domain comes with the token unless
    ZOHO_API_URL names one."""
    return ZohoClient(
        client_id=_env_var("ZOHO_CLIENT_ID"),
        client_secret=_env_var("ZOHO_CLIENT_SECRET"),
        refresh_token=_env_var("ZOHO_REFRESH_TOKEN"),
        accounts_url=os.getenv("ZOHO_ACCOUNTS_URL") or DEFAULT_ACCOUNTS_URL,
        api_url=os.getenv("ZOHO_API_URL") or None,
    )


with collector_paused():
    syncs = load_syncs()
    defs = dg.Definitions.merge(
        dg.Definitions(
            assets=with_python_links([harvest_assets, zoho_assets]),
            resources={
                "harvest": harvest_client(),
                "zoho": zoho_client(),
                "warehouse": Warehouse(duckdb=DuckDBResource(database=duckdb_path())),
                "salesforce": salesforce_resource(),
            },
        ),
        marts_definitions(),
        build_sync_definitions(syncs),
        build_orchestration([(harvest_catalog(), harvest_assets), (zoho_catalog(), zoho_assets)], syncs),
    )
    defs = link_assets_to_code(defs, sync_files={"salesforce": syncs_path(), "zoho_crm": syncs_path()})
