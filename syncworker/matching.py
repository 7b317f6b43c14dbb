"""Pairs of records that already exist on both sides (copied by hand before syncworker): pure.

`match` tries the mapping's `matching` section in order — an id field holding the other
side's id, then each rule — on records no link holds yet. A record that matches several
records (or is matched by several) is never paired: it and every candidate are reported as
ambiguous and left out of later rules, so a person decides (`syncworker links import`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from syncworker.connectors.crm_ids import canonical_crm_id
from syncworker.mapping import Mapping, MatchRule, record_stamp
from syncworker.markers import find_marker
from syncworker.model import SIDES, RemoteComment, RemoteRecord, Side, other_side

BY_ID = "id field"


def case_id18(value: str) -> str | None:
    """A CRM id as the CRM's API returns it, however it was written; None if it is not one."""
    try:
        return canonical_crm_id(value.strip())
    except ValueError:
        return None


@dataclass(frozen=True)
class Match:
    crm_id: str
    zenvia_id: str
    rule: str


@dataclass(frozen=True)
class Ambiguous:
    """A record with several candidates under `rule`: nobody is paired, a person decides."""

    side: Side
    record_id: str
    candidates: tuple[str, ...]
    rule: str


@dataclass(frozen=True)
class Matches:
    pairs: tuple[Match, ...]
    ambiguous: tuple[Ambiguous, ...]

    def left_out(self) -> dict[Side, set[str]]:
        """Every record an ambiguity touches, per side: neither paired nor copied."""
        held: dict[Side, set[str]] = {"crm": set(), "zenvia": set()}
        for entry in self.ambiguous:
            held[entry.side].add(entry.record_id)
            held[other_side(entry.side)].update(entry.candidates)
        return held


Edges = Callable[[dict[str, RemoteRecord], dict[str, RemoteRecord]], Iterable[tuple[str, str]]]


def match(mapping: Mapping, crm: Sequence[RemoteRecord], zenvia: Sequence[RemoteRecord]) -> Matches:
    """Pair unlinked records by the mapping's `matching` section, method by method."""
    pools: dict[Side, dict[str, RemoteRecord]] = {
        "crm": {r.id: r for r in crm if not r.deleted},
        "zenvia": {r.id: r for r in zenvia if not r.deleted},
    }
    pairs: list[Match] = []
    ambiguous: list[Ambiguous] = []
    for name, edges in _methods(mapping):
        found, unclear = _resolve(name, edges(pools["crm"], pools["zenvia"]))
        pairs += found
        ambiguous += unclear
        taken = Matches(tuple(found), tuple(unclear)).left_out()
        for m in found:
            taken["crm"].add(m.crm_id)
            taken["zenvia"].add(m.zenvia_id)
        for side in SIDES:
            for record_id in taken[side]:
                pools[side].pop(record_id, None)
    return Matches(tuple(pairs), tuple(ambiguous))


def _methods(mapping: Mapping) -> list[tuple[str, Edges]]:
    by_id = mapping.matching.by_id
    methods: list[tuple[str, Edges]] = []
    if by_id.crm:
        methods.append((BY_ID, _names_the_other("crm", by_id.crm)))
    if by_id.zenvia:
        methods.append((BY_ID, _names_the_other("zenvia", by_id.zenvia)))
    methods += [(rule.name, _by_rule(rule)) for rule in mapping.matching.rules]
    return methods


def _names_the_other(side: Side, native: str) -> Edges:
    """Records of `side` whose `native` attribute holds the id of an unlinked record on the
    other side (a case id typed in a ticket may have 15 characters)."""
    target = other_side(side)

    def edges(
        crm: dict[str, RemoteRecord], zenvia: dict[str, RemoteRecord]
    ) -> Iterable[tuple[str, str]]:
        pools = {"crm": crm, "zenvia": zenvia}
        for record in pools[side].values():
            text = str(record.fields.get(native) or "").strip()
            named = case_id18(text) if target == "crm" else text
            if named in pools[target]:
                yield (record.id, named) if side == "crm" else (named, record.id)

    return edges


def _by_rule(rule: MatchRule) -> Edges:
    """Candidates indexed by the rule's `same` values, then filtered by the creation window."""
    window = timedelta(minutes=rule.within_minutes or 0)

    def edges(
        crm: dict[str, RemoteRecord], zenvia: dict[str, RemoteRecord]
    ) -> Iterable[tuple[str, str]]:
        index: dict[tuple[str, ...], list[RemoteRecord]] = defaultdict(list)
        for ticket in zenvia.values():
            for key in _keys(rule, "zenvia", ticket):
                index[key].append(ticket)
        for case in crm.values():
            seen: set[str] = set()
            for key in _keys(rule, "crm", case):
                for ticket in index.get(key, ()):
                    if ticket.id not in seen and _close_enough(rule, window, case, ticket):
                        seen.add(ticket.id)
                        yield case.id, ticket.id

    return edges


def _keys(rule: MatchRule, side: Side, record: RemoteRecord) -> list[tuple[str, ...]]:
    """Every combination of the record's `same` values (a list attribute offers each item);
    none when one of them is empty, so blank fields never match each other."""
    keys: list[tuple[str, ...]] = [()]
    for same in rule.same:
        values = _comparable(record.fields.get(same.crm if side == "crm" else same.zenvia))
        keys = [(*key, value) for key in keys for value in values]
    return keys


def same_comments(
    crm: Sequence[RemoteComment], zenvia: Sequence[RemoteComment]
) -> list[tuple[str, str]]:
    """(crm comment id, zenvia comment id) of comments copied by hand: the same text ignoring
    case and spacing, paired oldest with oldest; the first sync then copies only the rest."""
    by_text: dict[str, list[RemoteComment]] = defaultdict(list)
    for comment in sorted(zenvia, key=lambda c: (c.created_at, c.id)):
        if not find_marker(comment.body):
            by_text[_text(comment.body)].append(comment)
    pairs: list[tuple[str, str]] = []
    for comment in sorted(crm, key=lambda c: (c.created_at, c.id)):
        copies = by_text.get(_text(comment.body))
        if copies and not find_marker(comment.body):
            pairs.append((comment.id, copies.pop(0).id))
    return pairs


def _text(value: object) -> str:
    return re.sub(r"\s+", " ", str(value)).strip().casefold()


def _comparable(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    texts = (_text(item) for item in items if item)
    return [text for text in texts if text]


def _close_enough(
    rule: MatchRule, window: timedelta, case: RemoteRecord, ticket: RemoteRecord
) -> bool:
    if rule.created is None:
        return True
    crm_at = record_stamp(case.fields.get(rule.created.crm))
    zenvia_at = record_stamp(ticket.fields.get(rule.created.zenvia))
    return crm_at is not None and zenvia_at is not None and abs(crm_at - zenvia_at) <= window


def _resolve(rule: str, edges: Iterable[tuple[str, str]]) -> tuple[list[Match], list[Ambiguous]]:
    """One-to-one edges become pairs; a record with several edges makes them all ambiguous."""
    of_case: dict[str, set[str]] = defaultdict(set)
    of_ticket: dict[str, set[str]] = defaultdict(set)
    for crm_id, zenvia_id in edges:
        of_case[crm_id].add(zenvia_id)
        of_ticket[zenvia_id].add(crm_id)
    unclear = [
        Ambiguous("crm", crm_id, tuple(sorted(tickets)), rule)
        for crm_id, tickets in sorted(of_case.items())
        if len(tickets) > 1
    ] + [
        Ambiguous("zenvia", zenvia_id, tuple(sorted(cases)), rule)
        for zenvia_id, cases in sorted(of_ticket.items())
        if len(cases) > 1
    ]
    pairs = [
        Match(crm_id, next(iter(tickets)), rule)
        for crm_id, tickets in sorted(of_case.items())
        if len(tickets) == 1 and len(of_ticket[next(iter(tickets))]) == 1
    ]
    return pairs, unclear
