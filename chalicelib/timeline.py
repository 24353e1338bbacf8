"""One store's week as the report saw it: business spans, polls, up/down segments.

Computed by the same core, from the same shard read, with the same learned up
share as the report's part that holds the store, so its numbers are the
detail report's row to the second.
"""
from __future__ import annotations

import bisect
from datetime import datetime, timezone
from typing import Any, Optional

from chalicelib.core.parsing import DEFAULT_TIMEZONE
from chalicelib.core.outages import MIN_OUTAGE_SECONDS, down_spans, store_outages, up_down_segments
from chalicelib.core.report import CSV_HEADER, DETAIL_EXTRA_HEADER, detail_row
from chalicelib.core.schedule import clip_spans
from chalicelib.core.units import WEEK
from chalicelib.errors import NotFound
from chalicelib.reporting import ReportService
from chalicelib.storage.layout import shard_of


class UnknownStore(NotFound):
    """No store by that id in the data (neither polls in the read range nor on the roster)."""

    def __init__(self, store_id: str) -> None:
        super().__init__(f"no store with id {store_id[:80]!r} in the data of that week")


def iso(instant: int) -> str:
    return datetime.fromtimestamp(instant, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def store_timeline(service: ReportService, store_id: str, now: int) -> dict[str, Any]:
    """The week ending at ``now`` of ``store_id``; ``UnknownStore`` when there is no such store."""
    shard = shard_of(store_id, service.settings.poll_shards)
    schedules, zones = service.hours.read([shard]), service.zones.read([shard])
    evidence, rule, data = service.shard_evidence(shard, now, schedules, zones)
    store = evidence.get(store_id)
    if store is None:
        raise UnknownStore(store_id)
    estimate = rule(store.polls)
    row = detail_row(store_id, store, now, rule)
    business = clip_spans(store.business, now - WEEK, now)
    down = down_spans(estimate, business)
    evidence_at = [at for at, _ in store.polls]

    def poll_near(index: int) -> Optional[dict[str, Any]]:
        if 0 <= index < len(store.polls):
            at, active = store.polls[index]
            return {"at": iso(at), "active": bool(active)}
        return None

    segment_views = []
    for lo, hi, is_down in up_down_segments(business, down):
        state = "down" if is_down else "up"
        first, stop = bisect.bisect_left(evidence_at, lo), bisect.bisect_left(evidence_at, hi)
        segment_views.append({
            "start": iso(lo), "end": iso(hi), "seconds": hi - lo, "state": state,
            "outage": state == "down" and hi - lo >= MIN_OUTAGE_SECONDS,
            "expected_up_seconds": round(estimate.uptime_seconds(lo, hi), 2),
            "evidence": {"polls_inside": stop - first, "poll_before": poll_near(first - 1),
                         "poll_after": poll_near(stop)},
        })
    evidence_set = set(evidence_at)
    polls = [{"at": iso(at), "active": bool(active), "evidence": at in evidence_set}
             for at, active in data.polls_by_store.get(store_id, ()) if now - WEEK <= at <= now]
    outages = store_outages(estimate, store.business, now)
    return {
        "store_id": store_id,
        "now": iso(now),
        "week": {"start": iso(now - WEEK), "end": iso(now)},
        "timezone": zones.get(store_id, DEFAULT_TIMEZONE),
        "report_row": dict(zip(CSV_HEADER + DETAIL_EXTRA_HEADER, row, strict=False)),
        "business": [{"start": iso(lo), "end": iso(hi)} for lo, hi in business],
        "polls": polls,
        "segments": segment_views,
        "outages": {name: [{"start": iso(lo), "end": iso(hi), "seconds": hi - lo} for lo, hi in stats.outages]
                    for name, stats in outages.items()},
    }
