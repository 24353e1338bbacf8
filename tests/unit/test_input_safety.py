"""Input that could break a report or a spreadsheet is refused or made inert: store ids outside
the allow-list, and cells a spreadsheet would run as formulas (issue 10; the pipeline around
them: tests/integration/test_pipeline_safety.py)."""
from __future__ import annotations

import re

import pytest

from chalicelib.core import parsing
from chalicelib.core.parsing import InvalidField


@pytest.mark.parametrize("raw, reason", [
    ("tab\tstore", "non-printable character (TAB)"),
    ("bell\x07store", "non-printable character (U+0007)"),
    ("line\u2028sep", "non-printable character (U+2028)"),
    ("nb\u00a0space", "non-printable character (U+00A0)"),
    ("pipe|store", "separator '|'"),
    ("comma,store", "separator ','"),
    ("x" * (parsing.STORE_ID_MAX_LENGTH + 1), "more than 128"),
])
def test_store_ids_outside_the_allow_list_are_refused_with_a_reason(raw, reason):
    with pytest.raises(InvalidField, match=re.escape(reason)):
        parsing.parse_store_id(raw)


@pytest.mark.parametrize("raw", ["8419537941919820732", "night-owl", "a b", "=1+1", "café-7",
                                 "x" * parsing.STORE_ID_MAX_LENGTH, "0f6f3b5e-4a3b-4a5e-9b0f-3c1f2a7d9e11"])
def test_ordinary_store_ids_are_accepted_unchanged(raw):
    assert parsing.parse_store_id(f" {raw} ") == raw


def test_what_counts_as_a_formula():
    from chalicelib.core.spreadsheet import inert

    assert [inert(v) for v in ["=1", "+1", "-1", "@a", "\t=1", "\r1", "  =1", "a=1", "1", ""]] == \
        ["'=1", "'+1", "'-1", "'@a", "'\t=1", "'\r1", "'  =1", "a=1", "1", ""]
