"""The chaos suite's invariant checker: both sandboxes + the mapping table → what is wrong.

Built on `syncworker.convergence` (one link per record, linked pairs equal under the mapping,
every person's comment copied exactly once with its visibility, copies known by their text),
it adds what only a test that watched the run can know or what the mapping table says:

- *echoes*: a copy of a comment syncworker wrote itself (the sandboxes tell which comments came
  through the API), found by its text as the product finds copies (`engine.copy_text`,
  `engine.is_copy_of`), counts as a duplicate;

- *duplicates*: records we created twice (two tickets with one create marker, two cases with
  one external id) or created and never linked, and comments copied twice;
- *lost*: human records never linked, comments never copied, and lost updates: `EditLog` keeps
  the last value each field was edited to per record; when only one side edited a field, its
  final value must be that edit, when both did, at least one side must still hold its own;
- fields parked in a manual conflict (link state `conflict`) may disagree;
- no dead letter without a reason; none left open and no link left in `error` state (except
  records a test broke on purpose: `expected_dead_letters`).

Use: `findings = check(snapshot(zenvia, salesforce, database_url), mapping, edits)`, then
`findings.ok`, `findings.duplicates`, `findings.lost`, `findings.describe()`.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlmodel import col, select

from syncworker import convergence
from syncworker.convergence import SideState
from syncworker.engine import copy_text, is_copy_of
from syncworker.mapping import Mapping
from syncworker.markers import find_marker
from syncworker.model import SIDES, LinkState, Side, other_side
from syncworker.sandbox.salesforce import API_USER_ID, SalesforceSandbox
from syncworker.sandbox.zenvia import ZenviaSandbox
from syncworker.sandbox.zenvia_catalogue import Named, ZenviaCatalogue
from syncworker.store import repo
from syncworker.store.db import session_scope
from syncworker.store.tables import DeadLetter, DeadLetterStatus, HistoryEntry, Link

__all__ = ["EditLog", "Findings", "World", "check", "snapshot"]

API_ORIGIN = "TICKETS_API"
_DUPLICATE_KINDS = frozenset({"comment duplicated", "linked twice"})
_LOST_KINDS = frozenset({"comment missing"})


class EditLog:
    """The last native value each mapped field was edited to, and when, per (side, record id).

    Thread-safe: the chaos actors record edits while workers sync.
    """

    def __init__(self, on_record: Callable[..., None] | None = None) -> None:
        self._last: dict[tuple[Side, str], dict[str, tuple[Any, datetime]]] = defaultdict(dict)
        self._lock = threading.Lock()
        self._on_record = on_record  # told every edit (the run's journal)
        self.count = 0

    def record(
        self,
        side: Side,
        record_id: str,
        canonical_field: str,
        value: Any,
        at: datetime | None = None,
    ) -> None:
        with self._lock:
            self._last[(side, record_id)][canonical_field] = (value, at or datetime.now(UTC))
            self.count += 1
        if self._on_record is not None:
            self._on_record(
                by="person", side=side, record=record_id, field=canonical_field, value=value
            )

    def last(self, side: Side, record_id: str | None) -> dict[str, Any]:
        return {name: value for name, (value, _) in self._entries(side, record_id).items()}

    def edited_at(self, side: Side, record_id: str | None, canonical_field: str) -> datetime:
        return self._entries(side, record_id)[canonical_field][1]

    def _entries(self, side: Side, record_id: str | None) -> dict[str, tuple[Any, datetime]]:
        if record_id is None:
            return {}
        with self._lock:
            return dict(self._last.get((side, record_id), {}))


@dataclass(frozen=True)
class Written:
    """A field value syncworker wrote, as the pair's history tells it."""

    at: datetime
    side: Side
    native: str
    old: Any
    new: Any
    created: bool = False  # part of a record it created


@dataclass
class World:
    """Both remotes (as the connectors would read them) and the mapping table at one moment."""

    states: dict[Side, SideState]
    links: list[Link]
    dead_letters: list[DeadLetter]
    ours: dict[Side, frozenset[str]] = field(
        default_factory=lambda: {side: frozenset() for side in SIDES}
    )  # ids of the comments written through the API (by syncworker)
    # whether Zenvia's own rules let a ticket hold a value (`zenvia_rules`); all by default
    zenvia_holds: Callable[[str, Any, dict[str, Any]], bool] = lambda _native, _value, _t: True
    # per link: each field value syncworker's committed syncs wrote (its history)
    written: dict[int, list[Written]] = field(default_factory=dict)

    def record(self, side: Side, record_id: str | None) -> dict[str, Any] | None:
        return dict(self.states[side].records.get(record_id or "", {})) or None


def snapshot(zenvia: ZenviaSandbox, salesforce: SalesforceSandbox, database_url: str) -> World:
    with session_scope(database_url) as session:
        links = list(repo.all_links(session))
        letters = list(repo.list_dead_letters(session))
    zenvia_state = convergence.zenvia_state(zenvia)
    ours_on_zenvia = frozenset(
        f"{ticket_id}:{action['id']}"
        for ticket_id in zenvia_state.records
        for action in zenvia.actions(ticket_id)
        if action.get("origin") == API_ORIGIN
    )
    ours_on_crm = frozenset(
        str(row["Id"]) for row in salesforce.comments() if row.get("CreatedById") == API_USER_ID
    )
    return World(
        states={"crm": convergence.crm_state(salesforce), "zenvia": zenvia_state},
        links=links,
        dead_letters=letters,
        ours={"crm": ours_on_crm, "zenvia": ours_on_zenvia},
        zenvia_holds=zenvia_rules(zenvia.catalogue),
        written=history_writes(database_url),
    )


def history_writes(database_url: str) -> dict[int, list[Written]]:
    """The field values each pair's history says syncworker wrote: its updates, and the
    fields of the records it created (committed syncs only)."""
    written: dict[int, list[Written]] = defaultdict(list)
    with session_scope(database_url) as session:
        rows = session.exec(
            select(HistoryEntry).where(col(HistoryEntry.kind).in_(("update", "create")))
        )
        for row in rows:
            if row.link_id is None or row.side not in SIDES:
                continue
            side: Side = "crm" if row.side == "crm" else "zenvia"
            if row.kind == "update" and row.field is not None:
                written[row.link_id].append(Written(row.at, side, row.field, row.old, row.new))
            elif row.kind == "create" and isinstance(row.new, dict):
                written[row.link_id] += [
                    Written(row.at, side, native, None, value, created=True)
                    for native, value in row.new.items()
                ]
    return dict(written)


def zenvia_rules(catalogue: ZenviaCatalogue) -> Callable[[str, Any, dict[str, Any]], bool]:
    """Whether the catalogue lets a ticket like this one hold `value` in `native`: an urgency
    must belong to the ticket's category (Urgente fits problems only), so an agent's Urgente
    cannot outlive the case becoming a question, whatever a sync does."""
    urgencies = {urgency.id: urgency for urgency in catalogue.urgencies}

    def holds(native: str, value: Any, ticket: dict[str, Any]) -> bool:
        if native != "urgency" or value not in urgencies:
            return True
        category = ticket.get("category")
        return urgencies[value].fits(None if category is None else Named(category, ""))

    return holds


@dataclass
class Findings:
    pairs: int = 0
    comments_checked: int = 0
    differences: list[str] = field(default_factory=list)  # from syncworker.convergence
    duplicate_records: list[str] = field(default_factory=list)
    lost_updates: list[str] = field(default_factory=list)
    dead_letters_without_reason: list[str] = field(default_factory=list)
    open_dead_letters: list[str] = field(default_factory=list)
    unhealthy_links: list[str] = field(default_factory=list)
    echoes: list[str] = field(default_factory=list)  # our own comment copied back
    duplicated: int = 0  # of the differences: a comment copied twice, a record in two links
    lost_in_differences: int = 0  # of the differences: a comment or human record not copied

    @property
    def duplicates(self) -> int:
        return len(self.duplicate_records) + len(self.echoes) + self.duplicated

    @property
    def lost(self) -> int:
        return len(self.lost_updates) + self.lost_in_differences

    def problems(self) -> dict[str, list[str]]:
        return {
            name: value for name, value in vars(self).items() if isinstance(value, list) and value
        }

    @property
    def ok(self) -> bool:
        return not self.problems()

    def summary(self) -> dict[str, int]:
        return {
            "pairs": self.pairs,
            "comments": self.comments_checked,
            "duplicates": self.duplicates,
            "lost": self.lost,
            **{name: len(found) for name, found in self.problems().items()},
        }

    def describe(self, limit: int = 8) -> str:
        lines = []
        for name, found in self.problems().items():
            lines.append(f"{name} ({len(found)}):")
            lines += [f"  - {item}" for item in found[:limit]]
            if len(found) > limit:
                lines.append(f"  … and {len(found) - limit} more")
        return "\n".join(lines) or "all invariants hold"


def check(
    world: World,
    mapping: Mapping,
    edits: EditLog | None = None,
    *,
    external_id_field: str = "Zenvia_Ticket_Id__c",
    expected_dead_letters: Iterable[tuple[Side, str]] = (),
) -> Findings:
    """Every invariant at once. `expected_dead_letters` are (side, record id) a test broke on
    purpose: their dead letters may stay open, their links in `error`, and they and their
    counterparts are left out of the convergence check."""
    findings = Findings()
    expected = set(expected_dead_letters)
    _check_dead_letters(world, findings, expected)
    left_out = _left_out(world, findings, expected)
    states = {
        side: SideState(
            records={
                k: v for k, v in world.states[side].records.items() if k not in left_out[side]
            },
            comments=world.states[side].comments,
        )
        for side in SIDES
    }
    links = [
        link
        for link in world.links
        if link.crm_id not in left_out["crm"] and link.zenvia_id not in left_out["zenvia"]
    ]
    report = convergence.check(
        mapping,
        crm=states["crm"],
        zenvia=states["zenvia"],
        links=[(link.crm_id, link.zenvia_id) for link in links],
    )
    findings.pairs, findings.comments_checked = report.pairs, report.comments_checked
    for difference in report.differences:
        if not _parked(difference, links):
            findings.differences.append(str(difference))
            findings.duplicated += difference.kind in _DUPLICATE_KINDS
            findings.lost_in_differences += difference.kind in _LOST_KINDS
    for link in links:
        ids: dict[Side, str] = {"crm": link.crm_id or "", "zenvia": link.zenvia_id or ""}
        if all(ids[side] in states[side].records for side in SIDES):
            _check_echoes(world, mapping, states, ids, findings)
    _check_created_twice(world, mapping, states, links, findings, external_id_field)
    for link in links:
        _check_edits(world, mapping, link, findings, edits or EditLog())
    return findings


def _check_dead_letters(world: World, findings: Findings, expected: set[tuple[Side, str]]) -> None:
    for letter in world.dead_letters:
        where = f"dead letter {letter.id} ({letter.side} {letter.record_id}, {letter.operation})"
        if not (letter.message or "").strip() or not letter.error_class:
            findings.dead_letters_without_reason.append(where)
        side: Side = "crm" if letter.side == "crm" else "zenvia"
        if letter.status == DeadLetterStatus.OPEN and (side, letter.record_id) not in expected:
            findings.open_dead_letters.append(f"{where}: {letter.error_class}: {letter.message}")


def _left_out(
    world: World, findings: Findings, expected: set[tuple[Side, str]]
) -> dict[Side, set[str]]:
    """Records not held to convergence: orphaned links' and those broken on purpose."""
    left_out: dict[Side, set[str]] = {side: {i for s, i in expected if s == side} for side in SIDES}
    for link in world.links:
        ids = {"crm": link.crm_id, "zenvia": link.zenvia_id}
        on_purpose = any((side, ids[side]) in expected for side in SIDES)
        if link.state == LinkState.ERROR and not on_purpose:
            findings.unhealthy_links.append(f"link {link.id} {ids}: error: {link.state_reason}")
        if link.state == LinkState.ORPHANED or on_purpose:
            for side in SIDES:
                if ids[side]:
                    left_out[side].add(ids[side] or "")
    return left_out


def _parked(difference: convergence.Difference, links: list[Link]) -> bool:
    """A field difference on a field its link parked in a manual conflict."""
    if difference.kind != "field":
        return False
    return any(
        link.state == LinkState.CONFLICT
        and any(
            difference.detail.startswith(f"{name}: case {link.crm_id} ")
            for name in link.conflict_fields or []
        )
        for link in links
    )


def _check_echoes(
    world: World,
    mapping: Mapping,
    states: dict[Side, SideState],
    ids: dict[Side, str],
    findings: Findings,
) -> None:
    """No comment syncworker wrote on one side of a pair was copied to the other (echo-free)."""
    for source in SIDES:
        target = other_side(source)
        ours = [c for c in states[target].comments_of(ids[target]) if c.id in world.ours[target]]
        for comment in states[source].comments_of(ids[source]):
            if comment.id not in world.ours[source]:
                continue
            text = copy_text(mapping, source, comment)
            if any(is_copy_of(c.body, text) for c in ours):
                findings.echoes.append(
                    f"our {_NOUN[source]} {ids[source]} comment {comment.id} was copied back "
                    f"to {_NOUN[target]} {ids[target]}"
                )


_NOUN = {"crm": "case", "zenvia": "ticket"}


def _check_created_twice(
    world: World,
    mapping: Mapping,
    states: dict[Side, SideState],
    links: list[Link],
    findings: Findings,
    external_id_field: str,
) -> None:
    """Records we made more than once, or made and never linked (convergence calls those
    "unlinked"; here they count as duplicates, a human's unlinked record as lost)."""
    by_marker: dict[str, list[str]] = defaultdict(list)
    for ticket_id, ticket in states["zenvia"].records.items():
        actions = states["zenvia"].comments_of(ticket_id)
        key = find_marker(actions[0].body) if actions else None
        if ticket.get("origin") == API_ORIGIN and key:
            by_marker[key].append(ticket_id)
    for key, ticket_ids in by_marker.items():
        if len(ticket_ids) > 1:
            findings.duplicate_records.append(f"tickets {ticket_ids} share create marker {key}")
    by_external: Counter[str] = Counter(
        str(case[external_id_field])
        for case in states["crm"].records.values()
        if case.get(external_id_field)
    )
    for value, count in by_external.items():
        if count > 1:
            findings.duplicate_records.append(f"{count} cases hold {external_id_field}={value}")
    for side in SIDES:
        linked = {link.crm_id if side == "crm" else link.zenvia_id for link in links}
        for record_id, record in states[side].records.items():
            if record_id in linked:
                continue
            ours = (
                record.get("CreatedById") == API_USER_ID
                if side == "crm"
                else record.get("origin") == API_ORIGIN
            )
            if ours:
                findings.duplicate_records.append(f"{side} {record_id}: we created it, no link")
            else:
                findings.lost_in_differences += 1


def _check_edits(
    world: World, mapping: Mapping, link: Link, findings: Findings, edits: EditLog
) -> None:
    case, ticket = world.record("crm", link.crm_id), world.record("zenvia", link.zenvia_id)
    if case is None or ticket is None:
        return
    edited = {"crm": edits.last("crm", link.crm_id), "zenvia": edits.last("zenvia", link.zenvia_id)}
    for name, mapped in mapping.fields.items():
        values = {"crm": case.get(mapped.crm), "zenvia": ticket.get(mapped.zenvia)}
        by = [side for side in SIDES if name in edited[side]]
        where = f"link {link.id} (case {link.crm_id}, ticket {link.zenvia_id}) {name}"
        now = f"now crm={values['crm']!r} zenvia={values['zenvia']!r}"
        since = edits.edited_at("zenvia", link.zenvia_id, name) if "zenvia" in by else None
        written = [w for w in world.written.get(link.id or 0, ()) if since and w.at >= since]
        # people never empty an urgency: syncworker filling an empty one after the edit means
        # Zenvia had cleared it, when a parent change ruled it out (a later one may allow it)
        refilled = any(
            w.side == "zenvia" and w.native == mapped.zenvia and w.old is None and not w.created
            for w in written
        )
        ruled_out = by == ["zenvia"] and (
            refilled or not world.zenvia_holds(mapped.zenvia, edited["zenvia"][name], ticket)
        )
        if ruled_out:  # a parent change ruled the value out: once syncworker carried its
            # meaning to the case, that must live on; a value superseded on the ticket before
            # any sync committed it was never the pair's state (syncs carry states)
            meaning = mapping.translate(name, "zenvia", edited["zenvia"][name])
            carried = any(
                w.side == "crm" and w.native == mapped.crm and w.new == meaning for w in written
            )
            if carried and values["crm"] != meaning:
                findings.lost_updates.append(
                    f"{where}: last edited on zenvia to {edited['zenvia'][name]!r}, which a "
                    f"category change ruled out, and the case lost its meaning: {now}"
                )
        elif len(by) == 1 and values[by[0]] != edited[by[0]][name]:
            findings.lost_updates.append(
                f"{where}: last edited on {by[0]} to {edited[by[0]][name]!r}, {now}"
            )
        elif len(by) == 2 and all(values[side] != edited[side][name] for side in SIDES):
            findings.lost_updates.append(
                f"{where}: edited on both sides (crm → {edited['crm'][name]!r}, "
                f"zenvia → {edited['zenvia'][name]!r}), {now}"
            )
