"""What a sync stores while it applies a plan, as pure rules: the service runs them on the
link in Postgres, the property tests' simulator on one in memory, so the properties proven
there hold for the code that runs.

Each update is recorded before it is sent (`write_in_flight`) and folded into the baselines
as it lands (`fold_written`); when that fold is lost (the database refused it, or the worker
died before the commit), the next sync folds what the record turns out to hold of the write in
flight (`fold_in_flight`)."""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping as ReadOnly
from typing import Any

from syncworker.mapping import Mapping
from syncworker.model import SIDES, NativeFields, Side, other_side

Baselines = ReadOnly[Side, NativeFields | None]


def fold_written(
    mapping: Mapping,
    stored: Baselines,
    planned: Baselines,
    target: Side,
    written: Iterable[str],
) -> dict[Side, NativeFields] | None:
    """Both baselines once `written` (native names on `target`) landed: each written field
    takes the plan's baseline on both sides at once, so if a later write of the plan fails,
    or the worker dies before the commit, the retry does not take our own write for a human
    change and let it beat a newer edit. None when the link has no baselines yet (its first
    merge is judged by the commit)."""
    if stored[target] is None or stored[other_side(target)] is None:
        return None
    new = {side: dict(stored[side] or {}) for side in SIDES}
    natives = {field.native(target): field for field in mapping.fields.values()}
    for native in written:
        field = natives.get(native)
        if field is None:
            continue
        for side in SIDES:
            name = field.native(side)
            if name in (planned[side] or {}):
                new[side][name] = (planned[side] or {})[name]
    return new


def write_in_flight(
    planned: Baselines, target: Side, changes: NativeFields, read: NativeFields
) -> dict[str, Any]:
    """The record of an update about to be sent, stored on the link first: its side, its
    changes, what the plan read of those fields there (`read`: the target's fields) and the
    plan's baselines, which `fold_in_flight` needs if the update's own fold is lost."""
    return {
        "side": target,
        "changes": dict(changes),
        "read": {native: read.get(native) for native in changes},
        "baselines": {side: planned[side] for side in SIDES},
    }


def fold_in_flight(
    mapping: Mapping,
    stored: Baselines,
    in_flight: ReadOnly[str, Any] | None,
    records: ReadOnly[Side, NativeFields | None],
) -> Baselines:
    """The baselines with the write in flight folded in, as `fold_written` would have done as
    it landed (`records`: the fields each side holds now); left out, our own write would read
    as a person's change and could beat a newer edit. Each change is folded unless its record
    still holds what the plan read there: then it did not land (or was put back), and it
    stays a change to write again. A record holding anything else holds our write, or a
    person's edit made after it, which the next plan then sees as that side's change."""
    if not in_flight:
        return stored
    target: Side = in_flight["side"]
    held = records.get(target)
    if held is None:
        return stored
    landed = [
        native
        for native in in_flight["changes"]
        if held.get(native) != in_flight["read"].get(native)
    ]
    return fold_written(mapping, stored, in_flight["baselines"], target, landed) or stored


def adopted_baselines(stored: Baselines, planned: ReadOnly[str, Any] | None) -> Baselines | None:
    """The baselines a record our own earlier create made is linked with: the ones that create
    planned, when the link has none yet, so the first merge is three-way (an edit made on
    either side since is a change like any other, not a both-sides conflict). None: keep the
    link's."""
    if not planned or any(stored[side] is not None for side in SIDES):
        return None
    return {side: planned.get(side) for side in SIDES}
