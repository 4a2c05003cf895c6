"""Salesforce as a reverse-ETL destination: the resource, the pre-flight and the Bulk writer."""

from crm_assets.destinations.salesforce.resource import SalesforceResource
from crm_assets.destinations.salesforce.writer import PreflightError, SalesforceDestination, open_salesforce

__all__ = ["PreflightError", "SalesforceDestination", "SalesforceResource", "open_salesforce"]
