"""The sections of a mapping file, each a frozen pydantic model; a field's own rules (which way
it flows, who wins, what a side keeps, how a value is fitted to what a side can hold) live
with it. Pure."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator

from syncworker.mapping.values import (
    Direction,
    Policy,
    Scalar,
    Stamp,
    Value,
    is_scalar,
)
from syncworker.model import BaseStatus, Side, other_side


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldMapping(Section):
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
    # map (Zenvia refuses an empty owner: a CRM record moved to a queue leaves the ticket's owner).
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
            and (not is_scalar(value) or value not in value_map)
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


class Statuses(Section):
    """Every known status value per side and the base status it stands for."""

    crm: dict[Value, BaseStatus]
    zenvia: dict[Value, BaseStatus]

    def for_side(self, side: Side) -> dict[Scalar, BaseStatus]:
        return self.crm if side == "crm" else self.zenvia


class PerSide(Section):
    """Native attribute → value, per side (fields always set on a create)."""

    crm: dict[StrictStr, Any] = Field(default_factory=dict)
    zenvia: dict[StrictStr, Any] = Field(default_factory=dict)

    def for_side(self, side: Side) -> dict[str, Any]:
        return self.crm if side == "crm" else self.zenvia


class Since(Section):
    """Native time stamp → the earliest moment, per side: a record passes when ANY of its
    named stamps is on or after its moment (created-or-changed needs both stamps, because
    Zenvia leaves `updatedAt` null on a ticket never edited)."""

    crm: dict[StrictStr, Stamp] = Field(default_factory=dict)
    zenvia: dict[StrictStr, Stamp] = Field(default_factory=dict)

    def for_side(self, side: Side) -> dict[str, datetime]:
        return self.crm if side == "crm" else self.zenvia


class Scope(Section):
    """Which unlinked records are ever copied: native attribute → allowed values, per side;
    `since`, recent enough; `states`, only these base statuses (e.g. open ones)."""

    crm: dict[StrictStr, tuple[Value, ...]] = Field(default_factory=dict)
    zenvia: dict[StrictStr, tuple[Value, ...]] = Field(default_factory=dict)
    since: Since = Since()
    states: tuple[BaseStatus, ...] | None = Field(default=None, min_length=1)

    def for_side(self, side: Side) -> dict[str, tuple[Scalar, ...]]:
        return self.crm if side == "crm" else self.zenvia


class IdFields(Section):
    """A native attribute that may already hold the other side's id (typed in by hand)."""

    crm: StrictStr | None = None
    zenvia: StrictStr | None = None


class SameValue(Section):
    """One native attribute per side whose values must be equal (a list holds the value)."""

    crm: StrictStr
    zenvia: StrictStr


class MatchRule(Section):
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


class Matching(Section):
    """How `syncworker onboard` finds pairs that already exist: by an id field, then by rules
    in order. A record matching several is never paired (reported instead)."""

    by_id: IdFields = IdFields()
    rules: tuple[MatchRule, ...] = ()


class ClientLookup(Section):
    """Where a ticket created from a CRM record finds its client: the Zenvia contact whose
    e-mail is the record's `crm` field (`ContactEmail`); none found →
    `create_defaults.zenvia.clients`."""

    crm: StrictStr = Field(min_length=1)


class DescriptionSource(Section):
    """The CRM text that becomes the Zenvia first action on create (v2 has no description)."""

    crm: StrictStr


class CommentSync(Section):
    """Whether comments are copied; a copy keeps its comment's visibility (public stays
    public)."""

    sync: StrictBool = True
