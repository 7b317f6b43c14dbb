"""Salesforce record ids: the 15-character (case-sensitive) and 18-character (case-safe) forms
of one record, normalised to the 18 characters the API returns. Pure; no I/O.

The last three characters of an 18-character id encode which of the first 15 are upper-case
(one character per block of five), so an 18-character id names its record in any letter case.
"""

from __future__ import annotations

import re

__all__ = ["to_id18"]

_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID15 = re.compile(r"[a-zA-Z0-9]{15}")
_ID18 = re.compile(r"[a-zA-Z0-9]{15}[a-zA-Z0-5]{3}")


def _checksum(id15: str) -> str:
    suffix = ""
    for start in (0, 5, 10):
        block = id15[start : start + 5]
        suffix += _SUFFIX[sum(1 << i for i, char in enumerate(block) if "A" <= char <= "Z")]
    return suffix


def _restore_case(id18: str) -> str | None:
    """The id with the first 15 characters in the case its suffix records, or None when the
    suffix marks a digit as upper-case (no id has that suffix)."""
    chars = list(id18[:15])
    for block, code in enumerate(id18[15:].upper()):
        bits = _SUFFIX.index(code)
        for offset in range(5):
            i = block * 5 + offset
            upper = bool(bits >> offset & 1)
            if chars[i].isdigit():
                if upper:
                    return None
                continue
            chars[i] = chars[i].upper() if upper else chars[i].lower()
    id15 = "".join(chars)
    return id15 + _checksum(id15)


def to_id18(value: str) -> str:
    """The 18-character form of a 15- or 18-character Salesforce id.

    An 18-character id is accepted in any letter case (its suffix restores the case);
    anything else raises ValueError saying what was expected.
    """
    if not isinstance(value, str):
        raise ValueError(f"a Salesforce id is a string, got {type(value).__name__}")
    if _ID15.fullmatch(value):
        return value + _checksum(value)
    if _ID18.fullmatch(value):
        restored = _restore_case(value)
        if restored is not None:
            return restored
        raise ValueError(f"not a Salesforce id (its last 3 characters do not fit): {value!r}")
    raise ValueError(f"not a Salesforce id (15 or 18 letters and digits): {value!r}")
