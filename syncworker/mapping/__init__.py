"""The field mapping between CRM records and Zenvia tickets: a YAML file → a validated model.

The file says, per canonical field, which native attribute holds it on each side, which way it
flows, how a two-sided change is settled and how values translate (maps may be lossy: several
CRM statuses onto one Zenvia status). The engine only asks `Mapping` pure questions:
`project`, `translate`, `agree`, `in_scope`. A bad file fails at load time with a message that
names the file, the key path and what was expected, never halfway through a sync.

`values`: what a value in the file is; `sections`: the file's sections and each field's own
rules; `model`: the whole file and its questions; `loading`: text → model or `MappingError`,
with `messages` (schema errors in the file's words) and `checks` (what the schema cannot say).
"""

from syncworker.mapping.loading import (
    MappingError,
    from_data,
    load,
    load_default,
    shipped_mapping_file,
)
from syncworker.mapping.model import ZENVIA_JUSTIFICATION, Mapping
from syncworker.mapping.sections import MatchRule
from syncworker.mapping.values import Policy, Scalar, record_stamp

__all__ = [
    "ZENVIA_JUSTIFICATION",
    "Mapping",
    "MappingError",
    "MatchRule",
    "Policy",
    "Scalar",
    "from_data",
    "load",
    "load_default",
    "record_stamp",
    "shipped_mapping_file",
]
