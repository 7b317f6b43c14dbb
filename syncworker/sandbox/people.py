"""People at both desks, working as the real APIs let them: the demo's and the chaos suite's
humans go through here, and the benchmarks' people should too (see `bench/common.py`).

A Zenvia agent picks only lookup values the account's catalogue allows where the ticket stands
(a category of its service and type, an urgency of its category), gives every ticket they
create a client, and reopens a CLOSED ticket before touching it (Zenvia refuses anything else).
A Salesforce agent reopens a closed Case before working on it too, so that what they change can
still reach its ticket, and gives most Cases they create a contact (whose e-mail Zenvia may or
may not know as a customer's). Every edit returns the native values the person changed, the
reopening included, for logs that check nothing was lost; an urgency Zenvia clears because it
no longer fits a new category is Zenvia's side effect, not the person's edit, and syncworker
answers it with the case's priority (`Mapping.cleared_by_zenvia`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from syncworker.sandbox.salesforce import SalesforceSandbox
from syncworker.sandbox.zenvia import ZenviaSandbox
from syncworker.sandbox.zenvia_catalogue import (
    Category,
    Named,
    Status,
    Urgency,
    ZenviaCatalogue,
)

__all__ = [
    "OPEN_TYPES",
    "SalesforcePerson",
    "ZenviaPerson",
    "fitting_categories",
    "fitting_urgencies",
    "statuses_of",
]

OPEN_TYPES = ("NEW", "IN_ATTENDANCE", "STOPPED")
"""Base status types a ticket can be worked in; the others close or cancel it."""

_REOPEN_TYPES = ("IN_ATTENDANCE", "NEW", "STOPPED")  # preferred first: reopened to work on it
NO_CONTACT_SHARE = 0.2  # Cases created with no contact (a web form left blank)


def fitting_categories(
    catalogue: ZenviaCatalogue, service: Named | None, ticket_type: str
) -> tuple[Category, ...]:
    """The categories a ticket of this service and type may hold."""
    return tuple(c for c in catalogue.categories if c.fits(service, ticket_type))


def fitting_urgencies(catalogue: ZenviaCatalogue, category: Named | None) -> tuple[Urgency, ...]:
    """The urgencies a ticket of this category may hold."""
    return tuple(u for u in catalogue.urgencies if u.fits(category))


def statuses_of(catalogue: ZenviaCatalogue, types: Sequence[str]) -> tuple[Status, ...]:
    """The configured statuses whose base type is one of `types`, in catalogue order."""
    found = tuple(s for s in catalogue.statuses if s.type in types)
    if not found:
        raise ValueError(f"the catalogue has no status of type {', '.join(types)}")
    return found


def _named(value: Any) -> Named | None:
    """A rendered `{id, name}` lookup back as a `Named` (what `fits` compares)."""
    return Named(int(value["id"]), str(value["name"])) if isinstance(value, dict) else None


class ZenviaPerson:
    """One agent at Zenvia's desk; `rng` makes every choice, so a seed replays a run."""

    def __init__(self, sandbox: ZenviaSandbox, rng: random.Random, agent_id: str) -> None:
        self.sandbox, self.rng = sandbox, rng
        self.catalogue = sandbox.catalogue
        self.desk = sandbox.as_agent(agent_id)

    # -- creating -------------------------------------------------------------------------------

    def create_ticket(
        self,
        subject: str,
        *,
        status: Status | None = None,
        owner_id: str | None = None,
        description: str | None = None,
        public: bool = True,
    ) -> dict[str, Any]:
        """A PUBLIC ticket with no service, a category and urgency that fit, one client."""
        category = self.rng.choice(fitting_categories(self.catalogue, None, "PUBLIC"))
        urgency = self.rng.choice(fitting_urgencies(self.catalogue, category))
        return self.desk.create_ticket(
            subject,
            status=status.id if status else None,
            justification=status.justifications[0] if status and status.justifications else None,
            urgency=urgency.id,
            category=category.id,
            owner_id=owner_id,
            clients=[self.rng.choice(self.catalogue.clients)],
            description=description,
            public=public,
        )

    # -- editing (each reopens a CLOSED ticket first) -----------------------------------------

    def reopen_if_closed(self, ticket_id: str) -> dict[str, Any]:
        """Reopen a CLOSED ticket (to a status needing no justification); {} when open."""
        if self.sandbox.ticket(ticket_id)["status"]["type"] != "CLOSED":
            return {}
        reopen = min(
            (s for s in statuses_of(self.catalogue, _REOPEN_TYPES) if not s.requires_justification),
            key=lambda s: _REOPEN_TYPES.index(s.type),
        )
        self.desk.set_status(ticket_id, reopen.id)
        return {"status": reopen.id}

    def set_subject(self, ticket_id: str, subject: str) -> dict[str, Any]:
        changed = self.reopen_if_closed(ticket_id)
        self.desk.edit(ticket_id, "subject", {"subject": subject})
        return {**changed, "subject": subject}

    def set_status(self, ticket_id: str, choices: Sequence[Status]) -> dict[str, Any]:
        """One of `choices`, with the first justification it allows when it needs one."""
        status = self.rng.choice(choices)
        # Any status but CLOSED reopens a CLOSED ticket by itself.
        changed = self.reopen_if_closed(ticket_id) if status.type == "CLOSED" else {}
        reason = status.justifications[0] if status.justifications else None
        self.desk.set_status(ticket_id, status.id, reason)
        return {**changed, "status": status.id}

    def set_urgency(self, ticket_id: str) -> dict[str, Any]:
        """An urgency of the ticket's category."""
        changed = self.reopen_if_closed(ticket_id)
        category = _named(self.sandbox.ticket(ticket_id)["category"])
        urgency = self.rng.choice(fitting_urgencies(self.catalogue, category))
        self.desk.edit(ticket_id, "urgency", {"urgency": {"id": urgency.id}})
        return {**changed, "urgency": urgency.id}

    def set_category(self, ticket_id: str) -> dict[str, Any]:
        """A category of the ticket's service and type (Zenvia then clears an urgency that no
        longer fits it: its side effect, not reported as the person's edit)."""
        changed = self.reopen_if_closed(ticket_id)
        ticket = self.sandbox.ticket(ticket_id)
        service = _named(ticket["service"])
        category = self.rng.choice(fitting_categories(self.catalogue, service, ticket["type"]))
        self.desk.edit(ticket_id, "category", {"category": {"id": category.id}})
        return {**changed, "category": category.id}

    def set_owner(self, ticket_id: str) -> dict[str, Any]:
        changed = self.reopen_if_closed(ticket_id)
        owner = self.rng.choice(self.catalogue.agents).id
        self.desk.edit(ticket_id, "owner", {"ownerId": owner})
        return {**changed, "ownerId": owner}

    def comment(self, ticket_id: str, text: str, *, public: bool) -> dict[str, Any]:
        changed = self.reopen_if_closed(ticket_id)
        self.desk.add_action(ticket_id, text, public=public)
        return changed


class SalesforcePerson:
    """One user at Salesforce's desk (assignment rules unticked, as the UI defaults)."""

    def __init__(self, sandbox: SalesforceSandbox, user_id: str) -> None:
        self.sandbox = sandbox
        self.desk = sandbox.as_user(user_id)

    def create_case(self, rng: random.Random, **fields: Any) -> str:
        """A Case with `fields` and, unless `NO_CONTACT_SHARE` says none, one of the org's
        contacts (with the default contacts: five in six an e-mail Zenvia knows, one in six
        one it does not)."""
        contacts = sorted(self.sandbox.contacts)
        if contacts and rng.random() >= NO_CONTACT_SHARE:
            fields = {"ContactId": rng.choice(contacts), **fields}
        return self.desk.create_case(**fields)

    def reopen_if_closed(self, case_id: str) -> dict[str, Any]:
        """Reopen a closed Case to the first open status of its picklist; {} when open."""
        if self.desk.case(case_id).get("Status") not in self.sandbox.closed_statuses:
            return {}
        status = next(
            s for s in self.sandbox.picklists["Status"] if s not in self.sandbox.closed_statuses
        )
        self.desk.edit(case_id, Status=status)
        return {"Status": status}

    def edit(self, case_id: str, **fields: Any) -> dict[str, Any]:
        """Set `fields`; a closed Case is reopened first unless the edit sets its status."""
        changed = {} if "Status" in fields else self.reopen_if_closed(case_id)
        self.desk.edit(case_id, **fields)
        return {**changed, **fields}

    def comment(self, case_id: str, text: str, *, public: bool) -> dict[str, Any]:
        changed = self.reopen_if_closed(case_id)
        self.desk.add_comment(case_id, text, public=public)
        return changed
