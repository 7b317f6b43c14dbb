"""The field mapping between CRM cases and Zenvia tickets: a YAML file → a validated model.

The file says, per canonical field, which native attribute holds it on each side, which way it
flows, how a two-sided change is settled and how values translate (maps may be lossy: several
CRM statuses onto one Zenvia status). The engine only asks this module pure questions:
`project`, `translate`, `agree`, `in_scope`. A bad file fails at load time with a message that
names the file, the key path and what was expected, never halfway through a sync.
"""

from __future__ import annotations

import copy
import importlib.resources
import logging
import types
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PlainValidator,
    PrivateAttr,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from syncworker.connectors.salesforce_ids import to_id18
from syncworker.model import (
    SIDES,
    BaseStatus,
    NativeFields,
    Side,
    other_side,
)

log = logging.getLogger(__name__)

Scalar = str | int | None
Direction = Literal["both", "crm_to_zenvia", "zenvia_to_crm"]
Policy = Literal["crm_wins", "zenvia_wins", "newest_wins", "manual"]
EndPolicy = Literal["close", "unlink"]

DEFAULT_MAPPING_FILE = "salesforce_zenvia.yaml"
ZENVIA_JUSTIFICATION = "justification"
"""The Zenvia attribute written together with a status that needs a justification."""
_ZENVIA_CHILDREN = frozenset({"category", "urgency"})
"""Zenvia attributes that must belong to another (a category to its type and service, an
urgency to its category): changing the parent clears a child that no longer fits."""

_SYSTEM_LABELS = {"salesforce": "Salesforce", "zenvia": "Zenvia"}
_ZENVIA_BASE_TYPES = {
    "NEW": BaseStatus.NEW,
    "IN_ATTENDANCE": BaseStatus.OPEN,
    "STOPPED": BaseStatus.WAITING,
    "CANCELED": BaseStatus.CANCELED,
    "RESOLVED": BaseStatus.RESOLVED,
    "CLOSED": BaseStatus.CLOSED,
}


class MappingError(ValueError):
    """A mapping file that cannot be used; the message says where and what was expected."""


def _kind(value: object) -> str:
    """The YAML word for a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _is_scalar(value: object) -> bool:
    return value is None or (isinstance(value, str | int) and not isinstance(value, bool))


def _scalar(value: object) -> Scalar:
    """Value-map keys and values are ids or labels; YAML turns unquoted `on`/`yes` into booleans."""
    if isinstance(value, bool):
        raise ValueError(
            f"expected text, an integer or null; got a boolean {value!r} "
            "(YAML reads unquoted yes/no/on/off/true/false as booleans: quote it)"
        )
    if value is None or isinstance(value, str | int):
        return value
    raise ValueError(f"expected text, an integer or null; got {_kind(value)}")


Value = Annotated[Scalar, PlainValidator(_scalar)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldMapping(_Section):
    """How one canonical field is held, flows and translates between the two sides."""

    crm: StrictStr
    zenvia: StrictStr
    direction: Direction = "both"
    conflict: Policy | None = None
    crm_values: tuple[Value, ...] | None = None
    zenvia_values: tuple[Value, ...] | None = None
    to_zenvia: dict[Value, Value] = Field(default_factory=dict)
    to_crm: dict[Value, Value] = Field(default_factory=dict)
    default_to_zenvia: Value = None
    default_to_crm: Value = None
    # What a side cannot hold, adapted instead of refused: a longer text is cut (ending in
    # "…"); an empty one becomes the placeholder.
    crm_max_length: int | None = Field(default=None, ge=2)
    zenvia_max_length: int | None = Field(default=None, ge=2)
    empty_to_crm: StrictStr | None = None
    empty_to_zenvia: StrictStr | None = None
    # Sides whose value stays as it is when the other side's value has no counterpart in the
    # map (Zenvia refuses an empty owner: a Case moved to a queue leaves the ticket's owner).
    keep_when_unmapped: tuple[Side, ...] = ()

    @model_validator(mode="after")
    def _two_way_needs_a_policy(self) -> FieldMapping:
        if self.direction == "both" and self.conflict is None:
            raise ValueError(
                "a field with direction both needs `conflict`: "
                "crm_wins, zenvia_wins, newest_wins or manual"
            )
        return self

    def native(self, side: Side) -> str:
        return self.crm if side == "crm" else self.zenvia

    def flows_from(self, side: Side) -> bool:
        return self.direction in ("both", f"{side}_to_{other_side(side)}")

    @property
    def owner(self) -> Side | None:
        """The side a one-way field flows from; None for a two-way field."""
        if self.direction == "both":
            return None
        return "crm" if self.direction == "crm_to_zenvia" else "zenvia"

    @property
    def policy(self) -> Policy:
        """The declared policy; a one-way field is always won by the side that owns it."""
        if self.owner is not None:
            return "crm_wins" if self.owner == "crm" else "zenvia_wins"
        return self.conflict or "manual"

    def value_map(self, to_side: Side) -> dict[Scalar, Scalar]:
        return self.to_crm if to_side == "crm" else self.to_zenvia

    def has_default(self, to_side: Side) -> bool:
        """Whether a default was written in the file (a default of null is meaningful)."""
        return f"default_to_{to_side}" in self.model_fields_set

    def default(self, to_side: Side) -> Scalar:
        return self.default_to_crm if to_side == "crm" else self.default_to_zenvia

    def values(self, side: Side) -> tuple[Scalar, ...] | None:
        return self.crm_values if side == "crm" else self.zenvia_values

    def keeps(self, to_side: Side, value: Any) -> bool:
        """Whether `value`, from the other side, leaves `to_side` as it is (no counterpart)."""
        value_map = self.value_map(to_side)
        return (
            to_side in self.keep_when_unmapped
            and bool(value_map)
            and (not _is_scalar(value) or value not in value_map)
        )

    def fit(self, to_side: Side, value: Any) -> Any:
        """`value` as `to_side` can hold it (see `crm_max_length`, `empty_to_crm`)."""
        limit = self.crm_max_length if to_side == "crm" else self.zenvia_max_length
        placeholder = self.empty_to_crm if to_side == "crm" else self.empty_to_zenvia
        if placeholder is not None and (
            value is None or (isinstance(value, str) and not value.strip())
        ):
            return placeholder
        if limit is not None and isinstance(value, str) and len(value) > limit:
            return value[: limit - 1] + "…"
        return value


class Statuses(_Section):
    """Every known status value per side and the base status it stands for."""

    crm: dict[Value, BaseStatus]
    zenvia: dict[Value, BaseStatus]

    def for_side(self, side: Side) -> dict[Scalar, BaseStatus]:
        return self.crm if side == "crm" else self.zenvia


class PerSide(_Section):
    """Native attribute → value, per side (fields always set on a create)."""

    crm: dict[StrictStr, Any] = Field(default_factory=dict)
    zenvia: dict[StrictStr, Any] = Field(default_factory=dict)

    def for_side(self, side: Side) -> dict[str, Any]:
        return self.crm if side == "crm" else self.zenvia


def _stamp(value: object) -> datetime:
    """A scope date: YAML's own date or timestamp, or ISO text; a date or naive time is UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"expected a date or time (ISO 8601, e.g. 2026-01-31); got {value!r}"
            ) from None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise ValueError(f"expected a date or time (ISO 8601, e.g. 2026-01-31); got {_kind(value)}")


Stamp = Annotated[datetime, PlainValidator(_stamp)]


class Since(_Section):
    """Native time stamp → the earliest moment, per side: a record passes when ANY of its
    named stamps is on or after its moment (created-or-changed needs both stamps, because
    Zenvia leaves `updatedAt` null on a ticket never edited)."""

    crm: dict[StrictStr, Stamp] = Field(default_factory=dict)
    zenvia: dict[StrictStr, Stamp] = Field(default_factory=dict)

    def for_side(self, side: Side) -> dict[str, datetime]:
        return self.crm if side == "crm" else self.zenvia


class Scope(_Section):
    """Which unlinked records are ever copied: native attribute → allowed values, per side;
    `since`, recent enough; `states`, only these base statuses (e.g. open ones)."""

    crm: dict[StrictStr, tuple[Value, ...]] = Field(default_factory=dict)
    zenvia: dict[StrictStr, tuple[Value, ...]] = Field(default_factory=dict)
    since: Since = Since()
    states: tuple[BaseStatus, ...] | None = Field(default=None, min_length=1)

    def for_side(self, side: Side) -> dict[str, tuple[Scalar, ...]]:
        return self.crm if side == "crm" else self.zenvia


class IdFields(_Section):
    """A native attribute that may already hold the other side's id (typed in by hand)."""

    crm: StrictStr | None = None
    zenvia: StrictStr | None = None


class SameValue(_Section):
    """One native attribute per side whose values must be equal (a list holds the value)."""

    crm: StrictStr
    zenvia: StrictStr


class MatchRule(_Section):
    """Pairs existing records whose `same` attributes are equal (text ignoring case and
    spacing) and, with `within_minutes`, whose `created` stamps are that close."""

    name: StrictStr = Field(min_length=1)
    same: tuple[SameValue, ...] = Field(min_length=1)
    created: SameValue | None = None
    within_minutes: StrictInt | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _window_needs_stamps(self) -> MatchRule:
        if (self.created is None) != (self.within_minutes is None):
            raise ValueError("`created` and `within_minutes` go together: give both or neither")
        return self


class Matching(_Section):
    """How `syncworker onboard` finds pairs that already exist: by an id field, then by rules
    in order. A record matching several is never paired (reported instead)."""

    by_id: IdFields = IdFields()
    rules: tuple[MatchRule, ...] = ()


class ClientLookup(_Section):
    """Where a ticket created from a Case finds its client: the Zenvia contact whose e-mail is
    the Case's `crm` field (`ContactEmail`); none found → `create_defaults.zenvia.clients`."""

    crm: StrictStr = Field(min_length=1)


class DescriptionSource(_Section):
    """The CRM text that becomes the Zenvia first action on create (v2 has no description)."""

    crm: StrictStr


class CommentSync(_Section):
    """Whether comments are copied; a copy keeps its comment's visibility (public stays
    public)."""

    sync: StrictBool = True


class Mapping(_Section):
    """A validated mapping file, with the pure questions the engine and the service ask."""

    crm_system: Literal["salesforce"]
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
    def _ids_in_18_characters(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        """Salesforce returns 18-character ids; a 15-character one in the file (as URLs show
        them) names the same record, so it is read as its 18-character form. Left as written,
        it would never equal what the API returns: our own write would read as a change."""
        seen: dict[str, str] = {}
        if isinstance(data, dict) and isinstance(data.get("fields"), dict):
            fields = {
                name: _with_ids_in_18(spec, seen) if _holds_ids(spec) else spec
                for name, spec in data["fields"].items()
            }
            data = {**data, "fields": fields}
        mapping = handler(data)
        if seen:
            mapping._normalised_ids = seen
        return mapping

    @property
    def normalised_ids(self) -> dict[str, str]:
        """Ids the file wrote in 15 characters and the 18-character forms they were read as."""
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
        if not value_map or not _is_scalar(value):
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
        if self.statuses is None or not _is_scalar(value):
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
        (`client_lookup`); None for a Case, without the lookup, or when the field is empty."""
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
        return _SYSTEM_LABELS["zenvia" if side == "zenvia" else self.crm_system]


def record_stamp(value: Any) -> datetime | None:
    """A record's time stamp as either remote writes it (ISO text, `Z` or `+0000`); None when
    absent or unreadable, which a scope or a matching window treats as not passing."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _holds_ids(spec: object) -> bool:
    """A CRM field that holds record ids (`OwnerId`, `ContactId`, …)."""
    return isinstance(spec, dict) and str(spec.get("crm", "")).endswith("Id")


def _with_ids_in_18(spec: dict[str, Any], seen: dict[str, str]) -> dict[str, Any]:
    def id18(value: Any) -> Any:
        if not isinstance(value, str) or len(value) != 15:
            return value
        try:
            seen[value] = to_id18(value)
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


# --- loading -------------------------------------------------------------------------------


def load(path: str | Path) -> Mapping:
    """Load and validate a mapping file (the `SYNCWORKER_MAPPING_FILE` setting)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingError(f"{path}: cannot read the mapping file ({exc.strerror})") from exc
    return parse(text, source=str(path))


def load_default() -> Mapping:
    """The shipped Salesforce ↔ Zenvia mapping, which fits the sandboxes' catalogues."""
    resource = importlib.resources.files("syncworker") / "mappings" / DEFAULT_MAPPING_FILE
    return parse(resource.read_text(encoding="utf-8"), source=f"mappings/{DEFAULT_MAPPING_FILE}")


def parse(text: str, *, source: str = "<mapping>") -> Mapping:
    """Validate YAML text; `source` names it in error messages."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise MappingError(f"{source}: {where}: invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise MappingError(f"{source}: invalid YAML: {exc}") from None
    return from_data(data, source=source)


def from_data(data: object, *, source: str = "<mapping>") -> Mapping:
    """Validate already-parsed data (tests build mappings this way)."""
    if not isinstance(data, dict):
        raise MappingError(f"{source}: expected a mapping at the top level; got {_kind(data)}")
    data = _without_retired_keys(data, source)
    try:
        mapping = Mapping.model_validate(data)
    except ValidationError as exc:
        raise _error(source, _schema_problems(exc)) from None
    problems = list(_consistency_problems(mapping))
    if problems:
        raise _error(source, problems)
    return mapping


# Keys an older file may hold that nothing reads any more: left out with a warning, so that
# file still loads (any other unknown key is refused).
_RETIRED_KEYS: dict[tuple[str, ...], str] = {
    ("display",): "nothing shows these attributes",
    ("comments", "crm_to_zenvia_public_from"): "a copy always keeps its comment's visibility",
}


def _without_retired_keys(data: dict[str, Any], source: str) -> dict[str, Any]:
    """A copy of `data` without the retired keys it holds, each named in a warning."""
    kept = copy.deepcopy(data)
    for path, why in _RETIRED_KEYS.items():
        *parents, key = path
        section: Any = kept
        for parent in parents:
            section = section.get(parent) if isinstance(section, dict) else None
        if isinstance(section, dict) and key in section:
            log.warning("%s: %s is no longer read (%s); delete it", source, ".".join(path), why)
            del section[key]
    return kept


def _error(source: str, problems: list[tuple[str, str]]) -> MappingError:
    return MappingError("\n".join(f"{source}: {path}: {what}" for path, what in problems))


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice (PyYAML would silently keep the last)."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, list | dict):
            continue  # construct_mapping reports the unhashable key with its line
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_unique_mapping,
)

# --- messages ------------------------------------------------------------------------------

_TYPE_WORDS = {
    "string_type": "text",
    "int_type": "an integer",
    "bool_type": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "tuple_type": "a list",
    "list_type": "a list",
}


def _schema_problems(exc: ValidationError) -> list[tuple[str, str]]:
    return [_schema_problem(error) for error in exc.errors(include_url=False)]


def _schema_problem(error: ErrorDetails) -> tuple[str, str]:
    loc = list(error["loc"])
    on_key = bool(loc) and loc[-1] == "[key]"
    if on_key:
        loc.pop()
    path = ".".join(str(part) for part in loc) or "(top level)"
    kind, given = error["type"], error.get("input")
    shown = _shown(given)
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        return path, "unknown key" + (f"; expected one of: {', '.join(allowed)}" if allowed else "")
    if kind == "missing":
        return path, "missing required key"
    if kind in ("literal_error", "enum"):
        return path, f"expected {error.get('ctx', {}).get('expected')}; got {shown}"
    if kind == "greater_than":
        return path, f"expected more than {error.get('ctx', {}).get('gt')}; got {shown}"
    if kind == "too_short":
        return path, "expected at least one entry"
    if kind == "string_too_short":
        return path, "expected text; got an empty one"
    if kind in _TYPE_WORDS:
        as_key = " as a key" if on_key else ""
        return path, f"expected {_TYPE_WORDS[kind]}{as_key}; got {_kind(given)} {shown}"
    if kind == "value_error":
        return path, str(error.get("ctx", {}).get("error", error["msg"]))
    return path, error["msg"]


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _allowed_keys(loc: list[int | str]) -> list[str]:
    """The keys the section at `loc` accepts, by walking the model's annotations."""
    current: Any = Mapping
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(str(part))
            if info is None:
                return []
            current = _without_none(info.annotation)
        elif get_origin(current) is dict:
            current = _without_none(get_args(current)[1])
        else:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [arg for arg in get_args(annotation) if arg is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation


def _consistency_problems(mapping: Mapping) -> Iterator[tuple[str, str]]:
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
