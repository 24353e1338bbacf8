"""Fields that a spreadsheet would run as a formula, made inert (OWASP "CSV Injection").

The CSVs we hand out (reports, rejection lists) are opened in spreadsheets. A field
starting with ``=``, ``+``, ``-``, ``@``, TAB or CR is taken as a formula there, and
spreadsheets strip leading spaces first (`` =2+2`` is a formula too). Such a field is
written with a leading single quote, which spreadsheets show as text and do not keep.
We neutralise on output, not reject on input: a store id is someone else's key, and
refusing ``-7`` would lose that store's polls; the stored data stays as it came.
"""
from __future__ import annotations

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def is_formula_like(field: str) -> bool:
    """Would a spreadsheet read ``field`` as a formula?"""
    return field.startswith(FORMULA_TRIGGERS) or field.lstrip(" ").startswith(FORMULA_TRIGGERS)


def inert(field: str) -> str:
    """``field`` as a spreadsheet shows it literally: unchanged unless formula-like."""
    return "'" + field if is_formula_like(field) else field
