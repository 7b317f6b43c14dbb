"""What a mapping file's schema cannot say, checked once it validated: a native attribute
mapped twice, values no catalogue knows, maps that are never used, sections that need another.
Each problem is a key path and what is wrong there."""

from __future__ import annotations

from collections.abc import Iterator

from syncworker.mapping.model import Mapping
from syncworker.mapping.sections import FieldMapping
from syncworker.mapping.values import Scalar
from syncworker.model import SIDES, BaseStatus, Side, other_side


def consistency_problems(mapping: Mapping) -> Iterator[tuple[str, str]]:
    """What the schema cannot say: names used twice, values no catalogue knows, dead maps."""
    for side in SIDES:
        owner_of: dict[str, str] = {}
        for name, field in mapping.fields.items():
            native = field.native(side)
            if native in owner_of:
                yield (
                    f"fields.{name}.{side}",
                    f"{native!r} is already mapped by fields.{owner_of[native]}",
                )
            owner_of.setdefault(native, name)
        for native in mapping.create_defaults.for_side(side):
            if native in owner_of:
                yield (
                    f"create_defaults.{side}.{native}",
                    f"is synced by fields.{owner_of[native]}; its value comes from the other side",
                )
    for name, field in mapping.fields.items():
        yield from _field_problems(mapping, name, field)
    yield from _status_problems(mapping)
    yield from _scope_problems(mapping)
    if mapping.client_lookup is not None and not mapping.create_defaults.zenvia.get("clients"):
        yield (
            "client_lookup",
            "needs create_defaults.zenvia.clients: the client a ticket takes when no Zenvia "
            "contact has the case's e-mail",
        )
    yield from _matching_problems(mapping)


def _field_problems(mapping: Mapping, name: str, field: FieldMapping) -> Iterator[tuple[str, str]]:
    if field.owner is not None and field.conflict not in (None, field.policy):
        yield (
            f"fields.{name}.conflict",
            f"a {field.direction} field always takes the {field.owner} value; "
            f"remove conflict or write {field.policy}",
        )
    for to_side in SIDES:
        source = other_side(to_side)
        value_map = field.value_map(to_side)
        if not field.flows_from(source) and (value_map or field.has_default(to_side)):
            yield (
                f"fields.{name}.to_{to_side}",
                f"never used: the field flows {field.direction}",
            )
            continue
        if field.has_default(to_side) and not value_map:
            yield (
                f"fields.{name}.default_to_{to_side}",
                f"needs to_{to_side}: without a value map every value is copied as it is",
            )
        if to_side in field.keep_when_unmapped and (field.has_default(to_side) or not value_map):
            yield (
                f"fields.{name}.keep_when_unmapped",
                f"keeping {to_side} needs to_{to_side} and no default_to_{to_side}",
            )
        known_source = mapping.catalogue(name, source)
        known_target = mapping.catalogue(name, to_side)
        for key, value in value_map.items():
            where = f"fields.{name}.to_{to_side}.{key}"
            if known_source is not None and key not in known_source:
                yield where, _unknown(key, source, known_source)
            if known_target is not None and value is not None and value not in known_target:
                yield where, _unknown(value, to_side, known_target)
        default = field.default(to_side)
        if field.has_default(to_side) and known_target and default not in (None, *known_target):
            yield f"fields.{name}.default_to_{to_side}", _unknown(default, to_side, known_target)
        keeps = to_side in field.keep_when_unmapped
        if value_map and known_source and not field.has_default(to_side) and not keeps:
            missing = [value for value in known_source if value not in value_map]
            if missing:
                yield (
                    f"fields.{name}.to_{to_side}",
                    f"no counterpart for {source} value(s) {', '.join(map(repr, missing))}; "
                    f"map them or set default_to_{to_side}",
                )


def _unknown(value: Scalar, side: Side, known: tuple[Scalar, ...]) -> str:
    hint = next((f"; did you mean {k!r}?" for k in known if str(k) == str(value)), "")
    listed = ", ".join(map(repr, known))
    return f"{value!r} is not a known {side} value (known: {listed}){hint}"


def _status_problems(mapping: Mapping) -> Iterator[tuple[str, str]]:
    if mapping.statuses is not None and "status" not in mapping.fields:
        yield "statuses", "describes fields.status, which the file does not map"
    known = tuple(mapping.statuses.zenvia) if mapping.statuses else None
    for status in mapping.zenvia_justifications:
        if known is not None and status not in known:
            yield f"zenvia_justifications.{status}", _unknown(status, "zenvia", known)
    has_status = "status" in mapping.fields
    if mapping.on_delete == "close" and not (
        has_status and mapping.closed_status("crm") and mapping.closed_status("zenvia")
    ):
        yield (
            "on_delete",
            "close needs fields.status and a status with base closed "
            "in statuses.crm and statuses.zenvia",
        )
    if mapping.on_cancel == "close" and mapping.statuses is not None and has_status:
        for value, base in mapping.statuses.zenvia.items():
            landing = mapping.status_base("crm", mapping.translate("status", "zenvia", value))
            if base is BaseStatus.CANCELED and landing is not BaseStatus.CLOSED:
                yield (
                    f"fields.status.to_crm.{value}",
                    "on_cancel is close, so a canceled Zenvia status must map to a CRM status "
                    "whose base is closed",
                )


def _scope_problems(mapping: Mapping) -> Iterator[tuple[str, str]]:
    if mapping.scope.states is not None and (
        mapping.statuses is None or "status" not in mapping.fields
    ):
        yield "scope.states", "needs fields.status and the statuses section to tell a base status"


def _matching_problems(mapping: Mapping) -> Iterator[tuple[str, str]]:
    names = [rule.name for rule in mapping.matching.rules]
    for index, name in enumerate(names):
        if name in names[:index]:
            yield f"matching.rules.{index}.name", f"{name!r} names an earlier rule too"
