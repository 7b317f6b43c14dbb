"""`bench.business_day --plot`: the day in one picture (matplotlib: `pip install -e .[bench]`).

Three panels over the day's real minutes, business hours shaded: Zenvia requests per minute by
kind with the budget line (and a `--capacity` staircase's rates), the backlog of changes not yet
written across, and each change's propagation lag by when it was made.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

KIND_COLOURS = {
    "write": "#2a9d8f",
    "re_read": "#e9c46a",
    "comment_discovery": "#f4a261",
    "poll": "#8d99ae",
}
SIDE_COLOURS = {"crm": "#264653", "zenvia": "#e76f51"}
SIDE_NAMES = {"crm": "made in Salesforce", "zenvia": "made in Zenvia"}


@dataclass(frozen=True)
class Trace:
    """What the day left behind, in real minutes from the start of business hours."""

    requests: list[tuple[float, str]]  # (minute, kind) per Zenvia request served
    backlog: list[tuple[float, int]]  # (minute, changes made and not yet written across)
    lags: list[tuple[float, float, str]]  # (minute made, lag in minutes, side made on)
    business_minutes: float
    end_minutes: float
    limit_per_minute: int
    staircase: list[tuple[float, float]] = field(default_factory=list)  # (minute, changes/min)


def draw(path: Path, trace: Trace) -> None:
    import matplotlib  # checked by `business_day.plot_path` before the day runs

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = int(trace.end_minutes) + 1
    figure, (requests, backlog, lag) = plt.subplots(
        3, 1, figsize=(11, 9), sharex=True, height_ratios=(2, 1, 1.5)
    )
    per_minute = {
        kind: Counter(int(m) for m, k in trace.requests if k == kind) for kind in KIND_COLOURS
    }
    bottom = [0] * minutes
    for kind, colour in KIND_COLOURS.items():
        heights = [per_minute[kind][m] for m in range(minutes)]
        requests.bar(
            range(minutes),
            heights,
            1.0,
            bottom=bottom,
            color=colour,
            label=kind.replace("_", " "),
            align="edge",
        )
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    requests.hlines(
        trace.limit_per_minute,
        0,
        trace.business_minutes,
        colors="black",
        linestyles="--",
        label=f"budget: {trace.limit_per_minute}/min",
    )
    if trace.staircase:
        requests.stairs(
            [rate for _, rate in trace.staircase],
            [minute for minute, _ in trace.staircase] + [trace.business_minutes],
            color="#6a040f",
            linewidth=2,
            label="changes made / min",
        )
    requests.set_ylim(0, max(2 * trace.limit_per_minute, 1))
    requests.set_ylabel("Zenvia requests / min")
    requests.set_title("Zenvia requests by kind (night: unlimited, clipped at twice the budget)")
    requests.legend(loc="upper right", ncols=5, fontsize="small")

    backlog.plot([m for m, _ in trace.backlog], [n for _, n in trace.backlog], color="#264653")
    backlog.set_ylabel("changes pending")
    backlog.set_title("Backlog: changes made, not yet written to the other side")

    for side, colour in SIDE_COLOURS.items():
        points = [(m, lag_) for m, lag_, s in trace.lags if s == side]
        lag.scatter(
            [m for m, _ in points],
            [v for _, v in points],
            s=8,
            color=colour,
            label=SIDE_NAMES[side],
        )
    lag.set_ylabel("lag (min)")
    lag.set_xlabel("real minutes from the start of business hours")
    lag.set_title("Propagation lag of each change, by when it was made")
    lag.legend(loc="upper left", fontsize="small")

    for axes in (requests, backlog, lag):
        axes.axvspan(0, trace.business_minutes, color="#fff3cd", zorder=0)
        axes.set_xlim(0, minutes)
        axes.grid(axis="y", alpha=0.3)
    figure.text(
        0.01,
        0.005,
        "shaded: business hours (10 requests/min); after: night (no limit)",
        fontsize="small",
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
