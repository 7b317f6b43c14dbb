"""The account configuration a Zenvia sandbox serves: statuses, justifications, lookups, people.

`DEFAULT_CATALOGUE` is what the engine's default status/field mapping is written against;
change it only together with that mapping. Tests and demos may pass their own catalogue.

Each client is also a contact of the Contacts API with an e-mail (`contacts`): by default the
n-th client is `customer{n}@example.com`, the addresses the Salesforce sandbox's default
contacts carry (`sandbox.salesforce.DEFAULT_CONTACTS`), so a Case's contact finds its client.
"""

from __future__ import annotations

from dataclasses import dataclass, field

BASE_STATUS_TYPES = ("NEW", "IN_ATTENDANCE", "STOPPED", "CANCELED", "RESOLVED", "CLOSED")


@dataclass(frozen=True)
class Named:
    """A lookup entry rendered as `{id, name}` (category, urgency, service, justification…)."""

    id: int
    name: str

    def render(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True)
class Category(Named):
    """A category that belongs to some services and ticket types (empty = to all of them)."""

    services: tuple[int, ...] = ()
    types: tuple[str, ...] = ()

    def fits(self, service: Named | None, ticket_type: str) -> bool:
        in_service = not self.services or (service is not None and service.id in self.services)
        return in_service and (not self.types or ticket_type in self.types)


@dataclass(frozen=True)
class Urgency(Named):
    """An urgency that belongs to some categories (empty = to all of them)."""

    categories: tuple[int, ...] = ()

    def fits(self, category: Named | None) -> bool:
        return not self.categories or (category is not None and category.id in self.categories)


@dataclass(frozen=True)
class Status:
    """A configured status; `justifications` non-empty means one of them is required."""

    id: int
    name: str
    type: str
    justifications: tuple[int, ...] = ()

    @property
    def requires_justification(self) -> bool:
        return bool(self.justifications)

    def render(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "type": self.type}


@dataclass(frozen=True)
class Agent:
    id: str
    name: str
    team: Named


@dataclass(frozen=True)
class Contact:
    """A person of the Contacts API: the ticket client it is, and its e-mail channel."""

    client: str
    email: str
    name: str


def contacts_of(clients: tuple[str, ...]) -> tuple[Contact, ...]:
    """One contact per client, the n-th with `customer{n}@example.com`."""
    return tuple(
        Contact(client, f"customer{n}@example.com", f"Cliente {n}")
        for n, client in enumerate(clients, 1)
    )


@dataclass(frozen=True)
class ZenviaCatalogue:
    statuses: tuple[Status, ...]
    justifications: tuple[Named, ...]
    urgencies: tuple[Urgency, ...]
    categories: tuple[Category, ...]
    services: tuple[Named, ...]
    agents: tuple[Agent, ...]
    clients: tuple[str, ...]
    tags: tuple[Named, ...] = ()
    initial_status: int = 1
    contacts: tuple[Contact, ...] = ()  # empty: one per client (`contacts_of`)
    _index: dict[str, dict[object, object]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # Plain `Named` entries belong everywhere (a catalogue written before dependencies).
        categories = tuple(
            c if isinstance(c, Category) else Category(c.id, c.name) for c in self.categories
        )
        urgencies = tuple(
            u if isinstance(u, Urgency) else Urgency(u.id, u.name) for u in self.urgencies
        )
        object.__setattr__(self, "categories", categories)
        object.__setattr__(self, "urgencies", urgencies)
        object.__setattr__(self, "contacts", self.contacts or contacts_of(self.clients))
        for status in self.statuses:
            if status.type not in BASE_STATUS_TYPES:
                raise ValueError(f"status {status.id} has unknown base type {status.type!r}")
        index: dict[str, dict[object, object]] = {
            "status": {s.id: s for s in self.statuses},
            "justification": {j.id: j for j in self.justifications},
            "urgency": {u.id: u for u in self.urgencies},
            "category": {c.id: c for c in self.categories},
            "service": {s.id: s for s in self.services},
            "agent": {a.id: a for a in self.agents},
            "client": {c: c for c in self.clients},
            "tag": {t.id: t for t in self.tags},
            "team": {a.team.id: a.team for a in self.agents},
        }
        for status in self.statuses:
            missing = [j for j in status.justifications if j not in index["justification"]]
            if missing:
                raise ValueError(f"status {status.id} allows unknown justifications {missing}")
        if self.initial_status not in index["status"]:
            raise ValueError(f"initial status {self.initial_status} is not a configured status")
        strangers = [c.client for c in self.contacts if c.client not in index["client"]]
        if strangers:
            raise ValueError(f"contacts name unknown clients {strangers}")
        object.__setattr__(self, "_index", index)

    def status(self, status_id: int) -> Status | None:
        found = self._index["status"].get(status_id)
        return found if isinstance(found, Status) else None

    def named(self, kind: str, item_id: int) -> Named | None:
        """`kind` is one of justification, urgency, category, service, tag, team."""
        found = self._index[kind].get(item_id)
        return found if isinstance(found, Named) else None

    def agent(self, agent_id: str) -> Agent | None:
        found = self._index["agent"].get(agent_id)
        return found if isinstance(found, Agent) else None

    def has_client(self, client_id: str) -> bool:
        return client_id in self._index["client"]

    @property
    def teams(self) -> tuple[Named, ...]:
        """The agents' teams, each once: a ticket may be owned by a team alone."""
        return tuple(t for t in self._index["team"].values() if isinstance(t, Named))


_FIRST_LINE = Named(1, "Suporte N1")
_SECOND_LINE = Named(2, "Suporte N2")

DEFAULT_CATALOGUE = ZenviaCatalogue(
    statuses=(
        Status(1, "Novo", "NEW"),
        Status(2, "Em atendimento", "IN_ATTENDANCE"),
        Status(3, "Aguardando cliente", "STOPPED", (11,)),
        Status(4, "Cancelado", "CANCELED", (12,)),
        Status(5, "Resolvido", "RESOLVED", (13,)),
        Status(6, "Fechado", "CLOSED"),
    ),
    justifications=(
        Named(11, "Aguardando retorno do cliente"),
        Named(12, "Duplicado"),
        Named(13, "Solicitação atendida"),
    ),
    # Dependencies as v1 documents them: urgency 4 only for problems and billing, category 4
    # only under the Financeiro service on PUBLIC tickets; the shipped mapping uses neither.
    urgencies=(
        Urgency(1, "Baixa"),
        Urgency(2, "Média"),
        Urgency(3, "Alta"),
        Urgency(4, "Urgente", categories=(2, 4)),
    ),
    categories=(
        Category(1, "Dúvida"),
        Category(2, "Problema"),
        Category(3, "Solicitação"),
        Category(4, "Cobrança", services=(2,), types=("PUBLIC",)),
    ),
    services=(Named(1, "Suporte"), Named(2, "Financeiro")),
    agents=tuple(
        Agent(f"agent-{n}", f"Agente {n}", _FIRST_LINE if n <= 3 else _SECOND_LINE)
        for n in range(1, 6)
    ),
    clients=tuple(f"client-{n}" for n in range(1, 51)),
    tags=(Named(1, "vip"), Named(2, "bug"), Named(3, "reclamação")),
)
