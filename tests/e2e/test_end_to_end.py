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

    with pytest.raises(ApiError) as bad_as_of:
        client.trigger(as_of="last tuesday")
    assert bad_as_of.value.status == 400 and "as_of" in bad_as_of.value.body["error"]

    pump = EventPump(app_module, concurrency=2).start()
    try:
        report_id = client.trigger()
        earlier_id = client.trigger(as_of="2023-01-25T14:00:00Z")
        view = client.wait(report_id, timeout=120, interval=0.2)
        earlier = client.wait(earlier_id, timeout=120, interval=0.2)
        # the CLI's report command: as of an instant, for some stores; and a clear refusal
        from storemon_app import cli

        out = tmp_path / "big.csv"
        assert cli.main(["report", "--api", stack.api_url, "--out", str(out),
                         "--as-of", "2023-01-25T14:00:00Z", "--store-ids", fixtures.BIG_ID]) == 0
        rows = list(csv.reader(io.StringIO(out.read_text())))
        assert [row[0] for row in rows[1:]] == [fixtures.BIG_ID] and rows[1][1] == "60.00"
        assert cli.main(["report", "--api", stack.api_url, "--out", str(out),
                         "--as-of", "2099-01-01T00:00:00Z"]) == 1
    finally:
        pump.stop()
    assert earlier["status"] == "Complete" and earlier["data_now"] == "2023-01-25T14:00:00+00:00"
    assert view["status"] == "Complete", view
    with urllib.request.urlopen(view["download_url"], timeout=30) as response:
        downloaded = response.read().decode("utf-8")
    fixtures.check_report_rows(list(csv.reader(io.StringIO(downloaded))))
    assert client.csv(report_id).decode("utf-8") == downloaded
    # the detail report: the same rows, then the evidence behind them
    with urllib.request.urlopen(view["detail_url"], timeout=30) as response:
        detail = list(csv.reader(io.StringIO(response.read().decode("utf-8"))))
    assert [row[:7] for row in detail] == list(csv.reader(io.StringIO(downloaded)))
    assert "last_poll_utc" in detail[0] and detail[0][-1] == "mttr_hours_last_week"  # outages last
    assert view["evidence"]["stores_without_polls"]["week"] == 1
