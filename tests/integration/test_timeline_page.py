"""The per-store timeline and the report page, through chalice.test.Client on in-process moto."""
from __future__ import annotations

import csv
import io
import re
import uuid

from chalicelib.aws import s3_client
from chalicelib.report_page import PageStore, ranked, render_page, strip_svg
from chalicelib.reporting import detail_report_key
from chalicelib.settings import Settings
from tests import fixtures
from tests.integration.test_api import _run_queued_parts, _trigger

settings = Settings.from_env()  # the stage environment of the root conftest


def _complete_report(client) -> tuple[str, dict[str, dict[str, str]]]:
    report_id = _trigger(client)
    _run_queued_parts(client)
    stored = s3_client().get_object(Bucket=settings.bucket, Key=detail_report_key(report_id))
    body = stored["Body"].read().decode()
    return report_id, {row["store_id"]: row for row in csv.DictReader(io.StringIO(body))}


def test_timeline_is_the_detail_row_to_the_second(client, ingested):
    report_id, detail = _complete_report(client)
    response = client.http.get(f"/stores/{fixtures.BIG_ID}/timeline?report_id={report_id}")
    assert response.status_code == 200, response.body
    timeline = response.json_body
    assert timeline["report_row"] == detail[fixtures.BIG_ID]
    assert timeline["now"] == "2023-01-25T18:00:00Z" and timeline["timezone"] == "America/New_York"
    assert timeline["business"] == [{"start": "2023-01-18T18:00:00Z", "end": "2023-01-25T18:00:00Z"}]  # 24x7
    assert len(timeline["polls"]) == 169 and all(p["evidence"] for p in timeline["polls"])
    segments = timeline["segments"]
    assert sum(s["seconds"] for s in segments) == 168 * 3600
    # inactive at 16:00, 17:00, 18:00, active at 15:00: down from the midpoint 15:30 to now
    assert segments[-1] == {"start": "2023-01-25T15:30:00Z", "end": "2023-01-25T18:00:00Z", "seconds": 9000,
                            "state": "down", "outage": True, "expected_up_seconds": 0.0,
                            # polls inside: 16:00, 17:00; the poll at now opens [now, now + 1)
                            "evidence": {"polls_inside": 2,
                                         "poll_before": {"at": "2023-01-25T15:00:00Z", "active": True},
                                         "poll_after": {"at": "2023-01-25T18:00:00Z", "active": False}}}
    outage_seconds = sum(s["seconds"] for s in segments if s["outage"])
    assert outage_seconds == round(float(detail[fixtures.BIG_ID]["outage_hours_last_week"]) * 3600)
    assert len(timeline["outages"]["week"]) == int(detail[fixtures.BIG_ID]["outages_last_week"])
    # as_of the report's now: the same answer
    again = client.http.get(f"/stores/{fixtures.BIG_ID}/timeline?as_of=2023-01-25T18:00:00Z").json_body
    assert again == timeline


def test_timeline_of_a_store_open_at_night(client, ingested):
    report_id, detail = _complete_report(client)
    timeline = client.http.get(f"/stores/{fixtures.NIGHT_OWL}/timeline?report_id={report_id}").json_body
    assert sum(s["seconds"] for s in timeline["segments"]) == 28 * 3600  # 22:00-02:00 Chicago, 7 nights
    assert timeline["report_row"] == detail[fixtures.NIGHT_OWL]


def test_timeline_errors(client, ingested):
    report_id, _ = _complete_report(client)
    cases = {
        f"/stores/nobody/timeline?report_id={report_id}": 404,
        f"/stores/{fixtures.BIG_ID}/timeline?report_id={uuid.uuid4()}": 404,
        f"/stores/{fixtures.BIG_ID}/timeline?report_id=not-a-uuid": 400,
        f"/stores/{fixtures.BIG_ID}/timeline": 400,
        f"/stores/{fixtures.BIG_ID}/timeline?report_id={report_id}&as_of=2023-01-25T18:00:00Z": 400,
        f"/stores/{fixtures.BIG_ID}/timeline?as_of=yesterday": 400,
        f"/stores/{'x' * 201}/timeline?as_of=2023-01-25T18:00:00Z": 400,
    }
    for path, status in cases.items():
        response = client.http.get(path)
        assert response.status_code == status, (path, response.body)
        assert response.json_body["status_code"] == status and response.json_body["error"]


def test_report_page_ranks_like_the_detail_report(client, ingested):
    report_id, detail = _complete_report(client)
    response = client.http.get(f"/reports/{report_id}", headers={"Accept": "text/html"})
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")
    page = response.body.decode()
    assert "<script" not in page and "http" not in page.split("<body>")[1].split('id="csv"')[0]
    shown = re.findall(r'<td class="id"><a [^>]*>([^<]*)</a></td><td class="down">([^<]*)</td>', page)
    expected = sorted(detail.values(), key=lambda r: (-float(r["downtime_last_week"]), r["store_id"]))
    assert shown == [(r["store_id"], r["downtime_last_week"]) for r in expected]
    assert page.count("<svg") == 3 and "detail.csv" in page and "report.csv" in page
    assert "page 1 of 1 (3 stores)" in page
    one = client.http.get(f"/reports/{report_id}?q=night").body.decode()
    assert one.count('<tr class="store">') == 1 and fixtures.NIGHT_OWL in one
    for path, status in {f"/reports/{report_id}?page=0": 400, f"/reports/{report_id}?page=x": 400,
                         f"/reports/{uuid.uuid4()}": 404, "/reports/nope": 400}.items():
        assert client.http.get(path).status_code == status, path


def test_report_page_of_a_running_report_is_409(client, ingested):
    report_id = _trigger(client)
    response = client.http.get(f"/reports/{report_id}")
    assert response.status_code == 409 and response.json_body["report_status"] == "Running"


def _store(store_id: str, down: str, strip: str = "+" * 168) -> PageStore:
    row = {"store_id": store_id, "downtime_last_week": down, "uptime_last_week": "1.00",
           "outages_last_week": "0",
           "longest_outage_hours_last_week": "0.00", "mttr_hours_last_week": ""}
    for window in ("hour", "day"):
        row |= {f"uptime_last_{window}": "1.00", f"downtime_last_{window}": "0.00"}
    return PageStore(store_id, row, strip)


def test_page_escapes_store_ids_and_paginates():
    stores = [_store(f"s{index:03d}", f"{index}.00") for index in range(120)]
    stores.append(_store('<img src=x onerror="alert(1)">&', "500.00", "-" * 100 + "." * 68))
    page = render_page("r", "now", stores, 1, "", "https://csv", "https://detail")
    assert "<img" not in page and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;" in page
    assert "%3Cimg" in page  # the timeline link quotes it too
    assert "page 1 of 3 (121 stores)" in page and page.count('<tr class="store">') == 50
    last = render_page("r", "now", stores, 3, "", "u", "v")
    assert last.count('<tr class="store">') == 21 and "s000" in last
    assert ranked(stores)[0].store_id.startswith("<img")
    assert strip_svg("--..") == ('<svg class="strip" width="12" height="14" viewBox="0 0 12 14" role="img" '
                                 'aria-label="week strip"><rect x="0" width="6" height="14" fill="#dc2626"/>'
                                 '<rect x="6" width="6" height="14" fill="#e5e7eb"/></svg>')
