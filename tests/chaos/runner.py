"""The chaos scenario runner: seed N linked pairs, edit both sides while a fault hits, stop the
fault, give the system at most two reconcile cycles, then check every invariant.

One run:
1. two real `celery worker` processes; N pairs seeded (half cases, half tickets) and settled
   with no fault, and the invariants checked once (a broken baseline is not a chaos finding);
2. the fault window: a "human" edits random fields, adds comments and creates records on both
   sides through the sandboxes' agent desks (every edit goes into an `EditLog`), `poll()` runs
   as beat would (its failures counted, not raised) and the scenario does its damage;
3. the fault stops; up to two cycles of `reconcile()` + `settle()`, checking after each;
4. a `ChaosResult` with the figures the JSON summary line prints.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncworker.model import Side
from syncworker.sandbox.people import OPEN_TYPES, SalesforcePerson, ZenviaPerson, statuses_of
from syncworker.sandbox.salesforce import OWNER_IDS
from syncworker.sandbox.server import HttpError, Request, Response, SandboxApp
from tests.chaos.invariants import EditLog, Findings, check, snapshot
from tests.chaos.journal import Journal
from tests.stack import Stack, WorkerExited

CRM_STATUSES = ("New", "Working", "Escalated", "On Hold")  # open ones, as Zenvia's OPEN_TYPES
CRM_TYPES = ("Question", "Problem", "Feature Request")
WORDS = ("printer", "boleto", "VPN", "fatura", "login", "café", "naïve", "日本", "ação", "🙂")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


@dataclass
class ChaosConfig:
    pairs: int
    seconds: float  # length of the fault window
    ops_per_tick: int = 3
    tick_seconds: float = 0.25
    create_rate: float = 0.04  # share of operations that create a new record
    comment_rate: float = 0.3
    workers: int = 2
    concurrency: int = 2
    settle_timeout: float = 150.0
    seed: int = 20260611

    @classmethod
    def quick(cls) -> ChaosConfig:
        return cls(
            pairs=env_int("SYNCWORKER_CHAOS_PAIRS", 40),
            seconds=env_float("SYNCWORKER_CHAOS_SECONDS", 10.0),
        )

    @classmethod
    def full(cls) -> ChaosConfig:
        pairs = env_int("SYNCWORKER_CHAOS_PAIRS", 1000)
        return cls(
            pairs=pairs,
            seconds=env_float("SYNCWORKER_CHAOS_SECONDS", 90.0),
            ops_per_tick=max(3, pairs // 60),
            settle_timeout=900.0,
        )


class Scenario:
    """A fault: settings it needs, then start / tick (every loop turn) / stop."""

    name = "baseline"

    def overrides(self) -> dict[str, str]:
        return {}

    def start(self, run: ChaosRun) -> None:
        """The fault window opens."""

    def tick(self, run: ChaosRun) -> None:
        """Called on every turn of the fault window's loop."""

    def stop(self, run: ChaosRun) -> None:
        """The fault window closes: leave every component up and healthy."""

    def faults(self, run: ChaosRun) -> dict[str, Any]:
        """What this scenario did, for the summary."""
        return {}


@dataclass
class Pair:
    crm_id: str | None
    zenvia_id: str | None

    def sides(self) -> list[Side]:
        known: list[Side] = []
        if self.crm_id:
            known.append("crm")
        if self.zenvia_id:
            known.append("zenvia")
        return known


class Human:
    """Support agents on both sides: random edits, comments and new records, all logged.

    They work as the real APIs let them (`syncworker.sandbox.people`): Zenvia lookups that
    fit the catalogue, a client on every ticket, a closed record reopened first; whatever an
    action changed (a reopening, an urgency Zenvia cleared) goes into the `EditLog`.
    """

    def __init__(self, stack: Stack, rng: random.Random, edits: EditLog) -> None:
        self.stack, self.rng, self.edits = stack, rng, edits
        self.counts: Counter[str] = Counter()
        self.serial = 0
        catalogue = stack.zenvia.catalogue
        self.agents = tuple(agent.id for agent in catalogue.agents)
        self.zenvia_statuses = statuses_of(catalogue, OPEN_TYPES)
        self.canonical: dict[Side, dict[str, str]] = {
            side: {
                (mapped.crm if side == "crm" else mapped.zenvia): name
                for name, mapped in stack.mapping.fields.items()
            }
            for side in ("crm", "zenvia")
        }

    def _text(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix} {self.serial} " + " ".join(self.rng.choices(WORDS, k=3))

    def _log(self, side: Side, record_id: str, changed: dict[str, Any]) -> None:
        """Log each mapped native value an action changed under its canonical name."""
        for native, value in changed.items():
            name = self.canonical[side].get(native)
            if name is not None:
                self.edits.record(side, record_id, name, value)

    def _zenvia(self) -> ZenviaPerson:
        return ZenviaPerson(self.stack.zenvia, self.rng, self.rng.choice(self.agents))

    def _salesforce(self) -> SalesforcePerson:
        return SalesforcePerson(self.stack.salesforce, self.stack.salesforce.agent.user_id)

    # -- records ----------------------------------------------------------------------------

    def create_case(self, *, log: bool) -> str:
        rng = self.rng
        values = {
            "Subject": self._text("Case"),
            "Status": rng.choice(CRM_STATUSES),
            "Priority": rng.choice(("High", "Medium", "Low")),
            "Type": rng.choice(CRM_TYPES),
            "OwnerId": rng.choice(OWNER_IDS),
        }
        case_id = self._salesforce().create_case(
            rng,
            **values,
            Origin=rng.choice(("Web", "Email", "Phone")),
            Description=self._text("Description"),
        )
        if log:
            self._log("crm", case_id, values)
        self.counts["cases created"] += 1
        return case_id

    def create_ticket(self, *, log: bool) -> str:
        rng = self.rng
        ticket = self._zenvia().create_ticket(
            self._text("Chamado"),
            status=rng.choice(self.zenvia_statuses),
            owner_id=rng.choice(self.agents),
            description=self._text("Descrição") if rng.random() < 0.7 else None,
            public=rng.random() < 0.5,
        )
        ticket_id = str(ticket["id"])
        if log:
            self._log("zenvia", ticket_id, {key: _flat(value) for key, value in ticket.items()})
        self.counts["tickets created"] += 1
        return ticket_id

    # -- edits ------------------------------------------------------------------------------

    def edit(self, side: Side, record_id: str, name: str | None = None) -> None:
        """Change one mapped field (`name`, or one at random) to a random value."""
        name = name or self.rng.choice(("subject", "status", "priority", "category", "owner"))
        if side == "crm":
            choices: dict[str, tuple[str, ...]] = {
                "status": CRM_STATUSES,
                "priority": ("High", "Medium", "Low"),
                "category": CRM_TYPES,
                "owner": OWNER_IDS,
            }
            value: Any = (
                self._text("Edited case") if name == "subject" else self.rng.choice(choices[name])
            )
            native = self.stack.mapping.fields[name].crm
            changed = self._salesforce().edit(record_id, **{native: value})
        else:
            person = self._zenvia()
            if name == "subject":
                changed = person.set_subject(record_id, self._text("Chamado editado"))
            elif name == "status":
                changed = person.set_status(record_id, self.zenvia_statuses)
            elif name == "priority":
                changed = person.set_urgency(record_id)
            elif name == "category":
                changed = person.set_category(record_id)
            else:
                changed = person.set_owner(record_id)
        self._log(side, record_id, changed)
        self.counts[f"{side} edits"] += 1

    def comment(self, side: Side, record_id: str) -> None:
        body = self._text("Comentário" if side == "zenvia" else "Comment")
        public = self.rng.random() < 0.5
        if side == "crm":
            changed = self._salesforce().comment(record_id, body, public=public)
        else:
            changed = self._zenvia().comment(record_id, body, public=public)
        self._log(side, record_id, changed)
        self.counts[f"{side} comments"] += 1

    def act(self, pairs: list[Pair], create_rate: float, comment_rate: float) -> None:
        roll = self.rng.random()
        if roll < create_rate:
            if self.rng.random() < 0.5:
                pairs.append(Pair(self.create_case(log=True), None))
            else:
                pairs.append(Pair(None, self.create_ticket(log=True)))
            return
        pair = self.rng.choice(pairs)
        side = self.rng.choice(pair.sides())
        record_id = pair.crm_id if side == "crm" else pair.zenvia_id
        assert record_id is not None
        try:
            if roll < create_rate + comment_rate:
                self.comment(side, record_id)
            else:
                self.edit(side, record_id)
        except HttpError as refused:
            # The sync changed the record between what the person read and what they sent
            # (a category under their urgency): a person would look again; nothing is logged.
            self.counts[f"{side} actions refused ({refused.code})"] += 1


def _flat(value: Any) -> Any:
    """A rendered Zenvia lookup `{id, name}` as its id, as the connector reads it."""
    return value["id"] if isinstance(value, dict) and "id" in value else value


def after_each_handling(app: SandboxApp, label: str, action: Callable[[], None]) -> None:
    """Run `action` right after the sandbox applied a request to `label`, every time."""
    route = next(r for r in app.routes if r.label == label)
    original = route.handler

    def handler(request: Request) -> Response:
        response = original(request)
        action()
        return response

    route.handler = handler


@dataclass
class ChaosResult:
    scenario: str
    pairs: int
    findings: Findings
    seconds_to_converge: float | None
    reconcile_cycles: int
    faults: dict[str, Any]
    activity: dict[str, int]
    errors: dict[str, int]
    unhandled: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def converged(self) -> bool:
        return self.findings.ok and self.seconds_to_converge is not None

    def summary(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "pairs": self.pairs,
            "converged": self.converged,
            "seconds_to_converge": self.seconds_to_converge,
            "reconcile_cycles": self.reconcile_cycles,
            "duplicates": self.findings.duplicates,
            "lost": self.findings.lost,
            "faults": self.faults,
            "activity": self.activity,
            "harness_errors": self.errors,
            "worker_unhandled_errors": self.unhandled,
            "findings": self.findings.summary(),
            "examples": [] if self.findings.ok else self.findings.describe(limit=3).splitlines(),
            "notes": self.notes,
        }

    def json_line(self) -> str:
        return "CHAOS " + json.dumps(self.summary(), sort_keys=True, default=str)


class ChaosRun:
    def __init__(self, stack: Stack, scenario: Scenario, config: ChaosConfig) -> None:
        self.stack, self.scenario, self.config = stack, scenario, config
        self.rng = random.Random(f"{config.seed}-{scenario.name}")
        self.journal = Journal()
        self.journal.watch("zenvia", stack.zenvia)
        self.journal.watch("salesforce", stack.salesforce)
        self.edits = EditLog(on_record=self.journal.note)
        self.human = Human(stack, self.rng, self.edits)
        self.pairs: list[Pair] = []
        self.errors: Counter[str] = Counter()
        self.notes: list[str] = []

    # -- the parts of a run ------------------------------------------------------------------

    def start_workers(self) -> None:
        for _ in range(self.config.workers):
            self.stack.start_worker(concurrency=self.config.concurrency)

    def live_workers(self) -> int:
        return sum(worker.process.poll() is None for worker in self.stack.workers)

    def ensure_workers(self) -> None:
        while self.live_workers() < self.config.workers:
            with contextlib.suppress(WorkerExited):  # killed by the scenario while starting
                self.stack.start_worker(concurrency=self.config.concurrency)

    def seed(self) -> None:
        """People create the pairs' first sides after the first polls, as in a deployment whose
        beat polls from its start (what existed before is onboarding's job)."""
        self.stack.poll()
        half = self.config.pairs // 2
        for _ in range(half):
            self.human.create_case(log=False)
        for _ in range(self.config.pairs - half):
            self.human.create_ticket(log=False)
        self.stack.settle(timeout=self.config.settle_timeout)
        self.pairs = [Pair(link.crm_id, link.zenvia_id) for link in self.stack.links()]
        findings = self.check()
        assert findings.ok, (
            f"the seeded pairs did not converge before any fault:\n{findings.describe()}"
        )
        assert len(self.pairs) == self.config.pairs, (
            f"{len(self.pairs)} links for {self.config.pairs}"
        )

    def beat(self) -> None:
        """What beat would do every poll interval; a failing poll is counted, not raised."""
        try:
            self.stack.poll()
        except Exception as error:  # the fault may take down Redis or Postgres under us
            self.errors[f"poll: {type(error).__name__}"] += 1

    def fault_window(self) -> None:
        config = self.config
        deadline = time.monotonic() + config.seconds
        next_poll = 0.0
        while time.monotonic() < deadline:
            for _ in range(config.ops_per_tick):
                self.human.act(self.pairs, config.create_rate, config.comment_rate)
            self.scenario.tick(self)
            if time.monotonic() >= next_poll:
                self.beat()
                next_poll = time.monotonic() + self.stack.settings.poll_interval_seconds
            time.sleep(config.tick_seconds)

    def recover(self) -> tuple[Findings, float | None, int]:
        """At most two reconcile cycles; returns the last findings, seconds, cycles used."""
        started = time.monotonic()
        findings = Findings()
        for cycle in (1, 2):
            outcome = self.stack.reconcile()
            if not outcome.complete:
                self.notes.append(f"reconcile {cycle} incomplete")
            try:
                self.stack.settle(timeout=self.config.settle_timeout)
            except AssertionError as stuck:
                self.notes.append(f"cycle {cycle}: {stuck}; backlog {self.stack.backlog()}")
            findings = self.check()
            if findings.ok:
                return findings, round(time.monotonic() - started, 1), cycle
        return findings, None, 2

    def check(self) -> Findings:
        world = snapshot(self.stack.zenvia, self.stack.salesforce, self.stack.database_url)
        return check(world, self.stack.mapping, self.edits)

    def sandbox_faults(self) -> dict[str, Any]:
        counted: dict[str, Any] = {}
        for name, server in (
            ("zenvia", self.stack.zenvia_server),
            ("salesforce", self.stack.salesforce_server),
        ):
            injected = dict(server.counters.injected)
            if server.counters.throttled:
                injected["429"] = server.counters.throttled
            if injected:
                counted[name] = injected
        zenvia = self.stack.zenvia  # always shown: no lockout is worth saying too
        counted["zenvia lockouts (429 Too many failed requests)"] = {
            "lockouts": zenvia.lockouts,
            "requests refused": zenvia.lockout_refusals,
        }
        return counted

    def run(self) -> ChaosResult:
        self.start_workers()
        self.seed()
        self.scenario.start(self)
        try:
            self.fault_window()
        finally:
            self.scenario.stop(self)
        self.ensure_workers()
        findings, seconds, cycles = self.recover()
        if not findings.ok or seconds is None:
            self.notes.append(f"journal: {self.journal.dump(self.stack.tmp / 'journal.jsonl')}")
        return ChaosResult(
            scenario=self.scenario.name,
            pairs=len(self.pairs),
            findings=findings,
            seconds_to_converge=seconds,
            reconcile_cycles=cycles,
            faults={**self.sandbox_faults(), **self.scenario.faults(self)},
            activity={**self.human.counts, "edits logged": self.edits.count},
            errors=dict(self.errors),
            unhandled=unhandled_task_errors(self.stack),
            notes=self.notes,
        )


_UNEXPECTED = re.compile(r"raised unexpected: (\w+)\((.{0,80})")


def unhandled_task_errors(stack: Stack) -> dict[str, int]:
    """Task failures the retry policy did not classify, from every worker's log: Celery then
    acks the message as failed, so that sync is dropped until something enqueues it again."""
    found: Counter[str] = Counter()
    for worker in stack.workers:
        for match in _UNEXPECTED.finditer(worker.log()):
            found[f"{match.group(1)}: {match.group(2)}"] += 1
    return dict(found.most_common(10))


def report(result: ChaosResult) -> None:
    """Print the summary line; also append it to $SYNCWORKER_CHAOS_REPORT when set."""
    line = result.json_line()
    print(line, flush=True)
    target = os.environ.get("SYNCWORKER_CHAOS_REPORT")
    if target:
        with Path(target).open("a", encoding="utf-8") as out:
            out.write(line.removeprefix("CHAOS ") + "\n")
