"""Has the sync converged? A checker of both remotes' state against the links and the mapping.

`check()` is pure: give it what each side holds now (`SideState`: live records as native
fields, and their comments) and the links as (crm id, zenvia id) pairs; it returns a
`ConvergenceReport` listing every difference, empty when the two sides are in sync:

- every live record on each side is in exactly one link, and every link names one live
  record on each side (one case ↔ one ticket, nothing half-linked or dangling);
- every linked pair agrees on every mapped field under the mapping (`Mapping.settled`, so a
  lossy value map such as Escalated → 2 counts as agreement), except what waits for a CLOSED
  ticket to reopen (it takes no edit and no comment until then);
- every comment a person wrote exists exactly once on the other side, as the copy the engine
  makes (`engine.copy_text`, known by `engine.is_copy_of`), with the same visibility. What
  the sync wrote itself (copies, notices, a create's first action) is not a person's.

`crm_state()` and `zenvia_state()` read the sandboxes in-process (no HTTP, no counters) in the
shapes the connectors produce, so the demo and the chaos suite check what really ended up there.
Records deleted on purpose are the caller's to leave out (pass only the links that should be
live): the checker holds every record it is given to the rules above.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from syncworker.engine import copy_text, is_copy_of, is_notice
from syncworker.mapping import Mapping as FieldMap
from syncworker.markers import find_marker
from syncworker.model import SIDES, BaseStatus, NativeFields, RemoteComment, Side, other_side
from syncworker.sandbox.zenvia import ZenviaSandbox

LinkedPair = tuple[str | None, str | None]
"""A link as (crm record id, zenvia record id); either may be missing."""


@dataclass(frozen=True)
class SideState:
    """One remote as it stands: live records (id → native fields) and their comments."""

    records: Mapping[str, NativeFields]
    comments: Mapping[str, Sequence[RemoteComment]]

    def comments_of(self, record_id: str) -> Sequence[RemoteComment]:
        return self.comments.get(record_id, ())


@dataclass(frozen=True)
class Difference:
    """One way the two sides disagree: a short `kind` and a sentence naming the records."""

    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


@dataclass(frozen=True)
class ConvergenceReport:
    pairs: int
    fields_checked: int
    comments_checked: int
    differences: tuple[Difference, ...]

    @property
    def converged(self) -> bool:
        return not self.differences

    @property
    def verdict(self) -> str:
        return "converged" if self.converged else f"{len(self.differences)} difference(s)"

    def scope(self) -> str:
        return (
            f"{self.pairs} linked pairs, {self.fields_checked} fields and "
            f"{self.comments_checked} comments checked"
        )

    def summary(self) -> str:
        return f"{self.verdict}: {self.scope()}"


def check(
    mapping: FieldMap, *, crm: SideState, zenvia: SideState, links: Iterable[LinkedPair]
) -> ConvergenceReport:
    """Compare both sides through the links and the mapping; see the module docstring."""
    states: dict[Side, SideState] = {"crm": crm, "zenvia": zenvia}
    links = list(links)
    differences = _link_differences(states, links)
    pairs = [
        (crm_id, zenvia_id)
        for crm_id, zenvia_id in links
        if crm_id in crm.records and zenvia_id in zenvia.records
    ]
    fields_checked = comments_checked = 0
    for crm_id, zenvia_id in pairs:
        assert crm_id is not None
        assert zenvia_id is not None
        closed = _closed(mapping, zenvia.records[zenvia_id])
        for name, field in mapping.fields.items():
            if closed and field.flows_from("crm"):
                continue  # waits for the ticket to reopen
            fields_checked += 1
            crm_value = crm.records[crm_id].get(field.crm)
            zenvia_value = zenvia.records[zenvia_id].get(field.zenvia)
            if not mapping.settled(name, crm_value, zenvia_value):
                differences.append(
                    Difference(
                        "field",
                        f"{name}: case {crm_id} has {field.crm}={crm_value!r}, "
                        f"ticket {zenvia_id} has {field.zenvia}={zenvia_value!r}",
                    )
                )
        if mapping.comments.sync:
            ids: dict[Side, str] = {"crm": crm_id, "zenvia": zenvia_id}
            sources: tuple[Side, ...] = ("zenvia",) if closed else SIDES
            for side in sources:
                found, checked = _comment_differences(mapping, states, ids, side)
                differences.extend(found)
                comments_checked += checked
    return ConvergenceReport(
        pairs=len(pairs),
        fields_checked=fields_checked,
        comments_checked=comments_checked,
        differences=tuple(differences),
    )


_NOUN = {"crm": "case", "zenvia": "ticket"}


def _link_differences(states: dict[Side, SideState], links: list[LinkedPair]) -> list[Difference]:
    """One link per record per side, and every link whole and pointing at live records."""
    differences: list[Difference] = []
    for index, side in enumerate(SIDES):
        noun = _NOUN[side]
        linked = collections.Counter(link[index] for link in links if link[index] is not None)
        differences += [
            Difference("unlinked", f"{noun} {record_id} has no linked counterpart")
            for record_id in states[side].records
            if not linked[record_id]
        ]
        differences += [
            Difference("linked twice", f"{noun} {record_id} is in {count} links")
            for record_id, count in sorted(linked.items(), key=lambda item: str(item[0]))
            if count > 1
        ]
    for crm_id, zenvia_id in links:
        label = f"the link of case {crm_id} and ticket {zenvia_id}"
        for side, record_id in zip(SIDES, (crm_id, zenvia_id), strict=True):
            if record_id is None:
                differences.append(Difference("half link", f"{label} has no {_NOUN[side]}"))
            elif record_id not in states[side].records:
                differences.append(
                    Difference("dangling link", f"{label}: {_NOUN[side]} {record_id} is gone")
                )
    return differences


def _closed(mapping: FieldMap, ticket: NativeFields) -> bool:
    status = ticket.get(mapping.status_native("zenvia") or "")
    return mapping.status_base("zenvia", status) is BaseStatus.CLOSED


def _comment_differences(
    mapping: FieldMap, states: dict[Side, SideState], ids: dict[Side, str], source: Side
) -> tuple[list[Difference], int]:
    """Each person's comment on `source` must be on the other side exactly once, as its copy."""
    target = other_side(source)
    theirs = states[target].comments_of(ids[target])
    differences: list[Difference] = []
    checked = 0
    where = f"{_NOUN[target]} {ids[target]}"
    for comment in states[source].comments_of(ids[source]):
        if _written_by_the_sync(mapping, comment, target, theirs):
            continue
        checked += 1
        text = copy_text(mapping, source, comment)
        found = [c for c in theirs if is_copy_of(c.body, text)]
        what = f"{_NOUN[source]} {ids[source]} comment {comment.id} ({_excerpt(comment.body)})"
        if not found:
            differences.append(Difference("comment missing", f"{what} is not on {where}"))
            continue
        if len(found) > 1:
            differences.append(
                Difference("comment duplicated", f"{what} is on {where} {len(found)} times")
            )
        if found[0].public != comment.public:
            visibility = "public" if found[0].public else "internal"
            differences.append(
                Difference("comment visibility", f"{what} is {visibility} on {where}")
            )
    return differences, checked


def _written_by_the_sync(
    mapping: FieldMap, comment: RemoteComment, other: Side, others: Sequence[RemoteComment]
) -> bool:
    """A copy of a comment on the other side, a notice, or a create's first action."""
    if find_marker(comment.body) or is_notice(comment.body):
        return True
    return any(is_copy_of(comment.body, copy_text(mapping, other, c)) for c in others)


def _excerpt(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return repr(line[:40] + ("…" if len(line) > 40 else ""))


# -- reading the sandboxes ---------------------------------------------------------------------


class CrmSandbox(Protocol):
    """The CRM sandbox as `crm_state` reads it: its records and their comments, as rows."""

    def cases(self, *, include_deleted: bool = True) -> list[dict[str, Any]]: ...

    def comments(self, case_id: str | None = None) -> list[dict[str, Any]]: ...


def crm_state(sandbox: CrmSandbox) -> SideState:
    """Live CRM records with their live comments, as the CRM connector reads them."""
    records = {
        str(case["Id"]): {key: value for key, value in case.items() if key != "attributes"}
        for case in sandbox.cases(include_deleted=False)
    }
    comments: dict[str, list[RemoteComment]] = collections.defaultdict(list)
    for row in sandbox.comments():
        if row.get("IsDeleted") or row["ParentId"] not in records:
            continue
        comments[row["ParentId"]].append(
            RemoteComment(
                id=str(row["Id"]),
                record_id=str(row["ParentId"]),
                body=row.get("CommentBody") or "",
                public=bool(row.get("IsPublished")),
                created_at=_timestamp(row.get("CreatedDate")),
                author_id=row.get("CreatedById"),
            )
        )
    return SideState(records=records, comments=dict(comments))


def zenvia_state(sandbox: ZenviaSandbox) -> SideState:
    """Tickets (lookups flattened to their ids) with their actions, as the Zenvia connector
    reads them: action ids are `<ticket id>:<action id>`."""
    records: dict[str, NativeFields] = {}
    comments: dict[str, list[RemoteComment]] = {}
    for ticket in sandbox.tickets():
        ticket_id = str(ticket["id"])
        records[ticket_id] = {key: _flat(value) for key, value in ticket.items()}
        comments[ticket_id] = [
            RemoteComment(
                id=f"{ticket_id}:{action['id']}",
                record_id=ticket_id,
                body=action.get("description") or "",
                public=action.get("type") == "PUBLIC",
                created_at=_timestamp(action.get("createdAt")),
                author_id=action.get("createdById"),
            )
            for action in sandbox.actions(ticket_id)
        ]
    return SideState(records=records, comments=comments)


def _flat(value: Any) -> Any:
    """Zenvia renders lookups as `{id, name}`; the connector keeps only the id."""
    return value["id"] if isinstance(value, dict) and "id" in value else value


def _timestamp(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.min.replace(tzinfo=UTC)


__all__ = [
    "ConvergenceReport",
    "Difference",
    "LinkedPair",
    "SideState",
    "check",
    "crm_state",
    "zenvia_state",
]
