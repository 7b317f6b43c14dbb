"""The CRM's record ids as people write them (in a mapping file, in an id field, in an
onboarding CSV), read in the form the CRM's API returns them, so the core compares them with
what it reads without knowing the form. Pure; no I/O.

Salesforce returns 18-character ids; a 15-character one (as URLs show them) names the same
record, so it is read as its 18-character form (`salesforce_ids`).
"""

from __future__ import annotations

from typing import Any

from syncworker.connectors.salesforce_ids import to_id18


def canonical_crm_id(value: str) -> str:
    """`value` as the CRM's API returns it; ValueError, saying what was expected, when it is
    not an id."""
    return to_id18(value)


def holds_crm_ids(spec: object) -> bool:
    """A mapping file's field whose CRM attribute holds record ids (`OwnerId`, `ContactId`, …)."""
    return isinstance(spec, dict) and str(spec.get("crm", "")).endswith("Id")


def with_canonical_crm_ids(spec: dict[str, Any], seen: dict[str, str]) -> dict[str, Any]:
    """The field's CRM values (map keys and values, catalogue, default) in the API's form;
    each id read in another form is added to `seen` (as written → as read)."""

    def id18(value: Any) -> Any:
        if not isinstance(value, str) or len(value) != 15:
            return value
        try:
            seen[value] = canonical_crm_id(value)
        except ValueError:
            return value  # not an id: the value check says what is wrong with it
        return seen[value]

    spec = dict(spec)
    if isinstance(spec.get("to_zenvia"), dict):
        spec["to_zenvia"] = {id18(key): value for key, value in spec["to_zenvia"].items()}
    if isinstance(spec.get("to_crm"), dict):
        spec["to_crm"] = {key: id18(value) for key, value in spec["to_crm"].items()}
    if isinstance(spec.get("crm_values"), list):
        spec["crm_values"] = [id18(value) for value in spec["crm_values"]]
    if "default_to_crm" in spec:
        spec["default_to_crm"] = id18(spec["default_to_crm"])
    return spec
