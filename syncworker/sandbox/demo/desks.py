"""The people at both desks: agents editing and commenting on the two sandboxes, from one seed."""

from __future__ import annotations

import collections
import random
from typing import Any

from syncworker.model import Side
from syncworker.sandbox.people import SalesforcePerson, ZenviaPerson
from syncworker.sandbox.salesforce import OWNER_IDS, SalesforceSandbox
from syncworker.sandbox.server import HttpError
from syncworker.sandbox.zenvia import ZenviaSandbox


class Desks:
    """Agents editing and commenting in Salesforce and Zenvia, as people would, from one seed.

    Each round touches about a quarter of the records on each side with one change (subject,
    priority/urgency, status, owner, public or internal comment) and changes the same field
    on both sides of a few linked pairs, which the mapping's conflict policies must settle.
    They work as the real APIs let them (`syncworker.sandbox.people`): Zenvia values that fit
    the catalogue, a closed record reopened before it is touched, a client on every ticket.
    """

    def __init__(self, salesforce: SalesforceSandbox, zenvia: ZenviaSandbox, seed: int) -> None:
        self.salesforce, self.zenvia = salesforce, zenvia
        self.rng = random.Random(seed)
        self.done: collections.Counter[str] = collections.Counter()

    def seed(self, cases: int, tickets: int) -> None:
        self.salesforce.agent.populate(cases)
        self.zenvia.agent.populate(tickets)
        self.done["cases seeded"], self.done["tickets seeded"] = cases, tickets

    def work(self, round_no: int, pairs: list[tuple[str, str]]) -> None:
        rng = self.rng
        cases = [str(c["Id"]) for c in self.salesforce.cases(include_deleted=False)]
        tickets = [str(t["id"]) for t in self.zenvia.tickets()]
        for case_id in rng.sample(cases, k=_share(cases, 4)):
            self._change("crm", case_id, rng.choice(CHANGES), round_no)
        for ticket_id in rng.sample(tickets, k=_share(tickets, 4)):
            self._change("zenvia", ticket_id, rng.choice(CHANGES), round_no)
        for case_id, ticket_id in rng.sample(pairs, k=_share(pairs, 8)):
            change = rng.choice(CHANGES[:4])
            self._change("crm", case_id, change, round_no)
            self._change("zenvia", ticket_id, change, round_no)
            self.done["both sides"] += 1

    def _change(self, side: Side, record_id: str, change: str, round_no: int) -> None:
        try:
            if side == "crm":
                self._on_case(record_id, change, round_no)
            else:
                self._on_ticket(record_id, change, round_no)
        except HttpError:
            self.done[f"{side} edits refused by the remote"] += 1
        else:
            self.done[f"{side} {change}"] += 1

    def _on_case(self, case_id: str, change: str, round_no: int) -> None:
        rng = self.rng
        person = SalesforcePerson(self.salesforce, rng.choice(OWNER_IDS))
        if change == "subject":
            person.edit(case_id, Subject=f"{rng.choice(TOPICS)} (Salesforce, round {round_no})")
        elif change == "priority":
            person.edit(case_id, Priority=rng.choice(self.salesforce.picklists["Priority"]))
        elif change == "status":
            person.edit(case_id, Status=rng.choice(self.salesforce.picklists["Status"]))
        elif change == "owner":
            person.edit(case_id, OwnerId=rng.choice(OWNER_IDS))
        else:
            public = change == "public comment"
            person.comment(case_id, f"{rng.choice(NOTES)} (round {round_no})", public=public)

    def _on_ticket(self, ticket_id: str, change: str, round_no: int) -> None:
        rng = self.rng
        catalogue = self.zenvia.catalogue
        person = ZenviaPerson(self.zenvia, rng, rng.choice(catalogue.agents).id)
        if change == "subject":
            person.set_subject(ticket_id, f"{rng.choice(TOPICS)} (Zenvia, round {round_no})")
        elif change == "priority":
            person.set_urgency(ticket_id)
        elif change == "status":
            person.set_status(ticket_id, catalogue.statuses)
        elif change == "owner":
            person.set_owner(ticket_id)
        else:
            public = change == "public comment"
            person.comment(ticket_id, f"{rng.choice(NOTES)} (round {round_no})", public=public)


def _share(items: list[Any], divisor: int) -> int:
    """About 1/divisor of the items, at least one when there are any."""
    return min(len(items), max(1, len(items) // divisor))


CHANGES = ("subject", "priority", "status", "owner", "public comment", "internal comment")
TOPICS = ("Invoice missing", "Login fails", "Refund request", "Plan upgrade", "API errors")
NOTES = ("Called the customer", "Waiting for finance", "Sent the fix", "Escalated to N2")
