"""Pairs from a file (`links import`): parse `case id, ticket id` lines, link each pair whose
records both exist."""

from __future__ import annotations

import csv
import functools
import io
import time as clock
from collections.abc import Callable
from dataclasses import dataclass

from syncworker.connectors.crm_ids import canonical_crm_id
from syncworker.connectors.errors import NotFoundError
from syncworker.context import Runtime
from syncworker.onboard.patience import _patiently
from syncworker.store import repo
from syncworker.store.db import session_scope


@dataclass(frozen=True)
class FilePair:
    line: int
    crm_id: str
    zenvia_id: str


def parse_pairs(text: str) -> tuple[list[FilePair], list[str]]:
    """`case id, ticket id` per line (a first line naming the columns is skipped); 15-character
    case ids become 18. Returns the pairs and one error per bad line, naming the line."""
    pairs: list[FilePair] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or (number == 1 and "case" in cells[0].lower()):
            continue
        if len(cells) != 2 or not all(cells):
            errors.append(f"line {number}: expected `case id, ticket id`; got {row!r}")
            continue
        try:
            crm_id = canonical_crm_id(cells[0])
        except ValueError as refused:
            errors.append(f"line {number}: {refused}")
            continue
        for key in (f"crm:{crm_id}", f"zenvia:{cells[1]}"):
            if key in seen:
                errors.append(f"line {number}: {key} was already given on line {seen[key]}")
                break
        else:
            seen |= {f"crm:{crm_id}": number, f"zenvia:{cells[1]}": number}
            pairs.append(FilePair(number, crm_id, cells[1]))
    return pairs, errors


def import_pairs(
    rt: Runtime,
    pairs: list[FilePair],
    *,
    dry_run: bool,
    pause: Callable[[float], None] = clock.sleep,
) -> tuple[int, list[str]]:
    """Link each pair whose records both exist (a typo must not pair a real case with nothing)
    and neither of which is linked elsewhere (the unique constraints refuse it). Cases are
    read one by one; tickets are looked up in one listing of them all, because Zenvia locks
    an account out after a few failed requests, and a ticket id that does not exist is one."""
    tickets = _patiently(lambda: _ticket_ids(rt), pause)
    errors: list[str] = []
    linked = 0
    for pair in pairs:
        missing = [
            f"{side} record {record_id} does not exist"
            for side, record_id, exists in (
                ("crm", pair.crm_id, _case_exists(rt, pair.crm_id, pause)),
                ("zenvia", pair.zenvia_id, pair.zenvia_id in tickets),
            )
            if not exists
        ]
        if missing:
            errors.append(f"line {pair.line}: {'; '.join(missing)}")
            continue
        with session_scope(rt.database_url) as session:
            try:
                repo.pair_records(
                    session, crm_system=rt.crm_system, crm_id=pair.crm_id, zenvia_id=pair.zenvia_id
                )
            except repo.DuplicateLinkError as refusal:
                errors.append(f"line {pair.line}: {refusal}")
                continue
            if dry_run:
                session.rollback()
        linked += 1
    return linked, errors


def _ticket_ids(rt: Runtime) -> set[str]:
    return {listed.id for listed in rt.connectors["zenvia"].iter_all()}


def _case_exists(rt: Runtime, case_id: str, pause: Callable[[float], None]) -> bool:
    try:
        _patiently(functools.partial(rt.connectors["crm"].get, case_id), pause)
    except NotFoundError:
        return False
    return True
