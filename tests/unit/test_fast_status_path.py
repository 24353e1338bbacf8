"""The status fast path (``parsing.CANONICAL_STATUS_LINE``, grouped batches) against the general
path, row by row: random mixes of good and malformed lines must give the same result either way:
accepted polls and how they are batched, rejections (line, reason, row) in order, counts, strays,
"now", stores and progress. Storage is replaced by a recorder of what each batch would write
(``PollRepository.add_store_days`` is where both paths hand a batch over; its bytes follow)."""
from __future__ import annotations

import dataclasses
import types
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from chalicelib import ingestion
from chalicelib.core import parsing
from chalicelib.ingestion import RejectionLog, ingest_lines
from chalicelib.settings import Settings
from chalicelib.storage.models import Tables
from chalicelib.storage.polls import PollRepository

BASE = datetime(2023, 1, 20, 0, 0, 0, tzinfo=timezone.utc)
CLOCK = int((BASE + timedelta(days=60)).timestamp())
STORES = ["cd613e30-d8f1-4adf-91b7-584a2265b1f5", "4d8bb0c7-f1b7-4590-b480-ce4e0f5a238c",
          "8419537941919820732", "s!#~{}"]


def _stamp(seconds: int, fraction: str = "905035") -> str:
    moment = BASE + timedelta(seconds=seconds)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{fraction} UTC"


def _good(store: str, active: bool, seconds: int) -> str:
    return f"{store},{'active' if active else 'inactive'},{_stamp(seconds)}"


#: Ways a usual row goes wrong or unusual (each must be read exactly as the general path reads it).
MUTATIONS: list[Any] = [
    lambda line: line.replace(" ", "T", 1),                       # ISO 'T' separator
    lambda line: line.replace(".905035", ".905"),                 # short fraction
    lambda line: line.replace(".905035", ""),                     # no fraction
    lambda line: line.replace(" UTC", "UTC"),
    lambda line: line.replace(" UTC", " utc"),
    lambda line: '"' + line.replace(",", '",', 1),                # quoted store id
    lambda line: " " + line,                                      # store id with a leading space
    lambda line: line.replace("active", "ACTIVE"),
    lambda line: line.replace(",active,", ",,").replace(",inactive,", ",,"),
    lambda line: line[:line.index(",") + 1].replace("-", "|", 1) + line[line.index(",") + 1:],
    lambda line: "," + line.split(",", 1)[1],                     # empty store id
    lambda line: "x" * 129 + "," + line.split(",", 1)[1],         # store id too long
    lambda line: "x" * 128 + "," + line.split(",", 1)[1],         # longest store id
    lambda line: line + ",extra",
    lambda line: line.rsplit(",", 1)[0],
    lambda line: line.replace("2023-01-2", "2023-02-3"),           # Feb 30, 31 or 32
    lambda line: line.replace("2023-01", "1969-12"),
    lambda line: line[:-13] + "60" + line[-11:],                   # second 60
    lambda line: line[:-19] + "24" + line[-17:],                   # hour 24
    lambda line: line[:-16] + "60" + line[-14:],                   # minute 60
    lambda line: line[:-13] + "\u0663\u0663" + line[-11:],         # non-ASCII digits in the seconds
    lambda line: line.replace("2023", "2099"),                     # past the ingestion clock
    lambda line: line.replace("2023-01", "2023-03"),               # weeks ahead: a stray, or many
    lambda line: line[:5] + "\x00" + line[5:],
    lambda line: line[:5] + "\udcff" + line[5:],                   # written as a lone byte 0xFF
    lambda line: line[:5] + "\u00e9" + line[5:],                   # valid UTF-8, not ASCII
    lambda line: line[:5] + "\t" + line[5:],
    lambda line: "",
    lambda line: "   ",
]


@st.composite
def status_files(draw: Any) -> tuple[list[bytes], int, Optional[int]]:
    header = "store_id,status,timestamp_utc"
    if draw(st.booleans()):
        header = "\ufeff" + header
    rows = draw(st.lists(st.tuples(st.sampled_from(STORES), st.booleans(), st.integers(0, 4 * 86400),
                                   st.one_of(st.none(), st.integers(0, len(MUTATIONS) - 1),
                                             st.binary(max_size=50)),
                                   st.sampled_from(["\n", "\r\n", "\r", "", "\n\n"])),
                         max_size=80))
    lines = [(header + "\n").encode()]
    for store, active, seconds, mutation, ending in rows:
        if isinstance(mutation, bytes):
            lines.append(mutation + ending.encode())
            continue
        line = _good(store, active, seconds)
        if mutation is not None:
            line = MUTATIONS[mutation](line)
        lines.append(line.encode("utf-8", "surrogateescape") + ending.encode())
    return lines, draw(st.integers(1, 30)), draw(st.sampled_from([None, int(BASE.timestamp()),
                                                                   int(BASE.timestamp()) + 10 * 86400]))


def _run(lines: list[bytes], batch_rows: int, watermark: Optional[int], fast: bool,
         monkeypatch: pytest.MonkeyPatch, accept_strays: bool = False) -> dict[str, Any]:
    written: list[Any] = []
    advanced: list[int] = []
    progress: list[tuple[int, int]] = []
    rejections: list[Any] = []

    def add_store_days(self: PollRepository, by_store_day: Any) -> int:
        written.append({key: sorted(values) for key, values in by_store_day.items()})
        return 0

    with monkeypatch.context() as patch:
        patch.setattr(ingestion, "FAST_STATUS", fast)
        patch.setattr(ingestion, "PROGRESS_EVERY", 7)
        patch.setattr(PollRepository, "add_store_days", add_store_days)
        patch.setattr(PollRepository, "finish", lambda self, latest: written.append(("finish", latest)))
        patch.setattr(ingestion, "DatasetStateRepository", lambda *model: types.SimpleNamespace(
            advance_latest_poll=advanced.append, latest_poll_at=lambda: watermark))
        settings = dataclasses.replace(Settings.from_env(), ingest_batch_rows=batch_rows)
        try:
            result: Any = ingest_lines(iter(lines), settings, rejection_log=RejectionLog(rejections.append),
                                       progress=lambda read, accepted: progress.append((read, accepted)),
                                       wall_clock=lambda: CLOCK, tables=Tables.from_settings(settings),
                                       accept_strays=accept_strays)
        except ingestion.FileRejected as error:
            result = ("rejected", str(error))
    return {"result": result, "written": written, "advanced": advanced, "progress": progress,
            "rejections": rejections}


@hypothesis_settings(max_examples=150, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(status_files(), st.booleans())
def test_fast_path_gives_what_the_general_path_gives(monkeypatch: pytest.MonkeyPatch, case: Any,
                                                     accept_strays: bool) -> None:
    lines, batch_rows, watermark = case
    general = _run(lines, batch_rows, watermark, False, monkeypatch, accept_strays)
    fast = _run(lines, batch_rows, watermark, True, monkeypatch, accept_strays)
    assert fast == general
    if not isinstance(fast["result"], tuple):  # counts in the same order too (the CLI's JSON shows them)
        assert list(fast["result"].counts) == list(general["result"].counts)


def test_the_fast_path_reads_the_usual_rows_and_only_those(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [_good(STORES[index % 3], index % 2 == 0, 3600 * 24 - index * 60) for index in range(40)]
    odd = [MUTATIONS[1](rows[0]), MUTATIONS[5](rows[1]), "bad,row"]
    lines = [b"store_id,status,timestamp_utc\n", *(line.encode() + b"\n" for line in rows + odd)]
    parsed: list[int] = []
    original = ingestion.StatusFeed.parse

    def spy(self: Any, line: Any) -> Any:
        parsed.append(line.number)
        return original(self, line)

    monkeypatch.setattr(ingestion.StatusFeed, "parse", spy)
    fast = _run(lines, 1000, None, True, monkeypatch)
    assert parsed == [42, 43, 44]  # the three odd lines; the usual ones straight from their bytes
    assert [r.line for r in fast["rejections"]] == [44]
    parsed.clear()
    assert _run(lines, 1000, None, False, monkeypatch) == fast and len(parsed) == 43


def test_the_regex_spells_the_store_id_rules() -> None:
    allowed = [chr(code) for code in range(0x21, 0x7F) if chr(code) not in parsing.STORE_ID_FORBIDDEN]
    for char in map(chr, range(256)):
        line = f"a{char}b,active,{_stamp(0)}".encode("utf-8", "surrogateescape")
        assert (parsing.CANONICAL_STATUS_LINE.match(line) is not None) == (char in allowed), repr(char)


@pytest.mark.parametrize("watermark", [None, int(BASE.timestamp()) - 86400])
def test_polls_the_fast_path_releases_itself_still_anchor_the_stray_rule(monkeypatch: pytest.MonkeyPatch,
                                                                        watermark: Optional[int]) -> None:
    """The guard never sees the rows released straight from their bytes: the latest of them must
    still be what later polls are compared with (nine rows weeks ahead are strays, both ways)."""
    rows = [_good(STORES[0], True, 30 * 86400 + index) for index in range(9)] + [_good(STORES[1], True, 3600)]
    rows += [_good(STORES[2], index % 2 == 0, index) for index in range(20)]
    lines = [b"store_id,status,timestamp_utc\n", *(line.encode() + b"\n" for line in rows)]
    fast = _run(lines, 1000, watermark, True, monkeypatch)
    assert [r.line for r in fast["rejections"]] == list(range(2, 11))
    assert _run(lines, 1000, watermark, False, monkeypatch) == fast
