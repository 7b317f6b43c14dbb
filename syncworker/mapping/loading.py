"""A mapping file → a validated `Mapping`, or one `MappingError` that names the file, the key
path and what was expected for every problem at once: a bad file fails at load time, never
halfway through a sync."""

from __future__ import annotations

import copy
import importlib.resources
import logging
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from syncworker.mapping.checks import consistency_problems
from syncworker.mapping.messages import schema_problems
from syncworker.mapping.model import Mapping
from syncworker.mapping.values import yaml_kind

log = logging.getLogger(__name__)


class MappingError(ValueError):
    """A mapping file that cannot be used; the message says where and what was expected."""


def load(path: str | Path) -> Mapping:
    """Load and validate a mapping file (the `SYNCWORKER_MAPPING_FILE` setting)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingError(f"{path}: cannot read the mapping file ({exc.strerror})") from exc
    return parse(text, source=str(path))


def shipped_mapping_file(crm: str) -> str:
    """The file name of the mapping shipped for `crm` in `syncworker/mappings/`."""
    return f"{crm}_zenvia.yaml"


def load_default(crm: str) -> Mapping:
    """The mapping shipped for `crm` (`SYNCWORKER_CRM`) and Zenvia, which fits the sandboxes'
    catalogues."""
    name = shipped_mapping_file(crm)
    resource = importlib.resources.files("syncworker") / "mappings" / name
    if not resource.is_file():
        raise MappingError(f"no mapping is shipped for crm {crm!r}: set SYNCWORKER_MAPPING_FILE")
    return parse(resource.read_text(encoding="utf-8"), source=f"mappings/{name}")


def parse(text: str, *, source: str = "<mapping>") -> Mapping:
    """Validate YAML text; `source` names it in error messages."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise MappingError(f"{source}: {where}: invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise MappingError(f"{source}: invalid YAML: {exc}") from None
    return from_data(data, source=source)


def from_data(data: object, *, source: str = "<mapping>") -> Mapping:
    """Validate already-parsed data (tests build mappings this way)."""
    if not isinstance(data, dict):
        raise MappingError(f"{source}: expected a mapping at the top level; got {yaml_kind(data)}")
    data = _without_retired_keys(data, source)
    try:
        mapping = Mapping.model_validate(data)
    except ValidationError as exc:
        raise _error(source, schema_problems(exc)) from None
    problems = list(consistency_problems(mapping))
    if problems:
        raise _error(source, problems)
    return mapping


# Keys an older file may hold that nothing reads any more: left out with a warning, so that
# file still loads (any other unknown key is refused).
_RETIRED_KEYS: dict[tuple[str, ...], str] = {
    ("display",): "nothing shows these attributes",
    ("comments", "crm_to_zenvia_public_from"): "a copy always keeps its comment's visibility",
}


def _without_retired_keys(data: dict[str, Any], source: str) -> dict[str, Any]:
    """A copy of `data` without the retired keys it holds, each named in a warning."""
    kept = copy.deepcopy(data)
    for path, why in _RETIRED_KEYS.items():
        *parents, key = path
        section: Any = kept
        for parent in parents:
            section = section.get(parent) if isinstance(section, dict) else None
        if isinstance(section, dict) and key in section:
            log.warning("%s: %s is no longer read (%s); delete it", source, ".".join(path), why)
            del section[key]
    return kept


def _error(source: str, problems: list[tuple[str, str]]) -> MappingError:
    return MappingError("\n".join(f"{source}: {path}: {what}" for path, what in problems))


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice (PyYAML would silently keep the last)."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, list | dict):
            continue  # construct_mapping reports the unhashable key with its line
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_unique_mapping,
)
