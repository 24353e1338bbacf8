"""Owner keys over real HTTP (chalice local on moto's server): two owners, each sees only
its stores, and the report's page_url opens in a plain HTTP GET with no key."""
from __future__ import annotations

import csv
import io
import re
import urllib.request

import pytest

from storemon_app.client import ApiError, ReportClient
from tests import fixtures


def test_owner_keys_over_http(stack, tmp_path):
    import app as app_module
    from chalicelib.storage.owner_keys import OwnerKeyRepository
    from storemon_app.event_pump import EventPump
    from storemon_app.local_ingest import ingest_file

    files = fixtures.write_dataset(tmp_path)
    for kind in ("timezones", "hours", "status"):
        assert ingest_file(files[kind], expected_kind=kind, quiet=True).status == "Complete"
    keys = OwnerKeyRepository()
    stores = {"smk-http-owner-a-000000000": {fixtures.BIG_ID},
              "smk-http-owner-b-000000000": {fixtures.NIGHT_OWL, fixtures.SILENT}}
    for secret, owned in stores.items():
        keys.add(secret, f"owner of {sorted(owned)[0]}", owned)
    a, b = (ReportClient(stack.api_url, api_key=secret) for secret in stores)

    pump = EventPump(app_module, concurrency=2).start()
    try:
        ids = {a.trigger(): a, b.trigger(): b, b.trigger(store_ids=[fixtures.SILENT]): b}
        views = {report_id: client.wait(report_id, timeout=120, interval=0.2)
                 for report_id, client in ids.items()}
        with pytest.raises(ApiError) as outside:
            a.trigger(store_ids=[fixtures.NIGHT_OWL])
    finally:
        pump.stop()
    assert outside.value.status == 400 and fixtures.NIGHT_OWL in outside.value.body["error"]
    expected = [{fixtures.BIG_ID}, {fixtures.NIGHT_OWL, fixtures.SILENT}, {fixtures.SILENT}]
    for (report_id, client), want in zip(ids.items(), expected, strict=True):
        assert views[report_id]["status"] == "Complete", views[report_id]
        rows = list(csv.reader(io.StringIO(client.csv(report_id).decode())))[1:]
        assert {row[0] for row in rows} == want
        other = b if client is a else a
        with pytest.raises(ApiError) as hidden:
            other.status(report_id)
        assert hidden.value.status == 404
        page_url = views[report_id]["page_url"]
        assert page_url.startswith(stack.api_url + "/shared/reports/")
        with urllib.request.urlopen(page_url, timeout=30) as response:  # no x-api-key
            page = response.read().decode()
        assert set(re.findall(r'<td class="id"><a [^>]*>([^<]*)</a>', page)) == want
