"""A client of the report API over real HTTP, as a restaurant owner's tool would be."""
from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional


class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


@dataclass
class ReportClient:
    api_url: str
    timeout: float = 30.0
    #: Sent as ``x-api-key``; default ``STOREMON_API_KEY`` (a deployed stage's key, or the local one).
    api_key: Optional[str] = field(default_factory=lambda: os.environ.get("STOREMON_API_KEY"))

    def _request(self, method: str, path: str,
                 headers: Optional[dict[str, str]] = None) -> tuple[int, bytes, dict]:
        headers = dict(headers or {})
        if self.api_key:
            headers["x-api-key"] = self.api_key
        request = urllib.request.Request(self.api_url.rstrip("/") + path, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, error.read(), dict(error.headers)

    def _json(self, method: str, path: str) -> tuple[int, Any]:
        status, body, _ = self._request(method, path)
        try:
            return status, json.loads(body or b"null")
        except json.JSONDecodeError:
            return status, body.decode("utf-8", "replace")

    def trigger(self, as_of: Optional[str] = None, store_ids: Optional[list[str]] = None) -> str:
        """Start a report; ``as_of`` (ISO 8601) computes it as of that instant, ``store_ids``
        limits it to those stores (within what the key may see)."""
        query = {**({"as_of": as_of} if as_of else {}),
                 **({"store_ids": ",".join(store_ids)} if store_ids else {})}
        path = "/trigger_report" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        status, body = self._json("POST", path)
        if status != 202:
            raise ApiError(status, body)
        return body["report_id"]

    def status(self, report_id: str) -> dict[str, Any]:
        status, body = self._json("GET", f"/get_report?report_id={report_id}")
        if status != 200:
            raise ApiError(status, body)
        return body

    def csv(self, report_id: str) -> bytes:
        status, body, _ = self._request("GET", f"/get_report?report_id={report_id}", {"Accept": "text/csv"})
        if status != 200:
            raise ApiError(status, body.decode("utf-8", "replace"))
        return body

    def page(self, report_id: str, query: str = "") -> bytes:
        """The report page's HTML (``GET /reports/{id}``; ``query`` e.g. ``?page=2``)."""
        status, body, _ = self._request("GET", f"/reports/{report_id}{query}", {"Accept": "text/html"})
        if status != 200:
            raise ApiError(status, body.decode("utf-8", "replace"))
        return body

    def wait(self, report_id: str, timeout: float = 600, interval: float = 0.5,
             on_progress: Optional[Callable[[dict[str, Any], float], None]] = None) -> dict[str, Any]:
        """Poll ``get_report`` until the job is no longer Running."""
        started = time.monotonic()
        while True:
            view = self.status(report_id)
            elapsed = time.monotonic() - started
            if on_progress:
                on_progress(view, elapsed)
            if view["status"] != "Running":
                return view
            if elapsed > timeout:
                raise TimeoutError(f"report {report_id} still Running after {timeout:.0f} s")
            time.sleep(interval)


def download(url: str, destination: Path, timeout: float = 60) -> int:
    """Fetch a presigned URL to ``destination``; returns bytes written."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(url, timeout=timeout) as response:
        data = response.read()
    destination.write_bytes(data)
    return len(data)
