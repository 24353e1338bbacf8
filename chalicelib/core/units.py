"""Units of time in seconds, defined once (the core, storage and the simulator all count in
epoch seconds)."""
from __future__ import annotations

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR
WEEK = 7 * DAY
