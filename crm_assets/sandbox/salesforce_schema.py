"""Salesforce's description of objects and fields (spec §2.4): :class:`Field` and :class:`SObject`,
which answer the ``describe`` calls, with the keys a pre-flight check and dagster-salesforce read
(``compoundFieldName`` included). The org's objects themselves are in ``salesforce_objects``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "int": "xsd:int",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
    "address": "urn:address",
}
TEXT_TYPES = {"string", "textarea", "phone", "url", "email", "picklist", "multipicklist", "combobox"}
NUMBER_TYPES = {"double", "currency", "percent"}
ALWAYS_FALSE = (
    "autoNumber",
    "calculated",
    "cascadeDelete",
    "caseSensitive",
    "dependentPicklist",
    "deprecatedAndHidden",
    "encrypted",
    "htmlFormatted",
    "namePointing",
    "polymorphicForeignKey",
    "restrictedDelete",
)
ALWAYS_NULL = (
    "calculatedFormula",
    "controllerName",
    "defaultValueFormula",
    "extraTypeInfo",
    "inlineHelpText",
    "referenceTargetField",
    "relationshipOrder",
)


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    label: str
    length: int = 0
    precision: int = 0
    scale: int = 0
    digits: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    external_id: bool = False
    id_lookup: bool = False
    unique: bool = False
    custom: bool = False
    defaulted_on_create: bool = False
    default_value: Any = None
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    picklist: tuple[str, ...] = ()
    restricted_picklist: bool = False
    compound_field_name: str | None = None
    name_field: bool = False

    @property
    def required_on_create(self) -> bool:
        return self.createable and not self.nillable and not self.defaulted_on_create

    def describe(self) -> dict[str, Any]:
        text = self.type in TEXT_TYPES or self.type in ("id", "reference")
        unsortable = ("textarea", "address")
        return {
            **dict.fromkeys(ALWAYS_FALSE, False),
            **dict.fromkeys(ALWAYS_NULL, None),
            "aggregatable": self.type not in unsortable,
            "byteLength": self.length * 3 if text else 0,
            "compoundFieldName": self.compound_field_name,
            "createable": self.createable,
            "custom": self.custom,
            "defaultValue": self.default_value,
            "defaultedOnCreate": self.defaulted_on_create,
            "digits": self.digits,
            "externalId": self.external_id,
            "filterable": self.type not in unsortable,
            "groupable": self.type not in (*unsortable, "double", "currency", "percent", "datetime"),
            "idLookup": self.id_lookup,
            "label": self.label,
            "length": self.length,
            "name": self.name,
            "nameField": self.name_field,
            "nillable": self.nillable,
            "permissionable": self.custom or (self.nillable and self.updateable),
            "picklistValues": [
                {"active": True, "defaultValue": False, "label": value, "validFor": None, "value": value}
                for value in self.picklist
            ],
            "precision": self.precision,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "restrictedPicklist": self.restricted_picklist,
            "scale": self.scale,
            "soapType": SOAP_TYPES.get(self.type, "xsd:string"),
            "sortable": self.type != "textarea",
            "type": self.type,
            "unique": self.unique,
            "updateable": self.updateable,
        }


@dataclass
class SObject:
    name: str
    label: str
    key_prefix: str
    fields: list[Field]
    custom: bool = False
    writable: bool = True
    by_lower: dict[str, Field] = field(init=False)
    by_relationship: dict[str, Field] = field(init=False)

    def __post_init__(self) -> None:
        self.by_lower = {f.name.lower(): f for f in self.fields}
        self.by_relationship = {f.relationship_name.lower(): f for f in self.fields if f.relationship_name}

    def field(self, name: str) -> Field | None:
        return self.by_lower.get(name.lower())

    def describe(self, version: str) -> dict[str, Any]:
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {
            **self.summary(version),
            "fields": [f.describe() for f in self.fields],
            "childRelationships": [],
            "recordTypeInfos": [],
            "supportedScopes": [],
            "namedLayoutInfos": [],
            "actionOverrides": [],
            "urls": {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"},
        }

    def summary(self, version: str) -> dict[str, Any]:
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {
            "name": self.name,
            "label": self.label,
            "labelPlural": self.label + "s",
            "keyPrefix": self.key_prefix,
            "custom": self.custom,
            "customSetting": False,
            "queryable": True,
            "retrieveable": True,
            "searchable": True,
            "createable": self.writable,
            "updateable": self.writable,
            "deletable": self.writable,
            "undeletable": self.writable,
            "triggerable": self.writable,
            "layoutable": True,
            "activateable": False,
            "feedEnabled": False,
            "mergeable": False,
            "replicateable": True,
            "urls": {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"},
        }
