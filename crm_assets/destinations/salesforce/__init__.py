"""Salesforce as a reverse-ETL destination: the resource, the pre-flight and the Bulk writer.

Only the resource is imported here; the writer (and simple-salesforce with it) loads when a run
opens it, so that loading the definitions stays quick.
"""

from crm_assets.destinations.salesforce.resource import SalesforceResource, SalesforceSetupError

__all__ = ["SalesforceResource", "SalesforceSetupError"]
