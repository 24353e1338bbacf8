"""The whole flow over real HTTP against moto's server: ingest -> trigger -> poll -> presigned URL -> CSV."""
from __future__ import annotations

import csv
import io
import urllib.request

import pytest

from storemon_app.client import ApiError, ReportClient
from tests import fixtures



def test_report_over_http(stack, tmp_path):
    import app as app_module
    from storemon_app.event_pump import EventPump
    from storemon_app.local_ingest import ingest_file

    files = fixtures.write_dataset(tmp_path)
    for kind in ("timezones", "hours", "status"):
        assert ingest_file(files[kind], expected_kind=kind, quiet=True).status == "Complete"

    client = ReportClient(stack.api_url)
    with pytest.raises(ApiError) as unknown:
        client.status("0f6f3b5e-4a3b-4a5e-9b0f-3c1f2a7d9e11")
    assert unknown.value.status == 404
    with pytest.raises(ApiError) as malformed:
        client.status("nope")
    assert malformed.value.status == 400

    pump = EventPump(app_module, concurrency=2).start()
    try:
        report_id = client.trigger()
        view = client.wait(report_id, timeout=120, interval=0.2)
    finally:
        pump.stop()
    assert view["status"] == "Complete", view
    with urllib.request.urlopen(view["download_url"], timeout=30) as response:
        downloaded = response.read().decode("utf-8")
    rows = list(csv.reader(io.StringIO(downloaded)))
    assert rows[0] == ["store_id", "uptime_last_hour", "uptime_last_day", "uptime_last_week",
                       "downtime_last_hour", "downtime_last_day", "downtime_last_week"]
    by_store = {row[0]: row for row in rows[1:]}
    assert set(by_store) == {fixtures.BIG_ID, fixtures.NIGHT_OWL, fixtures.SILENT}
    assert by_store[fixtures.SILENT][1:] == ["0.00", "0.00", "0.00", "60.00", "24.00", "168.00"]
    # NIGHT_OWL is open 22:00-02:00 Chicago time: 4 h a day, 28 h a week, nothing in the last hour
    night = [float(v) for v in by_store[fixtures.NIGHT_OWL][1:]]
    assert night[1] + night[4] == pytest.approx(4.0) and night[2] + night[5] == pytest.approx(28.0)
    assert night[0] + night[3] == 0
    assert client.csv(report_id).decode("utf-8") == downloaded
