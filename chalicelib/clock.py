"""The wall clock as an aware UTC datetime: the one place storage reads it for timestamps."""
from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
