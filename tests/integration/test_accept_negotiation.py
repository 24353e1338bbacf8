"""``get_report`` honours the q-values of ``Accept`` (RFC 9110), and ``format=`` beats it.

Found by black-box testing: ``Accept: text/csv;q=0.5, application/json`` (JSON preferred)
answered CSV, since the header was searched for the substring ``text/csv``."""
from __future__ import annotations

import pytest

from chalicelib.negotiation import media_qualities, prefers_csv
from tests.integration.test_api import _run_queued_parts, _trigger


@pytest.mark.parametrize("accept, csv", [
    ("text/csv", True),
    ("TEXT/CSV; charset=utf-8", True),
    ("application/json, text/csv", True),          # a tie: naming text/csv wins
    ("text/csv, */*;q=0.1", True),
    ("application/json;q=0.4, text/csv;q=0.5", True),
    ("text/csv;q=0.5, application/json", False),
    ("text/csv;q=0", False),
    ("text/csv;q=nonsense", False),
    ("*/*", False),
    ("text/*", False),
    ("", False),
])
def test_prefers_csv(accept: str, csv: bool) -> None:
    assert prefers_csv(accept) is csv


def test_media_qualities_keep_the_highest_q() -> None:
    assert media_qualities("text/csv;q=0.2, text/csv;q=0.7,, application/json") == {
        "text/csv": 0.7, "application/json": 1.0}


def test_get_report_follows_the_preferred_type(client, ingested) -> None:  # type: ignore[no-untyped-def]
    report_id = _trigger(client)
    _run_queued_parts(client)
    url = f"/get_report?report_id={report_id}"

    def kind(path: str, accept: str) -> str:
        response = client.http.get(path, headers={"accept": accept} if accept else {})
        assert response.status_code == 200
        return "text/csv" if response.body.startswith(b"store_id,") else "application/json"

    assert kind(url, "text/csv") == "text/csv"
    assert kind(url, "text/csv;q=0.5, application/json") == "application/json"
    assert kind(url, "text/csv;q=0") == "application/json"
    assert kind(url + "&format=csv", "application/json") == "text/csv"
    assert kind(url + "&format=json", "text/csv") == "application/json"
