"""Properties of the merge over random (lossy) mappings, random edits on both sides, random
interleavings of sync runs and interrupted runs, played in the in-memory world.

- convergence: once people stop editing, one complete run makes both sides agree;
- echo-freedom: a run right after a complete run plans nothing;
- no flip-flop: nothing is written for a field nobody edited, and a one-sided edit stays;
- idempotence: an interrupted run never duplicates a record or a comment;
- policies: a field changed on both sides ends as its policy says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncworker.engine import LinkSnapshot, Plan, UpdateFields, copy_text, is_copy_of
from syncworker.mapping import Mapping, from_data, load_default
from syncworker.mapping.sections import FieldMapping
from syncworker.model import SIDES, BaseStatus, LinkState, NativeFields, Side, other_side
from tests.unit.engine_sim import World

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CRM_VALUES = ("a", "b", "c", "d")
ZENVIA_VALUES = (1, 2, 3)
POLICIES = ("crm_wins", "zenvia_wins", "newest_wins", "manual")
DIRECTIONS = ("both", "both", "both", "crm_to_zenvia", "zenvia_to_crm")


@dataclass(frozen=True)
class Domain:
    """A mapping and the values people may type into each field on each side."""

    mapping: Mapping
    values: dict[str, dict[Side, tuple[Any, ...]]]
    always: dict[Side, NativeFields] = field(default_factory=lambda: {"crm": {}, "zenvia": {}})


@dataclass(frozen=True)
class Edit:
    side: Side
    field: str
    value: Any


@dataclass(frozen=True)
class Comment:
    side: Side
    public: bool


@dataclass(frozen=True)
class Sync:
    crash_after: int | None = None
    lose_ack: bool = False
    database_lost: bool = False


@dataclass(frozen=True)
class Resolve:
    field: str
    side: Side


Step = Edit | Comment | Sync | Resolve


@dataclass(frozen=True)
class Scenario:
    domain: Domain
    initial: dict[Side, NativeFields]
    steps: list[Step]


@dataclass(frozen=True)
class Before:
    """The world just before a run, for judging what the run did."""

    fields: dict[Side, NativeFields]
    versions: dict[Side, Any]
    link: LinkSnapshot | None
    edited: frozenset[tuple[Side, str]]
    resolutions: dict[str, Side]
    clean: bool  # no interrupted run since the last complete one
    written: frozenset[tuple[Side, str]] = frozenset()  # by the last run, before its last write
    edited_since_run: frozenset[tuple[Side, str]] = frozenset()
    read_by_run: dict[Side, NativeFields] = field(default_factory=dict)  # what it planned from


# -- strategies -------------------------------------------------------------------------------


def value_map(keys: tuple[Any, ...], values: tuple[Any, ...]) -> st.SearchStrategy[dict[Any, Any]]:
    return st.dictionaries(st.sampled_from(keys), st.sampled_from(values), max_size=len(keys))


@st.composite
def field_specs(draw: st.DrawFn, index: int) -> dict[str, Any]:
    direction = draw(st.sampled_from(DIRECTIONS))
    spec: dict[str, Any] = {"crm": f"F{index}", "zenvia": f"z{index}", "direction": direction}
    if direction == "both":
        spec["conflict"] = draw(st.sampled_from(POLICIES))
    flows: tuple[tuple[Side, tuple[Any, ...], tuple[Any, ...]], ...] = (
        ("zenvia", CRM_VALUES, ZENVIA_VALUES),
        ("crm", ZENVIA_VALUES, CRM_VALUES),
    )
    for to_side, keys, targets in flows:
        if direction == f"{to_side}_to_{other_side(to_side)}":
            continue
        spec[f"to_{to_side}"] = draw(value_map(keys, targets))
        if spec[f"to_{to_side}"] and draw(st.booleans()):
            spec[f"default_to_{to_side}"] = draw(st.sampled_from((*targets, None)))
    return spec


@st.composite
def random_domains(draw: st.DrawFn, min_fields: int = 1) -> Domain:
    count = draw(st.integers(min_fields, 3))
    fields = {f"f{i}": draw(field_specs(i)) for i in range(count)}
    comments = draw(st.sampled_from((True, True, True, False)))
    mapping = from_data(
        {"crm_system": "salesforce", "fields": fields, "comments": {"sync": comments}}
    )
    values: dict[Side, tuple[Any, ...]] = {"crm": CRM_VALUES, "zenvia": ZENVIA_VALUES}
    return Domain(mapping, dict.fromkeys(fields, values))


DEFAULT_DOMAIN = Domain(
    load_default("salesforce"),
    {
        "subject": {"crm": ("Printer", "Toner"), "zenvia": ("Printer", "Paper")},
        "status": {
            "crm": ("New", "Working", "Escalated", "On Hold", "Closed"),
            "zenvia": (1, 2, 3, 4, 5, 6),
        },
        "priority": {"crm": ("High", "Medium", "Low", None), "zenvia": (1, 2, 3, 4, None)},
        "category": {"crm": ("Question", "Problem", "Other"), "zenvia": (1, 2, 3, None)},
        "owner": {
            "crm": ("005000000000001AAA", "005000000000004AAA", "00G000000000001AAA"),
            "zenvia": ("agent-1", "agent-2", None),
        },
    },
    {"crm": {"Origin": "Email"}, "zenvia": {"type": "PUBLIC"}},
)


def edits(domain: Domain) -> st.SearchStrategy[Edit]:
    names = sorted(domain.values)

    @st.composite
    def edit(draw: st.DrawFn) -> Edit:
        side, name = draw(st.sampled_from(SIDES)), draw(st.sampled_from(names))
        return Edit(side, name, draw(st.sampled_from(domain.values[name][side])))

    return edit()


def steps(domain: Domain) -> st.SearchStrategy[Step]:
    names = sorted(domain.values)
    sides = st.sampled_from(SIDES)
    syncs = st.builds(Sync)
    crashes = st.builds(Sync, st.integers(0, 3), st.booleans())
    comments = st.builds(Comment, sides, st.booleans())
    resolves = st.builds(Resolve, st.sampled_from(names), sides)
    return st.one_of(edits(domain), edits(domain), syncs, syncs, comments, crashes, resolves)


@st.composite
def scenarios(draw: st.DrawFn, domains: st.SearchStrategy[Domain]) -> Scenario:
    domain = draw(domains)
    starts: tuple[tuple[Side, ...], ...] = (("crm",), ("zenvia",), SIDES)
    started = draw(st.sampled_from(starts))
    initial: dict[Side, NativeFields] = {}
    for side in started:
        initial[side] = {
            domain.mapping.fields[name].native(side): draw(st.sampled_from(values[side]))
            for name, values in domain.values.items()
        } | domain.always[side]
    return Scenario(domain, initial, draw(st.lists(steps(domain), max_size=25)))


@st.composite
def interrupted_scenarios(
    draw: st.DrawFn, domains: st.SearchStrategy[Domain], *, database_lost: bool = False
) -> Scenario:
    """A pair synced once, edits on both sides, a run that dies after its first write (or,
    `database_lost`, whose database goes away once that write is recorded), then people's
    edits and a complete run: the steps the interrupted-run properties judge."""
    domain = draw(domains)
    initial = draw(scenarios(st.just(domain))).initial
    names = draw(st.permutations(sorted(domain.values)))
    both = [  # one field edited on each side, so the run has a write for each
        Edit(side, name, draw(st.sampled_from(domain.values[name][side])))
        for side, name in zip(SIDES, names, strict=False)
    ]
    before = both + draw(st.lists(edits(domain), max_size=4))
    after = draw(st.lists(edits(domain), min_size=1, max_size=4))
    if database_lost:  # a field the lost run wrote, edited again on either side
        again = [
            Edit(side, edit.field, draw(st.sampled_from(domain.values[edit.field][side])))
            for edit in both
            for side in SIDES
        ]
        after = draw(st.lists(st.sampled_from(again), min_size=1, max_size=2)) + after
    interrupted = Sync(database_lost=True) if database_lost else Sync(crash_after=1)
    return Scenario(domain, initial, [Sync(), *before, interrupted, *after, Sync()])


# -- playing ----------------------------------------------------------------------------------

Judge = Callable[[World, Before, Plan, bool], None]


def play(scenario: Scenario, judge: Judge | None = None) -> World:
    """Run the scenario; `judge(world, before, plan, completed)` sees every run."""
    world = World(scenario.domain.mapping)
    for side, fields in scenario.initial.items():
        world.open_record(side, fields)
    clean = True
    for number, step in enumerate(scenario.steps):
        if isinstance(step, Edit):
            world.edit(
                step.side, scenario.domain.mapping.fields[step.field].native(step.side), step.value
            )
        elif isinstance(step, Comment):
            world.comment(step.side, f"note {number}", public=step.public)
        elif isinstance(step, Resolve):
            world.resolutions[step.field] = step.side
        else:
            before = snapshot(world, clean)
            plan = world.sync(
                crash_after=step.crash_after,
                lose_ack=step.lose_ack,
                database_lost=step.database_lost,
            )
            completed = not step.database_lost and (
                step.crash_after is None or step.crash_after >= len(plan.operations)
            )
            clean = completed
            if judge is not None:
                judge(world, before, plan, completed)
    return world


def snapshot(world: World, clean: bool) -> Before:
    records = {side: world.record(side) for side in SIDES}
    return Before(
        fields={side: dict(r.fields) if r else {} for side, r in records.items()},
        versions={side: r.version if r else None for side, r in records.items()},
        link=world.link,
        edited=frozenset(world.edited_since_sync),
        resolutions=dict(world.resolutions),
        clean=clean,
        written=frozenset(world.written_by_run),
        edited_since_run=frozenset(world.edited_since_run),
        read_by_run={side: dict(fields) for side, fields in world.value_read.items()},
    )


def parked_fields(world: World) -> set[str]:
    return {c.field for c in world.plan().conflicts if c.winner is None}


def ticket_closed(world: World) -> bool:
    """A CLOSED ticket takes no edit and no comment until it reopens: those wait."""
    zenvia = world.record("zenvia")
    status = zenvia.fields.get(world.mapping.status_native("zenvia") or "") if zenvia else None
    return world.mapping.status_base("zenvia", status) is BaseStatus.CLOSED


def assert_fields_agree(world: World) -> None:
    mapping = world.mapping
    crm, zenvia = world.record("crm"), world.record("zenvia")
    assert crm is not None
    assert zenvia is not None
    parked = parked_fields(world)
    for name, mapped in mapping.fields.items():
        if mapped.crm not in crm.fields or mapped.zenvia not in zenvia.fields:
            continue  # a record nobody gave this attribute (the sim's remotes add none)
        values = (crm.fields[mapped.crm], zenvia.fields[mapped.zenvia])
        waits = ticket_closed(world) and mapped.flows_from("crm")
        assert (
            mapping.settled(name, *values)
            or (name in parked and mapped.policy == "manual")
            or waits
        ), f"{name} disagrees: {values}"


def assert_every_comment_copied_once(world: World) -> None:
    """Each person's comment is on the other side exactly once, as the engine's copy text."""
    copies_enabled = world.mapping.comments.sync
    for source in SIDES:
        target = other_side(source)
        if target == "zenvia" and ticket_closed(world):
            continue  # copied once the ticket reopens
        for comment in world.comments_on(source):
            if comment.author_id == "sync":
                continue
            text = copy_text(world.mapping, source, comment)
            copies = [c for c in world.comments_on(target) if is_copy_of(c.body, text)]
            assert len(copies) == (1 if copies_enabled else 0), comment
            assert all(copy.public == comment.public for copy in copies)


# -- properties -------------------------------------------------------------------------------


@PROPERTY
@given(scenarios(random_domains()))
def test_one_complete_run_after_the_last_edit_makes_both_sides_agree(scenario: Scenario) -> None:
    world = play(scenario)
    world.sync()
    assert_fields_agree(world)
    assert_every_comment_copied_once(world)
    assert world.sync().is_empty


@PROPERTY
@given(scenarios(random_domains()))
def test_a_run_right_after_a_complete_run_plans_nothing(scenario: Scenario) -> None:
    def judge(world: World, before: Before, plan: Plan, completed: bool) -> None:
        if completed:
            again = world.plan()
            assert again.is_empty, again.describe()
            assert world.link is not None
            assert (again.crm_baseline, again.zenvia_baseline) == (
                world.link.crm_baseline,
                world.link.zenvia_baseline,
            )

    play(scenario, judge)


@PROPERTY
@given(scenarios(random_domains()))
def test_nothing_is_written_for_a_field_nobody_edited(scenario: Scenario) -> None:
    def judge(world: World, before: Before, plan: Plan, completed: bool) -> None:
        for op in plan.operations:
            if not isinstance(op, UpdateFields):
                continue
            for name, mapped in world.mapping.fields.items():
                if mapped.native(op.side) not in op.changes:
                    continue
                edited = any((side, mapped.native(side)) in before.edited for side in SIDES)
                unbased = before.link is None or any(
                    mapped.native(side) not in (before.link.baseline(side) or {}) for side in SIDES
                )
                resolved = name in before.resolutions  # an operator settled a parked conflict
                assert edited or unbased or resolved, f"{name} written without an edit: {op}"

    play(scenario, judge)


@PROPERTY
@given(scenarios(random_domains()))
def test_a_one_sided_edit_is_kept_where_it_was_made(scenario: Scenario) -> None:
    def judge(world: World, before: Before, plan: Plan, completed: bool) -> None:
        link = before.link
        if not (completed and before.clean and link):
            return
        for mapped in world.mapping.fields.values():
            natives = {side: mapped.native(side) for side in SIDES}
            baselines = {side: link.baseline(side) or {} for side in SIDES}
            if any(natives[side] not in baselines[side] for side in SIDES):
                continue  # never synced, or parked in a manual conflict: changed on both
            edited = [
                side
                for side in SIDES
                if before.fields[side].get(natives[side]) != baselines[side][natives[side]]
            ]
            if len(edited) == 1 and mapped.flows_from(edited[0]):
                side = edited[0]
                assert world.value(side, natives[side]) == before.fields[side][natives[side]], (
                    f"{side} lost its edit of {natives[side]}"
                )

    play(scenario, judge)


def written_before_a_complete_run(
    world: World, before: Before, completed: bool
) -> Iterator[tuple[Side, str, FieldMapping]]:
    """(side, native name, field) of each write an interrupted run made, when the run judged
    completes after it on a link that has baselines (a first merge is judged by its commit)."""
    link = before.link
    if not completed or before.clean or link is None:
        return
    if link.crm_baseline is None or link.zenvia_baseline is None:
        return
    for target, native in before.written:
        mapped = next(f for f in world.mapping.fields.values() if f.native(target) == native)
        yield target, native, mapped


@PROPERTY
@given(interrupted_scenarios(random_domains(min_fields=2)))
def test_a_person_editing_what_an_interrupted_run_wrote_keeps_the_edit(scenario: Scenario) -> None:
    """A run wrote a field, then died before its commit; a person then changed that field
    where it was written, and nobody touched the other side. The next complete run keeps the
    person's value: the write was folded into the baselines as it landed
    (`bookkeeping.fold_written`), so it is not taken for a change of the other side."""

    def judge(world: World, before: Before, plan: Plan, completed: bool) -> None:
        for target, native, mapped in written_before_a_complete_run(world, before, completed):
            source = other_side(target)
            edited_here_only = (target, native) in before.edited_since_run and (
                source,
                mapped.native(source),
            ) not in before.edited_since_run
            if edited_here_only and mapped.flows_from(target) and mapped.policy != "manual":
                assert world.value(target, native) == before.fields[target][native], (
                    f"a person's edit of {native} on {target} lost to an interrupted write"
                )

    play(scenario, judge)


@PROPERTY
@given(interrupted_scenarios(random_domains(min_fields=2), database_lost=True))
def test_a_person_editing_what_a_run_wrote_before_its_database_went_away_keeps_the_edit(
    scenario: Scenario,
) -> None:
    """A run's update landed, then the database took nothing more (the write's fold, the
    commit); a person then changed that field on one side only. The next complete run keeps
    the person's value: the update was recorded before it was sent, and the next plan folds
    what the record holds of it (`bookkeeping.fold_in_flight`), so our write is not taken for
    a change that beats the edit. Not judged: an edit putting back the very value the run read
    where it wrote, which cannot be told from a write that never landed."""

    def judge(world: World, before: Before, plan: Plan, completed: bool) -> None:
        for target, native, mapped in written_before_a_complete_run(world, before, completed):
            natives = {side: mapped.native(side) for side in SIDES}
            edited = [side for side in SIDES if (side, natives[side]) in before.edited_since_run]
            if len(edited) != 1 or mapped.policy == "manual":
                continue
            side = edited[0]
            value = before.fields[side][natives[side]]
            if not mapped.flows_from(side):
                continue  # a one-way field: the other side's value is the one kept
            if side == target and value == before.read_by_run[target].get(native):
                continue
            assert world.value(side, natives[side]) == value, (
                f"a person's edit of {natives[side]} on {side} lost to a write whose "
                "bookkeeping the database refused"
            )

    play(scenario, judge)


@PROPERTY
@given(scenarios(random_domains()))
def test_interrupted_runs_never_duplicate_records_or_comments(scenario: Scenario) -> None:
    world = play(scenario)
    world.sync()
    for remote in world.remotes.values():
        assert len(remote.fields) == 1
    assert_every_comment_copied_once(world)


@PROPERTY
@given(scenarios(random_domains()))
def test_a_field_changed_on_both_sides_ends_as_its_policy_says(scenario: Scenario) -> None:
    def judge(world: World, before: Before, plan: Plan, completed: bool) -> None:
        link = before.link
        if not (completed and before.clean and link and link.crm_baseline and link.zenvia_baseline):
            return
        mapping = world.mapping
        for name, mapped in mapping.fields.items():
            if any(mapped.native(side) not in before.fields[side] for side in SIDES):
                continue
            now = {side: before.fields[side][mapped.native(side)] for side in SIDES}
            base = {side: (link.baseline(side) or {}).get(mapped.native(side)) for side in SIDES}
            if mapped.direction != "both" or any(now[s] == base[s] for s in SIDES):
                continue
            if mapping.agree(name, now["crm"], now["zenvia"]):
                continue
            winner = expected_winner(mapped.policy, name, before)
            after = {side: world.value(side, mapped.native(side)) for side in SIDES}
            if winner is None:
                assert after == now
                assert plan.link_state is LinkState.CONFLICT
                continue
            loser = other_side(winner)
            assert after[winner] == now[winner]
            assert after[loser] == mapping.translate(name, winner, now[winner])

    play(scenario, judge)


def expected_winner(policy: str, name: str, before: Before) -> Side | None:
    if policy == "crm_wins":
        return "crm"
    if policy == "zenvia_wins":
        return "zenvia"
    if policy == "newest_wins":
        return "zenvia" if before.versions["zenvia"] > before.versions["crm"] else "crm"
    return before.resolutions.get(name)


@PROPERTY
@given(scenarios(st.just(DEFAULT_DOMAIN)))
def test_the_default_mapping_converges_without_echo_through_cancels_and_lossy_statuses(
    scenario: Scenario,
) -> None:
    def judge(world: World, before: Before, plan: Plan, completed: bool) -> None:
        if completed:
            assert world.plan().is_empty

    world = play(scenario, judge)
    world.sync()
    assert_fields_agree(world)
    assert_every_comment_copied_once(world)
    assert world.sync().is_empty
