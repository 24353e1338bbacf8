"""Parse the raw text of the three input feeds into domain values.

Pure functions: every one either returns a value or raises ``InvalidField``
with a reason a person can act on. The ingestion adapter turns those reasons
into per-line rejections; nothing here knows about files or AWS.
"""
from __future__ import annotations

import calendar
import csv
import re
from functools import lru_cache

import pytz

from chalicelib.core.units import DAY

#: Time zone used when a store has no time-zone row (the specification's rule).
DEFAULT_TIMEZONE = "America/Chicago"

SECONDS_PER_DAY = DAY

#: Ends at or after this local time mean "until midnight": the feeds write the
#: end of day as 23:59:00 or 23:59:59 because they cannot write 24:00.
END_OF_DAY_THRESHOLD = 23 * 3600 + 59 * 60


class InvalidField(ValueError):
    """A field of an input row cannot be understood; the message says why."""


def parse_poll_timestamp(text: str) -> int:
    """``YYYY-MM-DD HH:MM:SS[.ffffff] UTC`` -> whole epoch seconds (UTC).

    Sub-second digits (0-6 of them) are validated and then dropped: reports are
    exact to the second, and two copies of one poll must compare equal.
    Hand-rolled rather than ``strptime`` because ingestion calls it 1.8M times
    (22M at ten times the fleet): the poller's own form, six fraction digits, is
    read by ``_canonical_timestamp``; anything else, or anything doubtful, here.
    """
    if len(text) == 30:
        fast = _canonical_timestamp(text)
        if fast is not None:
            return fast
    value = text.strip()
    if value.endswith(" UTC"):
        value = value[:-4]
    elif value.endswith("UTC"):
        value = value[:-3]
    else:
        raise InvalidField(f"timestamp {text!r} does not end in ' UTC'")
    value = value.rstrip()
    if "." in value:
        value, fraction = value.split(".", 1)
        if not fraction.isdigit() or len(fraction) > 6:
            raise InvalidField(f"timestamp {text!r} has a bad fraction of a second")
    if len(value) != 19 or value[4] != "-" or value[7] != "-" or value[10] not in " T" \
            or value[13] != ":" or value[16] != ":":
        raise InvalidField(f"timestamp {text!r} is not 'YYYY-MM-DD HH:MM:SS UTC'")
    try:
        hour, minute, second = int(value[11:13]), int(value[14:16]), int(value[17:19])
    except ValueError:
        raise InvalidField(f"timestamp {text!r} has non-digits in its date or time") from None
    midnight = _utc_midnight(value[:10])
    if midnight is None or not (0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 59):
        raise InvalidField(f"timestamp {text!r} is not a real date and time")
    return midnight + hour * 3600 + minute * 60 + second


def _canonical_timestamp(text: str) -> int | None:
    """Exactly ``YYYY-MM-DD HH:MM:SS.ffffff UTC`` (ASCII digits where digits go, every
    position checked): its epoch seconds; None for anything else, which
    ``parse_poll_timestamp`` then reads (or rejects)."""
    if text[19] != "." or text[16] != ":" or not text.endswith(" UTC"):
        return None
    minute = _utc_minute(text[:16])
    seconds, fraction = text[17:19], text[20:26]
    if minute is None or not (seconds.isascii() and seconds.isdigit() and fraction.isascii()
                              and fraction.isdigit()) or seconds > "59":
        return None
    return minute + int(seconds)


@lru_cache(maxsize=1 << 16)
def _utc_minute(text: str) -> int | None:
    """Epoch seconds of ``YYYY-MM-DD HH:MM`` (or ``...THH:MM``), None if that is no real minute;
    cached: a week of polls falls on ~10,000 minutes."""
    if not text.isascii() or text[4] != "-" or text[7] != "-" or text[10] not in " T" or text[13] != ":" \
            or not (text[11:13].isdigit() and text[14:16].isdigit()):
        return None
    midnight, hour, minute = _utc_midnight(text[:10]), int(text[11:13]), int(text[14:16])
    return None if midnight is None or hour > 23 or minute > 59 else midnight + hour * 3600 + minute * 60


@lru_cache(maxsize=4096)
def _utc_midnight(date: str) -> int | None:
    """Epoch seconds of ``YYYY-MM-DD`` at 00:00 UTC, None if it is no real date (1970 on).

    Cached: a file's millions of polls fall on a handful of days, and the calendar
    arithmetic was a third of ingestion's CPU.
    """
    if not (date.isascii() and date[0:4].isdigit() and date[5:7].isdigit() and date[8:10].isdigit()):
        return None
    year, month, day = int(date[0:4]), int(date[5:7]), int(date[8:10])
    if not (year >= 1970 and 1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
        return None
    return calendar.timegm((year, month, day, 0, 0, 0, 0, 0, 0))


def csv_fields(text: str) -> list[str]:
    """One CSV line's fields, as ``csv.reader`` reads them (and its ``csv.Error`` where it
    fails). A line without quotes or line breaks is only split at commas: the same fields,
    without building a reader per line (a third of the status ingestion's parsing)."""
    if not text:
        return []
    if ('"' not in text and "\r" not in text and "\n" not in text and "\x00" not in text
            and len(text) <= csv.field_size_limit()):
        return text.split(",")
    return next(csv.reader([text]), [])


def parse_status(text: str) -> bool:
    """``active`` -> True, ``inactive`` -> False (case and spaces forgiven)."""
    if text == "active":  # as the poller writes it: no strip, no lower
        return True
    if text == "inactive":
        return False
    value = text.strip().lower()
    if value == "active":
        return True
    if value == "inactive":
        return False
    raise InvalidField(f"status {text!r} is neither 'active' nor 'inactive'")


def parse_weekday(text: str) -> int:
    """``0``..``6`` with 0 = Monday, as both feeds write it."""
    value = text.strip()
    if value not in {"0", "1", "2", "3", "4", "5", "6"}:
        raise InvalidField(f"day {text!r} is not a weekday number 0 (Monday) to 6 (Sunday)")
    return int(value)


def parse_local_time(text: str, end: bool = False) -> int:
    """``HH:MM[:SS[.ffffff]]`` -> seconds since local midnight (fractions dropped).

    With ``end``, ``24:00[:00]`` is accepted as the end of the day (ISO 8601 writes midnight
    at the end of a day that way, and an hours file may too); as a start it means nothing."""
    value = text.strip()
    parts = value.split(":")
    if len(parts) == 3 and "." in parts[2]:
        parts[2] = parts[2].split(".", 1)[0]
    if len(parts) not in (2, 3) or not all(len(p) == 2 and p.isdigit() for p in parts):
        raise InvalidField(f"time {text!r} is not 'HH:MM:SS'")
    hour, minute = int(parts[0]), int(parts[1])
    second = int(parts[2]) if len(parts) == 3 else 0
    if end and hour == 24 and minute == 0 and second == 0:
        return SECONDS_PER_DAY
    if hour > 23 or minute > 59 or second > 59:
        raise InvalidField(f"time {text!r} is out of range")
    return hour * 3600 + minute * 60 + second


def normalise_interval(start: int, end: int) -> tuple[int, int]:
    """Turn a row's (start, end) seconds into a half-open span from its day's midnight.

    - an end at or after 23:59:00 means midnight at the end of the day;
    - an end before the start runs past midnight into the next day;
    - an end equal to the start means the whole 24 hours from the start.
    """
    if end >= END_OF_DAY_THRESHOLD:
        end = SECONDS_PER_DAY
    if end == start:
        end = start + SECONDS_PER_DAY
    elif end < start:
        end += SECONDS_PER_DAY
    return start, end


@lru_cache(maxsize=None)
def is_known_timezone(name: str) -> bool:
    try:
        pytz.timezone(name)
    except pytz.UnknownTimeZoneError:
        return False
    return True


def parse_timezone(text: str) -> str:
    """A time-zone name pytz knows; an empty value means the default zone."""
    value = text.strip()
    if not value:
        return DEFAULT_TIMEZONE
    if not is_known_timezone(value):
        raise InvalidField(f"time zone {text!r} is not a known IANA zone name")
    return canonical_timezone(value)


@lru_cache(maxsize=None)
def canonical_timezone(name: str) -> str:
    """The zone's name as the IANA database spells it: pytz finds ``america/chicago`` too,
    and the report and timeline should say ``America/Chicago``."""
    return str(pytz.timezone(name).zone)


#: Longest store id accepted: real ids are 19 digits or a 36-character UUID.
STORE_ID_MAX_LENGTH = 128
#: Printable characters that still may not appear in a store id: the CSV separator
#: and quote (every file we read and write is CSV) and the storage layer's old separator.
STORE_ID_FORBIDDEN = frozenset(',"|')
_CHARACTER_NAMES = {"\t": "TAB", "\n": "newline", "\r": "carriage return", "\x00": "NUL"}


@lru_cache(maxsize=1 << 16)
def parse_store_id(text: str) -> str:
    """Store ids stay strings (19-digit ids do not survive a float), checked by an allow-list.

    Printable characters only (``str.isprintable``: no TAB, newline, other control or
    Unicode separator characters), none of ``STORE_ID_FORBIDDEN``, at most
    ``STORE_ID_MAX_LENGTH`` long. Why: an id is a field of every CSV we write and a key
    of the poll storage's encoding; an id holding a separator once made every later
    report fail. Cached: a file repeats each id ~150 times, and every row of one store
    then shares one string (what an ingestion batch holds).
    """
    value = text.strip()
    if not value:
        raise InvalidField("store_id is empty")
    if len(value) > STORE_ID_MAX_LENGTH:
        raise InvalidField(f"store_id {value[:40]!r}... is {len(value)} characters long, "
                           f"more than {STORE_ID_MAX_LENGTH}")
    if not value.isprintable():
        bad = next(c for c in value if not c.isprintable())
        name = _CHARACTER_NAMES.get(bad, f"U+{ord(bad):04X}")
        raise InvalidField(f"store_id {value[:40]!r} holds a non-printable character ({name})")
    if not STORE_ID_FORBIDDEN.isdisjoint(value):
        bad = next(c for c in value if c in STORE_ID_FORBIDDEN)
        raise InvalidField(f"store_id {value[:40]!r} holds the separator {bad!r}")
    return value


#: A status row exactly as the poller writes it, as raw bytes: ``store,active|inactive,YYYY-MM-DD
#: HH:MM:SS.ffffff UTC`` and line-break characters. Groups: store id, status, the timestamp, its
#: ``YYYY-MM-DD HH:MM`` and its seconds. The store id is 1-128 printable ASCII characters other than
#: space and ``STORE_ID_FORBIDDEN``. For a line it matches, the general reading (decode, ``csv_fields``,
#: ``parse_store_id``, ``parse_status``, ``parse_poll_timestamp``) gives the store id as decoded,
#: the status as spelled and ``utc_minute_bytes(minute) + int(seconds)``, or rejects the row where
#: that minute is no real one: ingestion reads the bulk of a file with it and every other line the
#: general way (tests/unit/test_fast_status_path.py holds the two to the same results).
CANONICAL_STATUS_LINE = re.compile(
    rb"([\x21\x23-\x2b\x2d-\x7b\x7d\x7e]{1,128}),(active|inactive),"
    rb"((\d{4}-\d\d-\d\d[ T]\d\d:\d\d):([0-5]\d)\.\d{6} UTC)[\r\n]*\Z")
assert STORE_ID_MAX_LENGTH == 128 and STORE_ID_FORBIDDEN == frozenset(',"|')  # the class above spells both

#: What ``utc_minute_bytes`` gives for a minute that is no real one: later than any clock.
NOT_A_MINUTE = (1 << 62, 0)


def utc_minute_bytes(text: bytes) -> tuple[int, int]:
    """(epoch seconds, its UTC day's midnight) of ``YYYY-MM-DD HH:MM`` as ASCII bytes;
    ``NOT_A_MINUTE`` if it is no real minute (so a caller's "too late" check sends it on
    to the general reading, which rejects it with its reason)."""
    minute = _utc_minute(text.decode("ascii"))
    if minute is None:
        return NOT_A_MINUTE
    return minute, minute - minute % SECONDS_PER_DAY


def store_id_bytes(text: bytes) -> str:
    """``parse_store_id`` of an id ``CANONICAL_STATUS_LINE`` matched (ASCII, so always valid)."""
    return parse_store_id(text.decode("ascii"))
