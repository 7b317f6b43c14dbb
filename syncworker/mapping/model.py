"""`Mapping`: a whole validated mapping file, and the pure questions the engine and the
service ask of it (`project`, `translate`, `agree`, `settled`, `in_scope`, the status rules,
what a create writes). Pure."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    StrictInt,
    StrictStr,
    model_validator,
)

from syncworker.connectors.crm_ids import holds_crm_ids, with_canonical_crm_ids
from syncworker.mapping.sections import (
    ClientLookup,
    CommentSync,
    DescriptionSource,
    FieldMapping,
    Matching,
    PerSide,
    Scope,
    Section,
    Statuses,
)
from syncworker.mapping.values import CrmName, EndPolicy, Scalar, is_scalar, record_stamp
from syncworker.model import BaseStatus, NativeFields, Side, other_side

ZENVIA_JUSTIFICATION = "justification"
"""The Zenvia attribute written together with a status that needs a justification."""
_ZENVIA_CHILDREN = frozenset({"category", "urgency"})
"""Zenvia attributes that must belong to another (a category to its type and service, an
urgency to its category): changing the parent clears a child that no longer fits."""

_ZENVIA_BASE_TYPES = {
    "NEW": BaseStatus.NEW,
    "IN_ATTENDANCE": BaseStatus.OPEN,
    "STOPPED": BaseStatus.WAITING,
    "CANCELED": BaseStatus.CANCELED,
    "RESOLVED": BaseStatus.RESOLVED,
    "CLOSED": BaseStatus.CLOSED,
}


class Mapping(Section):
    """A validated mapping file, with the pure questions the engine and the service ask."""

    crm_system: CrmName
    fields: dict[StrictStr, FieldMapping] = Field(min_length=1)
    statuses: Statuses | None = None
    zenvia_justifications: dict[StrictInt, StrictInt] = Field(default_factory=dict)
    create_defaults: PerSide = PerSide()
    client_lookup: ClientLookup | None = None
    description: DescriptionSource | None = None
    comments: CommentSync = CommentSync()
    scope: Scope = Scope()
    matching: Matching = Matching()
    on_delete: EndPolicy = "unlink"
    on_cancel: EndPolicy = "close"
    _normalised_ids: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _crm_ids_as_the_api_returns_them(
        cls, data: Any, handler: ModelWrapValidatorHandler[Any]
    ) -> Any:
        """A CRM id the file writes in another form than the CRM's API returns (see
        `connectors.crm_ids`) names the same record, so it is read in the API's form. Left as
        written, it would never equal what the API returns: our own write would read as a
        change."""
        seen: dict[str, str] = {}
        if isinstance(data, dict) and isinstance(data.get("fields"), dict):
            fields = {
                name: with_canonical_crm_ids(spec, seen) if holds_crm_ids(spec) else spec
                for name, spec in data["fields"].items()
            }
            data = {**data, "fields": fields}
        mapping = handler(data)
        if seen:
            mapping._normalised_ids = seen
        return mapping

    @property
    def normalised_ids(self) -> dict[str, str]:
        """CRM ids the file wrote in another form than the API's, and the forms they were read
        as."""
        return dict(self._normalised_ids)

    def synced_native_names(self, side: Side) -> tuple[str, ...]:
        return tuple(field.native(side) for field in self.fields.values())

    def project(self, side: Side, fields: NativeFields) -> NativeFields:
        """Only the synced native fields of one side: what a baseline stores."""
        return {
            name: copy.deepcopy(fields[name])
            for name in self.synced_native_names(side)
            if name in fields
        }

    def translate(self, field: str, from_side: Side, value: Any) -> Any:
        """The value to write on the other side: mapped, else the default, else unchanged;
        then fitted to what that side can hold."""
        return self.fields[field].fit(other_side(from_side), self._mapped(field, from_side, value))

    def adaptation(self, field: str, from_side: Side, value: Any) -> str | None:
        """Why `translate` wrote something else than the mapped value, for the sync log."""
        mapped = self._mapped(field, from_side, value)
        to_side = other_side(from_side)
        fitted = self.fields[field].fit(to_side, mapped)
        if fitted == mapped:
            return None
        label = self.system_label(to_side)
        if isinstance(mapped, str) and mapped.strip():
            return f"{field} cut to {len(fitted)} characters for {label}"
        return f"{field} was empty: {label} gets the placeholder {fitted!r}"

    def _mapped(self, field: str, from_side: Side, value: Any) -> Any:
        mapped = self.fields[field]
        to_side = other_side(from_side)
        value_map = mapped.value_map(to_side)
        if not value_map or not is_scalar(value):
            return copy.deepcopy(value)
        if value in value_map:
            return value_map[value]
        return mapped.default(to_side) if mapped.has_default(to_side) else value

    def agree(self, field: str, crm_value: Any, zenvia_value: Any) -> bool:
        """Equal under the mapping in a direction the field flows (lossy maps agree either way:
        Escalated agrees with 2 because Escalated → 2, although 2 → Working)."""
        mapped = self.fields[field]
        forward = self.translate(field, "crm", crm_value) == zenvia_value
        backward = self.translate(field, "zenvia", zenvia_value) == crm_value
        return (mapped.flows_from("crm") and forward) or (mapped.flows_from("zenvia") and backward)

    def settled(self, field: str, crm_value: Any, zenvia_value: Any) -> bool:
        """What a converged pair may hold: values that agree, or a value with no counterpart
        whose other side keeps its own (`keep_when_unmapped`)."""
        mapped = self.fields[field]
        crm_keeps = mapped.flows_from("zenvia") and mapped.keeps("crm", zenvia_value)
        zenvia_keeps = mapped.flows_from("crm") and mapped.keeps("zenvia", crm_value)
        return self.agree(field, crm_value, zenvia_value) or crm_keeps or zenvia_keeps

    def in_scope(self, side: Side, fields: NativeFields) -> bool:
        return not self.scope_misses(side, fields)

    def scope_misses(self, side: Side, fields: NativeFields) -> tuple[str, ...]:
        """The scope conditions an unlinked record fails (empty: it is copied), for reports."""
        misses = [
            name
            for name, allowed in self.scope.for_side(side).items()
            if fields.get(name) not in allowed
        ]
        if not self._recent_enough(side, fields):
            misses.append("since")
        if not self._in_scope_state(side, fields):
            misses.append("states")
        return tuple(misses)

    def _recent_enough(self, side: Side, fields: NativeFields) -> bool:
        since = self.scope.since.for_side(side)
        if not since:
            return True
        return any(
            (stamp := record_stamp(fields.get(name))) is not None and stamp >= earliest
            for name, earliest in since.items()
        )

    def _in_scope_state(self, side: Side, fields: NativeFields) -> bool:
        if self.scope.states is None:
            return True
        return self.base_status(side, fields) in self.scope.states

    def base_status(self, side: Side, fields: NativeFields) -> BaseStatus | None:
        """A record's base status; a Zenvia status the file does not list goes by its type."""
        status = self.status_base(side, fields.get(self.status_native(side) or ""))
        if status is None and side == "zenvia":
            status = _ZENVIA_BASE_TYPES.get(str(fields.get("statusType")))
        return status

    def catalogue(self, field: str, side: Side) -> tuple[Scalar, ...] | None:
        """The known native values of a field, where the file declares them."""
        if field == "status" and self.statuses is not None:
            return tuple(self.statuses.for_side(side))
        return self.fields[field].values(side)

    def status_base(self, side: Side, value: Any) -> BaseStatus | None:
        if self.statuses is None or not is_scalar(value):
            return None
        return self.statuses.for_side(side).get(value)

    def closed_status(self, side: Side) -> Scalar:
        """The first declared status whose base is closed: what closing a record writes."""
        if self.statuses is None:
            return None
        return next(
            (v for v, base in self.statuses.for_side(side).items() if base is BaseStatus.CLOSED),
            None,
        )

    def status_native(self, side: Side) -> str | None:
        status = self.fields.get("status")
        return status.native(side) if status is not None else None

    def with_justification(self, zenvia_changes: NativeFields) -> NativeFields:
        """Zenvia needs the justification in the same call as a status that requires one."""
        status = zenvia_changes.get(self.status_native("zenvia") or "")
        justification = self.zenvia_justifications.get(status) if isinstance(status, int) else None
        if justification is None:
            return zenvia_changes
        return {**zenvia_changes, ZENVIA_JUSTIFICATION: justification}

    def cleared_by_zenvia(self, name: str, crm_value: Scalar, zenvia_value: Scalar) -> bool:
        """An empty Zenvia category or urgency beside a CRM value Zenvia could hold is Zenvia's
        side effect, not a person's edit: changing a parent (type, service, category) clears
        a child that no longer fits it (urgency 4 "Urgente" fits problems only). The CRM value
        is written back, so a priority is never lost to its category changing."""
        field = self.fields[name]
        return (
            zenvia_value is None
            and field.zenvia in _ZENVIA_CHILDREN
            and field.flows_from("crm")
            and crm_value is not None
            and self.translate(name, "crm", crm_value) is not None
        )

    def create_fields(self, target: Side, source_fields: NativeFields) -> NativeFields:
        """What to send when creating on `target` from the other side's native fields (a
        field the source lacks still gets its placeholder, when one is set)."""
        source = other_side(target)
        written = copy.deepcopy(self.create_defaults.for_side(target))
        for name, mapped in self.fields.items():
            value = source_fields.get(mapped.native(source))
            if not mapped.flows_from(source) or mapped.keeps(target, value):
                continue
            if mapped.native(source) in source_fields or mapped.fit(target, None) is not None:
                written[mapped.native(target)] = self.translate(name, source, value)
        return self.with_justification(written) if target == "zenvia" else written

    def client_email(self, target: Side, source_fields: NativeFields) -> str | None:
        """The e-mail a record created on `target` from these fields looks its client up by
        (`client_lookup`); None for a CRM record, without the lookup, or when the field is empty."""
        if target != "zenvia" or self.client_lookup is None:
            return None
        value = source_fields.get(self.client_lookup.crm)
        return (value.strip() or None) if isinstance(value, str) else None

    def lookup_fields(self, side: Side) -> tuple[str, ...]:
        """Native attributes read only to look something up (`client_lookup`): a connector
        selects them besides the fields it always reads."""
        return (self.client_lookup.crm,) if side == "crm" and self.client_lookup else ()

    def create_description(self, target: Side, source_fields: NativeFields) -> str:
        if target != "zenvia" or self.description is None:
            return ""
        return str(source_fields.get(self.description.crm) or "")

    def system_label(self, side: Side) -> str:
        """The name people read: Zenvia, or the CRM's name capitalised."""
        return "Zenvia" if side == "zenvia" else self.crm_system.capitalize()
