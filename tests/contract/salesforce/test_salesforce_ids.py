"""`to_id18`: the pure id normaliser the connector and the mapping check use."""

from __future__ import annotations

import pytest

from syncworker.connectors.salesforce_ids import to_id18

# A documented example pair: 15-character id and its 18-character case-safe form.
ID15 = "001A0000006Vm9r"
ID18 = "001A0000006Vm9rIAC"


def test_a_15_character_id_gets_its_case_safe_suffix() -> None:
    assert to_id18(ID15) == ID18


def test_an_18_character_id_is_returned_as_it_is_in_any_letter_case() -> None:
    assert to_id18(ID18) == ID18
    assert to_id18(ID18.lower()) == ID18
    assert to_id18(ID18.upper()) == ID18


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "15 or 18 letters and digits"),
        ("001A0000006Vm9", "15 or 18 letters and digits"),
        ("001A0000006Vm9r-AC", "15 or 18 letters and digits"),
        ("001A0000006Vm9rI", "15 or 18 letters and digits"),
        ("001A0000006Vm9r999", "15 or 18 letters and digits"),
        ("001A0000006Vm9r5AC", "last 3 characters do not fit"),  # '5' marks digits upper-case
        (None, "is a string"),
    ],
    ids=["empty", "14", "punctuation", "16", "bad-suffix-chars", "impossible-suffix", "none"],
)
def test_anything_else_is_a_value_error_saying_what_an_id_is(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        to_id18(value)  # type: ignore[arg-type]
