"""Zoho CRM as a reverse-ETL destination: module field metadata as pre-flight, the records API as writer.

The resource is the Zoho source's own (``zoho``, a self client's refresh token), so one set of
credentials reads the settings tables and writes module records; its scopes must then include
``ZohoCRM.modules.ALL`` and ``ZohoCRM.settings.fields.READ``.
"""

from crm_assets.destinations.zoho.writer import ZohoDestination, open_zoho

__all__ = ["ZohoDestination", "open_zoho"]
