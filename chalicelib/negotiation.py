"""Which of JSON and CSV a ``get_report`` caller asked for, by RFC 9110 ``Accept`` q-values.

Why: a substring test took ``Accept: text/csv;q=0.5, application/json`` (JSON preferred) and
even ``text/csv;q=0`` (CSV refused) as asking for CSV."""
from __future__ import annotations


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return min(1.0, max(0.0, float(value.strip())))
            except ValueError:
                return 0.0
    return 1.0


def media_qualities(accept: str) -> dict[str, float]:
    """``Accept`` as {media range (lower case): its highest q}."""
    qualities: dict[str, float] = {}
    for item in accept.split(","):
        media, *params = item.split(";")
        media = media.strip().lower()
        if media:
            qualities[media] = max(qualities.get(media, 0.0), _quality(params))
    return qualities


def prefers_csv(accept: str) -> bool:
    """CSV when ``text/csv`` is named with q > 0 and at least the q of ``application/json``
    (a tie keeps CSV: naming ``text/csv`` at all is the stronger signal); wildcards alone
    keep the JSON default."""
    qualities = media_qualities(accept)
    csv = qualities.get("text/csv", 0.0)
    return csv > 0.0 and csv >= qualities.get("application/json", 0.0)
