"""Bad files are rejected whole with a reason, or line by line when rows are already in:
unusable files, encodings, NUL bytes, overlong rows, lone CR line endings; and the real files
go in whole (bad rows: test_ingestion.py)."""
from __future__ import annotations


import pytest

from chalicelib.core.parsing import parse_poll_timestamp
from storemon_app import local_ingest
from storemon_app.local_ingest import ingest_file
from tests.integration.ingest_helpers import (
    STATUS_HEADER,
    HOURS_HEADER,
    ZONES_HEADER,
    csv_bytes,
    drop,
    rejection_report,
    object_exists,
    data_tables_are_empty,
    all_hours,
    all_zones,
    polls_of,
    many_status_rows,
)


# -- bad files ----------------------------------------------------------------------------


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(1, 256)) * 3
WHOLE_FILE_REJECTIONS = [
    ("incoming/unknown.csv", b"id,state,when\n1,active,2023-01-25 10:00:00 UTC\n", "header 'id,state,when'"),
    ("incoming/status/garbage.bin", bytes(range(256)) * 8, "NUL byte"),
    ("incoming/status/empty.csv", b"", "empty"),
    ("incoming/timezones/blank.csv", b"\n\r\n   \n", "empty"),
    ("incoming/status/hours-really.csv", csv_bytes(HOURS_HEADER, [["s", "1", "09:00:00", "10:00:00"]]),
     "dropped as 'status' but its header is that of 'hours'"),
    ("incoming/hours/zones-really.csv", csv_bytes(ZONES_HEADER, [["s", "Asia/Beirut"]]),
     "dropped as 'hours' but its header is that of 'timezones'"),
    ("incoming/status/picture.png", PNG, "UTF-8"),
    ("incoming/status/utf-16.csv", "store_id,status,timestamp_utc\n".encode("utf-16"), "NUL byte"),
]


@pytest.mark.parametrize("key,data,reason", WHOLE_FILE_REJECTIONS,
                         ids=[k for k, _, _ in WHOLE_FILE_REJECTIONS])
def test_unusable_files_are_rejected_whole(aws, key, data, reason):
    record = drop(key, data)
    assert record.status == "Rejected"
    assert reason in record.error
    assert record.rows_accepted == 0 and record.error_report_key is None
    assert not object_exists(key + ".rejections.csv")
    assert data_tables_are_empty()


def test_a_nul_byte_after_written_batches_leaves_record_and_tables_consistent(aws):
    rows = many_status_rows(1500)
    data = csv_bytes(STATUS_HEADER, rows) + b"store-1,act\x00ive,2023-01-23 10:00:00 UTC\n" + \
        csv_bytes(STATUS_HEADER, many_status_rows(1600)[1500:]).split(b"\n", 1)[1]
    key = "incoming/status/nul-in-the-middle.csv"
    record = drop(key, data)
    # 1,000 polls are in the table before line 1,502 is read: the file cannot be "rejected whole"
    # any more, so the line is rejected like any other bad line and the rest goes in.
    assert (record.status, record.rows_accepted, record.rows_rejected) == ("Complete", 1600, 1)
    [(line, reason, _)] = rejection_report(key)[1:]
    assert line == "1502" and "NUL" in reason


def test_an_undecodable_first_line_rejects_the_file(aws):
    record = drop("incoming/status/latin-1.csv", "störe_id,status,timestamp_utc\n".encode("latin-1"))
    assert record.status == "Rejected" and "UTF-8" in record.error
    assert data_tables_are_empty()


def test_an_undecodable_row_is_rejected_and_counts_as_its_stores_bad_row(aws):
    drop("incoming/hours/before.csv", csv_bytes(HOURS_HEADER, [["cafe", "0", "08:00:00", "20:00:00"]]))
    data = (b"store_id,dayOfWeek,start_time_local,end_time_local\n"
            b"cafe,1,09:00:00,17:00:00\n"
            b"cafe,2,09:00:00,17:00:00 \xe9t\xe9\n"  # Latin-1 in a UTF-8 file
            b"other,3,09:00:00,17:00:00\n")
    key = "incoming/hours/latin-1 row.csv"
    record = drop(key, data)
    assert (record.rows_accepted, record.rows_rejected) == (1, 2)
    by_line = {int(line): reason for line, reason, _ in rejection_report(key)[1:]}
    assert "UTF-8" in by_line[3] and "line 3" in by_line[2]
    assert all_hours() == {"cafe": [[0, 8 * 3600, 20 * 3600]], "other": [[3, 9 * 3600, 17 * 3600]]}


# -- the real files ---------------------------------------------------------------------------------------

REAL_FILES = [
    ("new/menu_hours.csv", "hours", 35_457),
    ("new/timezones.csv", "timezones", 4_559),
    ("new/store_status.csv", "status", 1_000),
    ("old/menu_hours.csv", "hours", 86_198),
    ("old/timezones.csv", "timezones", 13_559),
]


@pytest.mark.parametrize("name,kind,rows", REAL_FILES, ids=[name for name, _, _ in REAL_FILES])
def test_real_files_are_ingested_whole(aws, real_data, name, kind, rows):
    outcome = ingest_file(real_data / name, expected_kind=kind, quiet=True)
    assert (outcome.status, outcome.kind) == ("Complete", kind), outcome.error
    assert (outcome.accepted, outcome.rejected) == (rows, 0), outcome.sample[:5]
    if kind == "hours":
        assert sum(len(v) for v in all_hours().values()) <= rows and all_hours()
    if kind == "timezones":
        assert len(all_zones()) == len({line.split(b",", 1)[0] for line in
                                       (real_data / name).read_bytes().splitlines()[1:] if line.strip()})


def test_a_row_too_long_for_the_csv_reader_is_rejected_and_the_rest_goes_in(aws):
    data = csv_bytes(STATUS_HEADER, [["s", "active", "2023-01-25 10:00:00 UTC"],
                                     ["s", "active", "2023-01-25 11:00:00 UTC" + " " * 200_000],
                                     ["s", "inactive", "2023-01-25 12:00:00 UTC"]])
    key = "incoming/status/long line.csv"
    record = drop(key, data)
    assert (record.status, record.rows_accepted, record.rows_rejected) == ("Complete", 2, 1)
    [(line, reason, row)] = rejection_report(key)[1:]
    assert line == "3" and "cannot be read as CSV" in reason and len(row) <= 500
    assert polls_of("s") == [(parse_poll_timestamp("2023-01-25 10:00:00 UTC"), True),
                             (parse_poll_timestamp("2023-01-25 12:00:00 UTC"), False)]


def test_a_file_with_lone_cr_line_endings_goes_in(aws, tmp_path):
    path = tmp_path / "timezones.csv"
    path.write_bytes(b"store_id,timezone_str\ra,America/Denver\rb,Asia/Beirut\r")
    outcome = local_ingest.ingest_file(path, quiet=True)
    assert (outcome.status, outcome.accepted, outcome.rejected) == ("Complete", 2, 0)
