"""The emulated org's objects and their fields (described by ``salesforce_schema``).

Objects: ``Account`` and ``Contact`` with the standard fields a services firm maps, the custom
object ``Harvest_Project__c``, and a read-only ``User`` (the sandbox's one user, owner of every
record). External ids: ``Account.Harvest_Client_Id__c``, ``Contact.Harvest_Contact_Id__c``,
``Harvest_Project__c.Harvest_Project_Id__c`` (text, unique, case-insensitive). System fields
(``Id``, ``IsDeleted``, ``CreatedDate``, ``CreatedById``, ``LastModifiedDate``,
``LastModifiedById``, ``SystemModstamp``) are neither createable nor updateable.
"""

from __future__ import annotations

from typing import Any

from crm_assets.sandbox.salesforce_schema import Field, SObject


def _system_fields(owner: bool = True) -> list[Field]:
    ro = {"createable": False, "updateable": False, "nillable": False, "defaulted_on_create": True}
    fields = [
        Field("Id", "id", "Record ID", length=18, id_lookup=True, **ro),
        Field("IsDeleted", "boolean", "Deleted", default_value=False, **ro),
    ]
    if owner:
        fields.append(
            Field(
                "OwnerId",
                "reference",
                "Owner ID",
                length=18,
                nillable=False,
                defaulted_on_create=True,
                reference_to=("User",),
                relationship_name="Owner",
            )
        )
    return fields + [
        Field("CreatedDate", "datetime", "Created Date", **ro),
        Field(
            "CreatedById",
            "reference",
            "Created By ID",
            length=18,
            reference_to=("User",),
            relationship_name="CreatedBy",
            **ro,
        ),
        Field("LastModifiedDate", "datetime", "Last Modified Date", **ro),
        Field(
            "LastModifiedById",
            "reference",
            "Last Modified By ID",
            length=18,
            reference_to=("User",),
            relationship_name="LastModifiedBy",
            **ro,
        ),
        Field("SystemModstamp", "datetime", "System Modstamp", **ro),
    ]


def _text(name: str, label: str, length: int, **kw: Any) -> Field:
    return Field(name, kw.pop("type", "string"), label, length=length, **kw)


def _address(prefix: str, label: str) -> list[Field]:
    compound = f"{prefix}Address"
    return [
        _text(f"{prefix}Street", f"{label} Street", 255, type="textarea", compound_field_name=compound),
        _text(f"{prefix}City", f"{label} City", 40, compound_field_name=compound),
        _text(f"{prefix}State", f"{label} State/Province", 80, compound_field_name=compound),
        _text(f"{prefix}PostalCode", f"{label} Zip/Postal Code", 20, compound_field_name=compound),
        _text(f"{prefix}Country", f"{label} Country", 80, compound_field_name=compound),
        Field(compound, "address", f"{label} Address", createable=False, updateable=False),
    ]


def _number(name: str, label: str, type_: str, precision: int, scale: int, **kw: Any) -> Field:
    return Field(name, type_, label, precision=precision, scale=scale, custom=name.endswith("__c"), **kw)


def _external_id(name: str, label: str, length: int) -> Field:
    return _text(name, label, length, external_id=True, id_lookup=True, unique=True, custom=True)


ACCOUNT = SObject(
    "Account",
    "Account",
    "001",
    [
        *_system_fields(),
        _text("Name", "Account Name", 255, nillable=False, id_lookup=True, name_field=True),
        _text("AccountNumber", "Account Number", 40),
        _text(
            "Type",
            "Account Type",
            255,
            type="picklist",
            picklist=(
                "Prospect",
                "Customer - Direct",
                "Customer - Channel",
                "Channel Partner / Reseller",
                "Installation Partner",
                "Technology Partner",
                "Other",
            ),
        ),
        _text(
            "Industry",
            "Industry",
            255,
            type="picklist",
            picklist=("Agriculture", "Banking", "Consulting", "Education", "Technology", "Other"),
        ),
        _text("Phone", "Account Phone", 40, type="phone"),
        _text("Fax", "Account Fax", 40, type="phone"),
        _text("Website", "Website", 255, type="url"),
        _number("AnnualRevenue", "Annual Revenue", "currency", 18, 0),
        Field("NumberOfEmployees", "int", "Employees", digits=8),
        _text("Description", "Account Description", 32000, type="textarea"),
        *_address("Billing", "Billing"),
        *_address("Shipping", "Shipping"),
        _external_id("Harvest_Client_Id__c", "Harvest Client Id", 20),
        _text("Currency_Code__c", "Currency Code", 3, custom=True),
        _number("Invoiced_Amount__c", "Invoiced Amount", "currency", 16, 2),
        _number("Paid_Amount__c", "Paid Amount", "currency", 16, 2),
        _number("Outstanding_Amount__c", "Outstanding Amount", "currency", 16, 2),
        _number("Overdue_Amount__c", "Overdue Amount", "currency", 16, 2),
        Field(
            "Is_Active__c",
            "boolean",
            "Active",
            nillable=False,
            defaulted_on_create=True,
            default_value=True,
            custom=True,
        ),
    ],
)

CONTACT = SObject(
    "Contact",
    "Contact",
    "003",
    [
        *_system_fields(),
        Field(
            "AccountId",
            "reference",
            "Account ID",
            length=18,
            reference_to=("Account",),
            relationship_name="Account",
        ),
        _text("LastName", "Last Name", 80, nillable=False, compound_field_name="Name"),
        _text("FirstName", "First Name", 40, compound_field_name="Name"),
        _text(
            "Salutation",
            "Salutation",
            40,
            type="picklist",
            picklist=("Mr.", "Ms.", "Mrs.", "Dr.", "Prof."),
            compound_field_name="Name",
        ),
        _text(
            "Name",
            "Full Name",
            121,
            createable=False,
            updateable=False,
            nillable=False,
            name_field=True,
            id_lookup=True,
        ),
        _text("Title", "Title", 128),
        _text("Department", "Department", 80),
        _text("Email", "Email", 80, type="email", id_lookup=True),
        _text("Phone", "Business Phone", 40, type="phone"),
        _text("MobilePhone", "Mobile Phone", 40, type="phone"),
        _text("Fax", "Business Fax", 40, type="phone"),
        _text("Description", "Contact Description", 32000, type="textarea"),
        *_address("Mailing", "Mailing"),
        Field("Birthdate", "date", "Birthdate"),
        _external_id("Harvest_Contact_Id__c", "Harvest Contact Id", 20),
    ],
)

HARVEST_PROJECT = SObject(
    "Harvest_Project__c",
    "Harvest Project",
    "a0B",
    custom=True,
    fields=[
        *_system_fields(),
        _text(
            "Name",
            "Harvest Project Name",
            80,
            nillable=True,
            defaulted_on_create=True,
            name_field=True,
            id_lookup=True,
        ),
        _external_id("Harvest_Project_Id__c", "Harvest Project Id", 20),
        Field(
            "Account__c",
            "reference",
            "Account",
            length=18,
            reference_to=("Account",),
            relationship_name="Account__r",
            custom=True,
        ),
        _text("Code__c", "Code", 40, custom=True),
        Field(
            "Is_Active__c",
            "boolean",
            "Active",
            nillable=False,
            defaulted_on_create=True,
            default_value=False,
            custom=True,
        ),
        Field(
            "Is_Billable__c",
            "boolean",
            "Billable",
            nillable=False,
            defaulted_on_create=True,
            default_value=False,
            custom=True,
        ),
        _text(
            "Bill_By__c",
            "Bill By",
            255,
            type="picklist",
            picklist=("Project", "Tasks", "People", "none"),
            restricted_picklist=True,
            custom=True,
        ),
        _text(
            "Budget_By__c",
            "Budget By",
            255,
            type="picklist",
            picklist=("project", "project_cost", "task", "task_fees", "person", "none"),
            custom=True,
        ),
        _number("Budget_Hours__c", "Budget Hours", "double", 16, 2),
        _number("Hours_Logged__c", "Hours Logged", "double", 16, 2),
        _number("Billable_Hours__c", "Billable Hours", "double", 16, 2),
        _number("Budget_Amount__c", "Budget Amount", "currency", 16, 2),
        _number("Billable_Amount__c", "Billable Amount", "currency", 16, 2),
        _number("Hourly_Rate__c", "Hourly Rate", "currency", 10, 2),
        _number("Budget_Used__c", "Budget Used", "percent", 10, 2),
        Field("Entries__c", "double", "Time Entries", precision=9, scale=0, custom=True),
        Field("Starts_On__c", "date", "Starts On", custom=True),
        Field("Ends_On__c", "date", "Ends On", custom=True),
        Field("Last_Entry_At__c", "datetime", "Last Entry At", custom=True),
        _text("Notes__c", "Notes", 32768, type="textarea", custom=True),
    ],
)

USER = SObject(
    "User",
    "User",
    "005",
    writable=False,
    fields=[
        *[f for f in _system_fields(owner=False)],
        _text("Username", "Username", 80, nillable=False, createable=False, updateable=False, id_lookup=True),
        _text("Name", "Full Name", 121, createable=False, updateable=False, name_field=True),
        _text("Email", "Email", 128, type="email", createable=False, updateable=False),
        Field("IsActive", "boolean", "Active", createable=False, updateable=False, nillable=False),
    ],
)

OBJECTS: dict[str, SObject] = {o.name.lower(): o for o in (ACCOUNT, CONTACT, HARVEST_PROJECT, USER)}
PREFIXES: dict[str, SObject] = {o.key_prefix: o for o in OBJECTS.values()}


def find_object(name: str) -> SObject | None:
    return OBJECTS.get(name.lower())


def global_describe(version: str) -> dict[str, Any]:
    return {
        "encoding": "UTF-8",
        "maxBatchSize": 200,
        "sobjects": [o.summary(version) for o in OBJECTS.values()],
    }
