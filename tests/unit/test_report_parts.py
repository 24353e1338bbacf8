"""A part's records and evidence sums: what the parts hand to ``assemble``."""
from __future__ import annotations

import pytest

from chalicelib.core.report import CSV_HEADER, DETAIL_EXTRA_HEADER
from chalicelib.reporting import EvidenceSummary, PartRecords


def _row(store_id: str, week_business: str = "40.00", week_inferred: str = "30.00") -> list[str]:
    extra = ["60.00", "60.00", "0.00", "2", "24.00", "20.00", "4.00", "0",
             week_business, "10.00", week_inferred, "150", "2023-01-25T18:00:00Z"]
    extra += [""] * (len(DETAIL_EXTRA_HEADER) - len(extra))
    return [store_id, *["1.00"] * (len(CSV_HEADER) - 1), *extra, "0123"]


def test_records_read_back_whatever_the_chunking():
    rows = [_row("a"), _row("=1+1"), _row("é")]
    records = PartRecords()
    data = b"".join(records.record(list(row)) for row in rows)
    whole = list(PartRecords.read([data]))
    assert [key for key, *_ in whole] == [b"a", b"=1+1", "é".encode()]
    assert whole[1][1].startswith(b"'=1+1,1.00,") and whole[1][1].endswith(b"\n")  # inert in the CSVs
    assert whole[1][2].startswith(whole[1][1][:-1] + b",60.00,")
    assert whole[1][3] == b"=1+1,0123\n"  # the strips keep the raw id, as the page reads it
    for size in (1, 7, 100):
        assert list(PartRecords.read(data[i:i + size] for i in range(0, len(data), size))) == whole
    with pytest.raises(ValueError):
        list(PartRecords.read([data[:-1]]))


def test_evidence_summary_is_exact_and_the_same_summed_in_parts():
    extras = [_row(str(i), week_inferred=f"{i % 50}.{i % 100:02d}")[len(CSV_HEADER):-1] for i in range(300)]
    whole = EvidenceSummary()
    for extra in extras:
        whole.add(extra)
    parts = [EvidenceSummary() for _ in range(7)]
    for index, extra in enumerate(extras):
        parts[index % 7].add(extra)
    combined = EvidenceSummary()
    for part in parts:
        combined.combine(EvidenceSummary.from_json(part.to_json()))
    assert combined.as_dict() == whole.as_dict()
    assert whole.business == [300 * 6000, 300 * 2400, 300 * 4000]
    assert whole.as_dict()["stores_without_polls"] == {"hour": 0, "day": 300, "week": 0}
    # "more than half inferred": 20.00 of 40.00 is not, 20.01 is
    assert whole.as_dict()["stores_mostly_inferred_last_week"] == sum(
        1 for i in range(300) if (i % 50) * 100 + i % 100 > 2000)
