"""The checklist: items that are ok, warn or fail (each not ok with its one-line fix), and the
lines `syncworker check` prints."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["ok", "warn", "fail"]
SYMBOLS: dict[Status, str] = {"ok": "✓", "warn": "!", "fail": "✗"}


@dataclass(frozen=True)
class Item:
    """One checklist line: `fix` says in one line what to do when it is not ok."""

    area: str
    name: str
    status: Status
    message: str
    fix: str = ""

    def __post_init__(self) -> None:
        if self.status != "ok" and not self.fix:
            raise ValueError(f"{self.area}/{self.name}: a {self.status} item needs its fix")

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.status]


def one_line(error: Exception) -> str:
    """An error's words on one line, as a checklist item shows them."""
    return " ".join(str(error).split())


def ok(area: str, name: str, message: str) -> Item:
    return Item(area, name, "ok", message)


def warn(area: str, name: str, message: str, fix: str) -> Item:
    return Item(area, name, "warn", message, fix)


def fail(area: str, name: str, message: str, fix: str) -> Item:
    return Item(area, name, "fail", message, fix)


@dataclass
class Checklist:
    items: list[Item] = field(default_factory=list)
    zenvia_requests: int = 0

    def add(self, items: Item | Iterable[Item]) -> None:
        self.items.extend([items] if isinstance(items, Item) else items)

    @property
    def blocked(self) -> bool:
        return any(item.status == "fail" for item in self.items)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": not self.blocked,
            "zenvia_requests": self.zenvia_requests,
            "items": [asdict(item) for item in self.items],
        }


def lines(checklist: Checklist) -> Iterator[tuple[Item, str]]:
    """Each item with its plain-text line (`✓ area name: message`)."""
    for item in checklist.items:
        yield item, f"{item.symbol} {item.area} {item.name}: {item.message}"
