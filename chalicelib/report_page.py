"""The report page: one self-contained HTML page per Complete report.

No script and no outside resource (it works offline): the ranking is a table,
each store's week an inline SVG drawn here. The numbers are the detail
report's fields as written, so the page and the CSV agree to the character.
A page holds ``PAGE_SIZE`` stores whatever the fleet's size; the server reads
the detail report and the strips once per page view.
"""
from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Optional
from urllib.parse import quote, urlencode

from chalicelib.core.outages import STRIP_CLOSED, STRIP_DOWN, STRIP_PARTLY, STRIP_UP
from chalicelib.core.spreadsheet import inert

if TYPE_CHECKING:
    from chalicelib.reporting import ReportService
    from chalicelib.storage.models import ReportJob

PAGE_SIZE = 50
_COLOURS = {STRIP_CLOSED: "#e5e7eb", STRIP_UP: "#16a34a", STRIP_DOWN: "#dc2626", STRIP_PARTLY: "#f59e0b"}
_CELL = 3  # px per hour


@dataclass(frozen=True)
class PageStore:
    store_id: str  # raw, as in the data (escaped when written)
    row: dict[str, str]  # the detail report's fields by column
    strip: str


def read_page_stores(detail_csv: str, strips_csv: str) -> list[PageStore]:
    """The detail report's rows with their strips (same order; ids checked to agree)."""
    rows = csv.DictReader(io.StringIO(detail_csv))
    strips = csv.reader(io.StringIO(strips_csv))
    stores = []
    for row, (raw_id, strip) in zip(rows, strips):  # noqa: B905 - a length mismatch is caught below
        if inert(raw_id) != row["store_id"]:
            raise ValueError(f"strips and detail report disagree at store {row['store_id']!r}")
        stores.append(PageStore(raw_id, row, strip))
    return stores


def ranked(stores: list[PageStore]) -> list[PageStore]:
    """Most week downtime first; ties by store id (the CSV's order)."""
    return sorted(stores, key=lambda s: (-_hundredths(s.row["downtime_last_week"]), s.store_id))


def _hundredths(text: str) -> int:
    whole, _, fraction = text.partition(".")
    return int(whole) * 100 + int((fraction + "00")[:2])


def fleet_uptime(stores: list[PageStore], window: str) -> Optional[float]:
    """Business-time uptime of the whole fleet in a window (share), from the CSV's columns."""
    up = sum(_hundredths(s.row[f"uptime_last_{window}"]) for s in stores)
    down = sum(_hundredths(s.row[f"downtime_last_{window}"]) for s in stores)
    return up / (up + down) if up + down else None


def strip_svg(strip: str) -> str:
    """The week as one rect per run of equal hours (oldest left)."""
    rects, start = [], 0
    for index in range(1, len(strip) + 1):
        if index == len(strip) or strip[index] != strip[start]:
            rects.append(f'<rect x="{start * _CELL}" width="{(index - start) * _CELL}" height="14" '
                         f'fill="{_COLOURS.get(strip[start], "#9ca3af")}"/>')
            start = index
    width = len(strip) * _CELL
    return (f'<svg class="strip" width="{width}" height="14" viewBox="0 0 {width} 14" role="img" '
            f'aria-label="week strip">{"".join(rects)}</svg>')


_STYLE = ("body{font:14px system-ui,sans-serif;margin:1.5em;color:#111}table{border-collapse:collapse}\n"
          "td,th{padding:2px 8px;border-bottom:1px solid #eee;text-align:right}"
          "td.id,th.id{text-align:left;font-family:monospace}\n"
          ".fleet span{display:inline-block;margin-right:2em}"
          ".legend i{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}\n"
          "nav a{margin:0 .5em}")


def render_page(report_id: str, now: str, stores: list[PageStore], page: int, query: str,
                csv_url: str, detail_url: str, token: Optional[str] = None) -> str:
    """The HTML of one page of the ranking (``page`` from 1; ``query``: store id contains).
    With the report's page ``token``, every link the page makes carries it (no key in a browser)."""
    e = html.escape
    fleet = " ".join(
        f"<span>last {window}: <b>{'-' if share is None else f'{share:.2%}'}</b></span>"
        for window in ("hour", "day", "week") for share in [fleet_uptime(stores, window)])
    matching = [s for s in ranked(stores) if query in s.store_id] if query else ranked(stores)
    pages = max(1, -(-len(matching) // PAGE_SIZE))
    page = min(max(1, page), pages)
    first = (page - 1) * PAGE_SIZE
    rows = []
    for rank, store in enumerate(matching[first:first + PAGE_SIZE], start=first + 1):
        r = store.row
        timeline = f"../stores/{quote(store.store_id, safe='')}/timeline?report_id={quote(report_id)}"
        timeline += f"&token={quote(token)}" if token else ""
        rows.append(
            f'<tr class="store"><td>{rank}</td>'
            f'<td class="id"><a href="{e(timeline)}">{e(store.store_id)}</a></td>'
            f'<td class="down">{e(r["downtime_last_week"])}</td><td>{e(r["uptime_last_week"])}</td>'
            f'<td>{e(r["outages_last_week"])}</td><td>{e(r["longest_outage_hours_last_week"])}</td>'
            f'<td>{e(r["mttr_hours_last_week"]) or "-"}</td><td>{strip_svg(store.strip)}</td></tr>')

    def link(target: int, label: str) -> str:
        params = {"page": target, **({"q": query} if query else {}), **({"token": token} if token else {})}
        return f'<a href="?{e(urlencode(params))}">{label}</a>'

    nav = " ".join(filter(None, [link(page - 1, "&larr; previous") if page > 1 else "",
                                 f"page {page} of {pages} ({len(matching):,} stores)",
                                 link(page + 1, "next &rarr;") if page < pages else ""]))
    hidden = f'<input type="hidden" name="token" value="{e(token)}">' if token else ""
    labels = ((STRIP_UP, "up"), (STRIP_PARTLY, "partly in outage"), (STRIP_DOWN, "in outage"),
              (STRIP_CLOSED, "closed"))
    legend = "".join(f'<i style="background:{_COLOURS[c]}"></i>{label}' for c, label in labels)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>storemon report {e(report_id)}</title>
<style>{_STYLE}</style></head><body>
<h1>Store uptime, week ending {e(now)}</h1>
<p>Report <code>{e(report_id)}</code>. Downloads: <a id="csv" href="{e(csv_url)}">report CSV</a>,
<a id="detail" href="{e(detail_url)}">detail CSV</a> (outages: down below one half chance of up, at least 60 s).</p>
<p class="fleet">Fleet business-time uptime: {fleet}</p>
<form method="get"><input type="search" name="q" value="{e(query)}" placeholder="store id contains">{hidden}
<button type="submit">Search</button></form>
<p class="legend">Each strip is the week in hours (UTC, oldest left):{legend}</p>
<nav>{nav}</nav>
<table id="ranking"><thead><tr><th>#</th><th class="id">store</th><th>downtime h (week)</th><th>uptime h</th>
<th>outages</th><th>longest h</th><th>MTTR h</th><th>week</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
<nav>{nav}</nav>
</body></html>
"""  # noqa: E501 - the page's lines, as served


def report_page_html(service: "ReportService", job: "ReportJob", page: int, query: str,
                     token: Optional[str] = None) -> str:
    """Read the Complete ``job``'s detail report and strips and render one page;
    ``ReportGone`` when the bucket no longer has them."""
    detail, strips = service.page_sources(job)
    now = datetime.fromtimestamp(int(job.data_now), timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return render_page(job.report_id, now, read_page_stores(detail, strips), page, query,
                       service.download_url(job), service.download_url(job, detail=True), token)
