"""Numbers an owner can trust, over chalice's test client: one stray row cannot move "now", as-of
reports, and the evidence behind every number (the stray guard alone: tests/unit/test_now_and_evidence.py)."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from chalice.test import Client

import app as app_module
from chalicelib.core.parsing import parse_poll_timestamp
from chalicelib.settings import Settings
from chalicelib.storage.jobs import DatasetStateRepository
from storemon_app import local_ingest
from storemon_app.local_ingest import ingest_file
from tests import fixtures
from tests.integration.test_api import _run_queued_parts

settings = Settings.from_env()  # the stage environment of the root conftest

H = 3600
DAY = 24 * H


# -- end to end: ingestion holds a stray back, and as_of reports over chalice's test client ----------

@pytest.fixture
def client(aws, tmp_path, monkeypatch):
    monkeypatch.setattr(local_ingest, "REJECTIONS_DIR", tmp_path / "rejections")
    files = fixtures.write_dataset(tmp_path)
    for kind in ("timezones", "hours", "status"):
        assert ingest_file(files[kind], expected_kind=kind, quiet=True).status == "Complete"
    app_module.dependencies()  # settings on first use, before the test client overlays the stage's names
    with Client(app_module.app, stage_name="dev") as chalice_client:
        yield chalice_client


def test_a_stray_row_is_rejected_and_now_stays(client, tmp_path: Path):
    now = DatasetStateRepository().latest_poll_at()
    stray = fixtures.write_csv(tmp_path / "stray.csv", ["store_id", "status", "timestamp_utc"],
                               [[fixtures.BIG_ID, "active", "2025-06-01 00:00:00.000000 UTC"]])
    outcome = ingest_file(stray, expected_kind="status", quiet=True)
    assert (outcome.accepted, outcome.rejected) == (0, 1)
    assert outcome.sample[0].line == 2 and "held back as a stray" in outcome.sample[0].reason
    assert "2025-06-01" in outcome.sample[0].raw
    assert DatasetStateRepository().latest_poll_at() == now
    rows = list(csv.reader(io.StringIO(outcome.rejections_path.read_text())))
    assert rows[1][0] == "2" and "stray" in rows[1][1]


def test_an_operator_can_accept_a_genuine_drop_far_beyond_the_data(client, tmp_path: Path):
    """Found by black-box testing: a small fleet's 5 polls after a 36-hour pause were held back,
    with no way to take them; ``ingest --accept-strays`` takes them and moves now."""
    rows = [[f"store-{k}", "active", f"2023-01-27 06:0{k}:00.000000 UTC"] for k in range(5)]
    drop = fixtures.write_csv(tmp_path / "after-pause.csv", ["store_id", "status", "timestamp_utc"], rows)
    held = ingest_file(drop, expected_kind="status", quiet=True)
    assert (held.accepted, held.rejected) == (0, 5) and "--accept-strays" in held.sample[0].reason
    taken = ingest_file(drop, expected_kind="status", quiet=True, accept_strays=True)
    assert (taken.accepted, taken.rejected) == (5, 0)
    assert DatasetStateRepository().latest_poll_at() == parse_poll_timestamp("2023-01-27 06:04:00 UTC")


def _report(client: Client, report_id: str) -> tuple[dict, dict[str, list[str]]]:
    _run_queued_parts(client)
    view = client.http.get(f"/get_report?report_id={report_id}").json_body
    assert view["status"] == "Complete", view
    body = client.http.get(f"/get_report?report_id={report_id}&format=csv").body.decode()
    return view, {row[0]: row for row in list(csv.reader(io.StringIO(body)))[1:]}


def test_as_of_reports_over_http(client):
    latest_id = client.http.post("/trigger_report").json_body["report_id"]
    latest_view, latest = _report(client, latest_id)
    assert latest_view["data_now"] == "2023-01-25T18:00:00+00:00"
    # BIG_ID was inactive for the 3 polls before now; 4 hours earlier it was up all along
    by_query = client.http.post("/trigger_report?as_of=2023-01-25T14:00:00Z")
    assert by_query.status_code == 202
    view, earlier = _report(client, by_query.json_body["report_id"])
    assert view["data_now"] == "2023-01-25T14:00:00+00:00"
    assert latest[fixtures.BIG_ID][1] == "0.00" and earlier[fixtures.BIG_ID][1] == "60.00"
    by_body = client.http.post("/trigger_report", headers={"Content-Type": "application/json"},
                               body='{"as_of": "2023-01-25 08:00:00-06:00"}')  # the same instant, Chicago
    assert by_body.status_code == 202
    assert _report(client, by_body.json_body["report_id"])[1] == earlier


@pytest.mark.parametrize("as_of, reason", [
    ("2023-01-25T18:00:01Z", "after the latest poll (2023-01-25T18:00:00Z)"),
    ("2099-01-01T00:00:00Z", "after the latest poll"),
    ("1970-01-01T00:00:00Z", "before the polls kept: polls are kept 30 days, back to 2022-12-26T18:00:00Z"),
])
def test_an_as_of_no_report_could_back_is_a_400(client, as_of, reason):
    """Found by black-box testing: both came back Complete, every store on the fallback share."""
    response = client.http.post(f"/trigger_report?as_of={as_of}")
    assert response.status_code == 400 and reason in response.json_body["error"]
    assert client.http.post("/trigger_report?as_of=2023-01-25T18:00:00Z").status_code == 202


@pytest.mark.parametrize("request_kwargs", [
    {"path": "/trigger_report?as_of=yesterday"},
    {"path": "/trigger_report?as_of=2023-02-30T00:00:00Z"},
    {"path": "/trigger_report", "body": '{"as_of": 1674669600}'},
    {"path": "/trigger_report", "body": "{not json"},
    {"path": "/trigger_report", "body": "[]"},  # black-box testing: these three were ignored (202)
    {"path": "/trigger_report", "body": '"x"'},
    {"path": "/trigger_report", "body": '{"asof": "2023-01-25T14:00:00Z"}'},
])
def test_a_bad_as_of_is_a_400_with_a_reason(client, request_kwargs):
    path = request_kwargs["path"]
    kwargs = {"headers": {"Content-Type": "application/json"}, "body": request_kwargs["body"]} \
        if "body" in request_kwargs else {}
    response = client.http.post(path, **kwargs)
    assert response.status_code == 400
    error = response.json_body["error"]
    assert "as_of" in error or "JSON" in error, error
    assert "unknown field(s) 'asof'" in error or "asof" not in request_kwargs.get("body", "")


def test_detail_report_and_fleet_summary(client):
    from chalicelib.aws import s3_client
    from chalicelib.core.report import CSV_HEADER, DETAIL_EXTRA_HEADER
    from chalicelib.reporting import detail_report_key

    report_id = client.http.post("/trigger_report").json_body["report_id"]
    view, standard = _report(client, report_id)
    assert "detail.csv" in view["detail_url"] and view["detail_url"] != view["download_url"]
    stored = s3_client().get_object(Bucket=settings.bucket, Key=detail_report_key(report_id))
    rows = list(csv.reader(io.StringIO(stored["Body"].read().decode())))
    assert tuple(rows[0]) == CSV_HEADER + DETAIL_EXTRA_HEADER
    detail = {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    # the standard columns first
    assert {store: row[:7] for store, row in ((r[0], r) for r in rows[1:])} == standard
    big, silent = detail[fixtures.BIG_ID], detail[fixtures.SILENT]
    assert big["backed_hours_last_week"] == "168.00" and big["inferred_hours_last_week"] == "0.00"
    # polls at 17:00 and 18:00: the window holds both its ends
    assert big["polls_last_hour"] == "2" and big["last_poll_utc"] == "2023-01-25T18:00:00Z"
    assert silent["polls_last_week"] == "0" and silent["last_poll_utc"] == ""
    assert silent["inferred_hours_last_week"] == "168.00"
    evidence = view["evidence"]
    assert evidence["stores_without_polls"]["week"] == 1  # the silent store
    assert evidence["stores_mostly_inferred_last_week"] == 1
    business = 168 + 168 + 28  # BIG_ID and SILENT 24x7, NIGHT_OWL 4 h a day
    inferred = sum(float(row["inferred_hours_last_week"]) for row in detail.values())
    assert evidence["inferred_share"]["week"] == round(inferred / business, 4)
