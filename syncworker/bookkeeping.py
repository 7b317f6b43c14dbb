"""What a sync stores while it applies a plan, as pure rules: the service runs them on the
link in Postgres, the property tests' simulator on one in memory, so the properties proven
there hold for the code that runs."""

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


def adopted_baselines(stored: Baselines, planned: ReadOnly[str, Any] | None) -> Baselines | None:
    """The baselines a record our own earlier create made is linked with: the ones that create
    planned, when the link has none yet, so the first merge is three-way (an edit made on
    either side since is a change like any other, not a both-sides conflict). None: keep the
    link's."""
    if not planned or any(stored[side] is not None for side in SIDES):
        return None
    return {side: planned.get(side) for side in SIDES}
