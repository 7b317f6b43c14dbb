"""What the mapping names, per side: the values and ids the judgements compare with what a
remote holds."""

from __future__ import annotations

from syncworker.mapping import Mapping as FieldMap
from syncworker.mapping import Scalar
from syncworker.model import Side, other_side

# Zenvia native attributes holding ids the mapping may name, and what the checklist calls them.
ZENVIA_ID_KINDS = {
    "status": "status",
    "justification": "justification",
    "category": "category",
    "urgency": "urgency",
    "ownerId": "agent",
    "ownerTeam": "team",
}


def crm_values_named(mapping: FieldMap) -> dict[str, set[Scalar]]:
    """Every CRM value the mapping names, per Case field: maps, defaults, statuses, scope."""
    named: dict[str, set[Scalar]] = {}
    for name, field_map in mapping.fields.items():
        named.setdefault(field_map.crm, set()).update(_values_named(mapping, name, "crm"))
    for native, value in mapping.create_defaults.crm.items():
        named.setdefault(native, set()).add(value)
    for native, allowed in mapping.scope.crm.items():
        named.setdefault(native, set()).update(allowed)
    return {native: {v for v in values if v is not None} for native, values in named.items()}


def _values_named(mapping: FieldMap, name: str, side: Side) -> set[Scalar]:
    """One side's values a field's maps, default and catalogue (or the statuses) name."""
    field_map = mapping.fields[name]
    values: set[Scalar] = {
        *field_map.value_map(other_side(side)),
        *field_map.value_map(side).values(),
        *(mapping.catalogue(name, side) or ()),
    }
    if field_map.has_default(side):
        values.add(field_map.default(side))
    return values


def zenvia_ids_named(mapping: FieldMap) -> dict[str, set[Scalar]]:
    """Every Zenvia id the mapping names, per kind (status, justification, category, …)."""
    named: dict[str, set[Scalar]] = {}
    for name, field_map in mapping.fields.items():
        kind = ZENVIA_ID_KINDS.get(field_map.zenvia)
        if kind is None:
            continue
        named.setdefault(kind, set()).update(_values_named(mapping, name, "zenvia"))
    named.setdefault("justification", set()).update(mapping.zenvia_justifications.values())
    return {kind: {v for v in ids if v is not None} for kind, ids in named.items() if ids - {None}}
